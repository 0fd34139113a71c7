"""Finding oneself in a loaded map (docs/design.md §10).

Started in a saved map with no idea where it is, the agent's belief is flat over every cell the
map has places in. Each step the belief is path-integrated (as always) and then weighed by how
well this step's smell code matches the map's mean code in each cell: a Bayes filter whose
observation model is the map. Once the belief has stayed within about a cell for a few steps
in which the map explains what was smelled there, the localizer knows where it is and starts
mapping from there.

A tight belief alone is not enough: in a world the map was not made in, the filter still
concentrates somewhere, on the least bad cell or on ground the map has nothing for. Weak smells
(far from every tree) alias everywhere and say nothing; strong ones must be near the map's code
where the belief is.
"""
from __future__ import annotations

from collections import deque
from enum import Enum

import numpy as np
import torch

from tem_localizer.belief import ScrollingBelief
from tem_localizer.place_map import PlaceMap

UNMAPPED_LIKELIHOOD = 1e-4    # a cell without places: the smell says nothing there
SETTLED_STEPS = 5             # steps with a strong smell the belief must stay tight for
EXPLAINED_SIGMAS = 2.0        # ... over which the smell is this near the map's code, on average


class Verdict(Enum):
    SEARCHING = "searching"
    SETTLED = "settled"            # found: the belief is tight and the map explains the smells
    UNEXPLAINED = "unexplained"    # tight, but the map does not explain the smells there


class Relocalizer:
    """Bayes filter over ``front``'s grid with the map's per-cell smell codes.

    Args:
        places: the loaded map.
        smell_sigma: how far (code units) a smell may be from its cell's mean code and still
            count as the same place.
        settled_spread: the belief's standard deviation (world units) below which it counts
            as tight.
        min_strength: a smell code weaker than this (far from every tree) is no evidence.
    """

    def __init__(self, places: PlaceMap, smell_sigma: float, settled_spread: float,
                 min_strength: float):
        self.places, self.smell_sigma, self.settled_spread = places, smell_sigma, settled_spread
        self.min_strength = min_strength
        # the map holds still while the agent searches it: its places are read once
        self.positions = places.positions(np.arange(len(places)))
        self.map_centre = self.positions.mean(axis=0)
        self.map_span = self.positions.max(axis=0) - self.positions.min(axis=0)   # world units
        self.centre = None
        # squared code distance from the map where the belief is, for the latest strong smells
        # while the belief has stayed tight
        self.evidence: deque[float] = deque(maxlen=SETTLED_STEPS)
        self.steps = 0

    def _cell_codes(self, front: ScrollingBelief) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, S, d) mean code per cell of the current window, (S, S) which cells have any."""
        if self.centre is not None and np.array_equal(self.centre, front.centre):
            return self.codes, self.mapped
        grid = front.grid
        cells = np.round((self.positions - front.centre) / grid.cell_size).astype(int) + grid.radius
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
        front.reset(self.map_centre)
        _, mapped = self._cell_codes(front)
        front.belief = (mapped.float() / mapped.sum().clamp_min(1))[None]
        self.evidence.clear()
        self.steps = 0

    def update(self, front: ScrollingBelief, code: np.ndarray) -> Verdict:
        """Weigh ``front``'s (already path-integrated) belief by this smell and say whether it
        has settled on one place."""
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
            return Verdict.SEARCHING
        front.belief = weighted / total
        spread = float(np.sqrt(np.trace(front.covariance()) / 2))
        if spread >= self.settled_spread:
            self.evidence.clear()
        elif float(observed.norm()) >= self.min_strength:
            # unmapped cells hold a zero code: a belief there explains no strong smell
            self.evidence.append(float((front.belief[0] * distance).sum()))
        if len(self.evidence) < SETTLED_STEPS:
            return Verdict.SEARCHING
        if float(np.mean(self.evidence)) > (EXPLAINED_SIGMAS * self.smell_sigma) ** 2:
            return Verdict.UNEXPLAINED
        return Verdict.SETTLED
