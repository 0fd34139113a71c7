"""Finding oneself in a loaded map (docs/design.md §10).

Started in a saved map with no idea where it is, the agent's belief is flat over every cell the
map has places in. Each step the belief is path-integrated (as always) and then weighed by how
well this step's smell code matches the map's mean code in each cell: a Bayes filter whose
observation model is the map. Once the belief has stayed within about a cell for a few steps
in which the map explains what was smelled there, the localizer takes that as a fix and starts
mapping from there. The fix is then on trial (``FixTrial``): where a few trees happen to stand
alike, a stretch of smells can fit the wrong place, but the paths that follow then never match
the map's (docs/design.md §10).

A tight belief alone is not enough: in a world the map was not made in, the filter still
concentrates somewhere, on the least bad cell or on ground the map has nothing for. Weak smells
(far from every tree) alias everywhere and say nothing; strong ones must be near the map's code
where the belief is.

A map wider than the belief grid's window is searched coarse to fine: first on a grid of as
many cells whose cells are k times larger (k whole cells, so that the coarse grid covers the
whole map), a cell weighed by the best match among its places (a mean over a cell that large
would blur codes that differ within it); once that belief has stayed within a coarse cell for a
few strong smells, the fine window is placed on it, its belief the coarse one cell for cell,
and the search goes on as above. The fine window shows the coarse belief meanwhile.
"""
from __future__ import annotations

import math
from collections import deque
from enum import Enum

import numpy as np
import torch

from tem_localizer.belief import ScrollingBelief
from tem_localizer.grid import BeliefGrid
from tem_localizer.place_map import PlaceMap

UNMAPPED_LIKELIHOOD = 1e-4    # a cell without places: the smell says nothing there
SETTLED_STEPS = 5             # steps with a strong smell the belief must stay tight for
EXPLAINED_SIGMAS = 2.0        # ... over which the smell is this near the map's code, on average
# Steps with the map's places in the loop-closure gate within which a fix must close a loop to
# the map, or be taken back if the map does not explain the smells either. On a 10,000-step
# walk's map true fixes closed one within 7 to 14 steps of mapping on; fixes in other worlds
# none in 200.
CONFIRM_WITHIN = 30


class Verdict(Enum):
    SEARCHING = "searching"
    SETTLED = "settled"            # found: the belief is tight and the map explains the smells
    UNEXPLAINED = "unexplained"    # tight, but the map does not explain the smells there


class FixTrial:
    """A fix in the loaded map on trial. It stands once a loop closes to the map. Otherwise,
    after CONFIRM_WITHIN steps with the map's places in the loop-closure gate, it stands if the
    map explains what was smelled at the estimate meanwhile (a straight retrace whose steps
    fall between the map's can close no loop), and falls if the map does not.

    Args:
        searched: the loop-closure searches with the map's places so far (a count).
        explained_within: the mean squared code distance from the map's prediction (code
            units squared, over the whole code) up to which the map explains the smells.
    """

    def __init__(self, searched: int, explained_within: float):
        self.searched_at, self.explained_within = searched, explained_within
        self.errors: list[float] = []

    def judge(self, closed_to_map: bool, searched: int, error: float) -> bool | None:
        """True: the fix stands; False: it was wrong; None: still on trial. ``error``: this
        step's squared code distance from what the map predicts at the estimate (NaN where
        it predicts nothing, the smell is weak, or the session's own places could answer)."""
        if closed_to_map:
            return True
        if math.isfinite(error):
            self.errors.append(error)
        if searched - self.searched_at < CONFIRM_WITHIN:
            return None
        return len(self.errors) < SETTLED_STEPS or \
            float(np.mean(self.errors)) <= self.explained_within


