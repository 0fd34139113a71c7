"""Finding oneself in a loaded map (docs/design.md §10).

Started in a saved map with no idea where it is, the agent's belief is flat over every cell the
map has places in. Each step the belief is path-integrated (as always) and then weighed by how
well this step's smell code matches the map's mean code in each cell: a Bayes filter whose
observation model is the map. Once the belief has stayed within about a cell for a few steps,
the localizer knows where it is and starts mapping from there.
"""
from __future__ import annotations

import numpy as np
import torch

from tem_localizer.belief import ScrollingBelief
from tem_localizer.place_map import PlaceMap

UNMAPPED_LIKELIHOOD = 1e-4    # a cell without places: the smell says nothing there
SETTLED_STEPS = 5             # steps the belief must stay tight before it is trusted


class Relocalizer:
    """Bayes filter over ``front``'s grid with the map's per-cell smell codes.

    Args:
        places: the loaded map.
        smell_sigma: how far (code units) a smell may be from its cell's mean code and still
            count as the same place.
        settled_spread: the belief's standard deviation (world units) below which it counts
            as tight.
    """

    def __init__(self, places: PlaceMap, smell_sigma: float, settled_spread: float):
        self.places, self.smell_sigma, self.settled_spread = places, smell_sigma, settled_spread
        self.centre = None
        self.tight_steps = 0
        self.steps = 0

    def _cell_codes(self, front: ScrollingBelief) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, S, d) mean code per cell of the current window, (S, S) which cells have any."""
        if self.centre is not None and np.array_equal(self.centre, front.centre):
            return self.codes, self.mapped
        grid = front.grid
        positions = self.places.positions(np.arange(len(self.places)))
        cells = np.round((positions - front.centre) / grid.cell_size).astype(int) + grid.radius
        inside = ((cells >= 0) & (cells < grid.size)).all(axis=1) & \
            (np.linalg.norm(self.places.codes.view().astype(np.float32), axis=1) > 0)
        rows, columns = cells[inside, 1], cells[inside, 0]
        sums = np.zeros((grid.size, grid.size, self.places.code_dim))
        counts = np.zeros((grid.size, grid.size))
        np.add.at(sums, (rows, columns), self.places.codes.view()[inside].astype(np.float64))
        np.add.at(counts, (rows, columns), 1)
        mapped = counts > 0
        sums[mapped] /= counts[mapped][:, None]
        device = front.device
        self.codes = torch.as_tensor(sums, dtype=torch.float32, device=device)
        self.mapped = torch.as_tensor(mapped, device=device)
        self.centre = front.centre.copy()
        return self.codes, self.mapped

    def start(self, front: ScrollingBelief) -> None:
        """A flat belief over every mapped cell, the window centred on the map."""
        positions = self.places.positions(np.arange(len(self.places)))
        front.reset(positions.mean(axis=0))
        _, mapped = self._cell_codes(front)
        front.belief = (mapped.float() / mapped.sum().clamp_min(1))[None]
        self.tight_steps = self.steps = 0

    def update(self, front: ScrollingBelief, code: np.ndarray) -> bool:
        """Weigh ``front``'s (already path-integrated) belief by this smell; True once it has
        settled on one place."""
        self.steps += 1
        codes, mapped = self._cell_codes(front)
        observed = torch.as_tensor(code, dtype=torch.float32, device=front.device)
        distance = (codes - observed).pow(2).sum(-1)                              # (S, S)
        likelihood = torch.where(mapped, torch.exp(-0.5 * distance / self.smell_sigma**2),
                                 torch.full_like(distance, UNMAPPED_LIKELIHOOD))
        weighted = front.belief * likelihood[None]
        total = weighted.sum()
        if float(total) <= 1e-30:            # nothing fits: start over from the flat prior
            self.start(front)
            return False
        front.belief = weighted / total
        spread = float(np.sqrt(np.trace(front.covariance()) / 2))
        self.tight_steps = self.tight_steps + 1 if spread < self.settled_spread else 0
        return self.tight_steps >= SETTLED_STEPS