class Relocalizer:
    """Bayes filter over ``front``'s grid with the map's per-cell smell codes (over a coarse
    grid first when the map is wider than ``front``'s window).

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
        self.place_codes = places.codes.view().astype(np.float32)
        low, high = self.positions.min(axis=0), self.positions.max(axis=0)
        # the middle of the map's extent, not its places' mean: a window as wide as the map
        # holds all of it only around the middle
        self.map_centre, self.map_span = (low + high) / 2, high - low              # world units
        self.centre = None
        self.wide = False                              # wider than the belief's window:
        self.coarse: ScrollingBelief | None = None    # searched on this coarse grid first
        self.coarse_index = None     # its window's centre, each place's cell there, codes
        # squared code distance from the map where the belief is, for the latest strong smells
        # while the belief has stayed tight
        self.evidence: deque[float] = deque(maxlen=SETTLED_STEPS)

    def _places_in(self, grid: BeliefGrid, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which places (with a code: not skipped steps) fall in the window of ``grid`` centred
        at ``centre``, and their (row, column) cells there."""
        cells = np.round((self.positions - centre) / grid.cell_size).astype(int) + grid.radius
        inside = ((cells >= 0) & (cells < grid.size)).all(axis=1) & \
            (np.linalg.norm(self.place_codes, axis=1) > 0)
        return inside, cells[inside][:, ::-1]

    def _cell_codes(self, front: ScrollingBelief) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, S, d) mean code per cell of the current window, (S, S) which cells have any."""
        if self.centre is not None and np.array_equal(self.centre, front.centre):
            return self.codes, self.mapped
        grid = front.grid
        inside, cells = self._places_in(grid, front.centre)
        rows, columns = cells[:, 0], cells[:, 1]
        sums = np.zeros((grid.size, grid.size, self.places.code_dim))
        counts = np.zeros((grid.size, grid.size))
        np.add.at(sums, (rows, columns), self.place_codes[inside].astype(np.float64))
        np.add.at(counts, (rows, columns), 1)
        mapped = counts > 0
        sums[mapped] /= counts[mapped][:, None]
        device = front.device
        self.codes = torch.as_tensor(sums, dtype=torch.float32, device=device)
        self.mapped = torch.as_tensor(mapped, device=device)
        self.centre = front.centre.copy()
        return self.codes, self.mapped

    def start(self, front: ScrollingBelief) -> None:
        """A flat belief over every mapped cell, centred on the map: on a coarse grid first
        when the map is wider than ``front``'s window."""
        self.evidence.clear()
        grid = front.grid
        # whole fine cells per coarse cell, so that the coarse window holds the map and a cell
        # of slack on each side
        scale = math.ceil((float(self.map_span.max()) + 2 * grid.cell_size) / grid.extent)
        self.wide = scale > 1
        if self.wide:
            self.coarse = ScrollingBelief(BeliefGrid(grid.size, grid.extent * scale),
                                          front.device, front.max_action_norm,
                                          front.sharpen_exponent)
            self.coarse.reset(self.map_centre)
            self.coarse_index = None
            flat_cells, _ = self._coarse_places()
            mapped = torch.zeros(grid.size * grid.size, device=front.device)
            mapped[flat_cells] = 1.0
            self.coarse.belief = (mapped / mapped.sum().clamp_min(1)).reshape(grid.size, -1)[None]
            self._show_coarse(front)
            return
        front.reset(self.map_centre)
        _, mapped = self._cell_codes(front)
        front.belief = (mapped.float() / mapped.sum().clamp_min(1))[None]

    def update(self, front: ScrollingBelief, action: np.ndarray, code: np.ndarray) -> Verdict:
        """Path-integrate the belief by ``action``, weigh it by this smell and say whether it
        has settled on one place."""
        if self.coarse is not None:
            self._update_coarse(front, action, code)
            return Verdict.SEARCHING
        front.move(action)
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
            if self.wide:               # the window may sit on the wrong part of the map
                self.start(front)
            return Verdict.UNEXPLAINED
        return Verdict.SETTLED

    def move(self, front: ScrollingBelief, action: np.ndarray) -> None:
        """Path integration alone, for a step whose smell cannot be used."""
        if self.coarse is None:
            front.move(action)
            return
        self.coarse.move(action)
        self._show_coarse(front)

    def holder(self, front: ScrollingBelief) -> ScrollingBelief:
        """Whichever grid holds the whole belief: the coarse one while it searches (``front``
        then shows only its window's share)."""
        return self.coarse or front

    def _coarse_places(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The coarse window's places (with a code): flat cell index (n,), code (n, d)."""
        coarse = self.coarse
        if self.coarse_index is None or not np.array_equal(self.coarse_index[0], coarse.centre):
            inside, cells = self._places_in(coarse.grid, coarse.centre)
            self.coarse_index = (coarse.centre.copy(),
                                 torch.as_tensor(cells[:, 0] * coarse.grid.size + cells[:, 1],
                                                 device=coarse.device),
                                 torch.as_tensor(self.place_codes[inside], device=coarse.device))
        return self.coarse_index[1:]

    def _coarse_likelihood(self, observed: torch.Tensor) -> torch.Tensor:
        """(S, S): each coarse cell weighed by its best-matching place, UNMAPPED_LIKELIHOOD
        where it has none."""
        coarse = self.coarse
        flat_cells, codes = self._coarse_places()
        distance = (codes - observed.to(codes.device)).pow(2).sum(-1)
        likelihood = torch.exp(-0.5 * distance / self.smell_sigma**2)
        size = coarse.grid.size
        cells = torch.full((size * size,), UNMAPPED_LIKELIHOOD, device=coarse.device)
        cells.scatter_reduce_(0, flat_cells, likelihood, reduce="amax")
        return cells.reshape(size, size)

    def _update_coarse(self, front: ScrollingBelief, action: np.ndarray, code: np.ndarray
                       ) -> None:
        coarse = self.coarse
        coarse.move(action)
        observed = torch.as_tensor(code, dtype=torch.float32)
        weighted = coarse.belief * self._coarse_likelihood(observed)[None]
        total = weighted.sum()
        if float(total) <= 1e-30:
            self.start(front)
            return
        coarse.belief = weighted / total
        spread = float(np.sqrt(np.trace(coarse.covariance()) / 2))
        if spread >= coarse.grid.cell_size:
            self.evidence.clear()
        elif float(observed.norm()) >= self.min_strength:
            self.evidence.append(0.0)      # here only counted: the fine stage judges the codes
        self._show_coarse(front)
        if len(self.evidence) == SETTLED_STEPS:        # on to the fine window
            self.coarse, self.coarse_index = None, None
            self.evidence.clear()
            _, mapped = self._cell_codes(front)
            belief = front.belief * mapped[None]
            total = belief.sum()
            front.belief = belief / total if float(total) > 0 else \
                (mapped.float() / mapped.sum().clamp_min(1))[None]

    def _show_coarse(self, front: ScrollingBelief) -> None:
        """``front``'s window on the coarse belief's mean, each fine cell holding its coarse
        cell's share."""
        coarse = self.coarse
        front.reset(coarse.mean())
        offsets = front.grid.cell_centres(front.device) + torch.as_tensor(
            front.centre - coarse.centre, dtype=torch.float32, device=front.device)
        cells = torch.round(offsets / coarse.grid.cell_size).long() + coarse.grid.radius
        inside = ((cells >= 0) & (cells < coarse.grid.size)).all(-1)
        cells = cells.clamp(0, coarse.grid.size - 1)
        belief = torch.where(inside, coarse.belief[0][cells[..., 1], cells[..., 0]],
                             torch.zeros((), device=front.device))
        total = belief.sum()
        front.belief = (belief / total if float(total) > 0 else belief)[None]
