"""The map of ``method: slam``: every place the agent has been, as the pose graph sees it
(docs/design.md §10).

A *place* is one step: its smell code, the odometry that led to it, and where it sits relative
to its *keyframe* (the pose-graph node it hangs on; one every ``keyframe_every`` steps). A
place's position is always its keyframe's current estimate plus that offset, so when the graph
corrects a keyframe every place on it moves along: the memory's keys are rendered from poses,
never frozen. A spatial hash of keyframes finds the places near a point at a cost that depends
on how crowded that neighbourhood is, not on how long the agent has run. Keyframes the pose
graph has settled (they will not move again) are hashed into append-only arrays, each cell
keeping its searchable places and their positions ready, so a crowded neighbourhood is gathered
by a few numpy calls rather than a Python loop; and each cell keeps a bounded number of them
searchable, so a neighbourhood visited for hours is no more crowded than one visited for
minutes.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

SEARCHED_PER_CELL = 64      # settled keyframes a hash cell keeps searchable (SettledCell)


def distances(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(n,) Euclidean distances of ``points`` (n, 2) from ``centre``: the same numbers as
    ``np.linalg.norm(points - centre, axis=1)`` at a third of its cost on thousands of points."""
    offset = points - centre
    return np.sqrt(offset[:, 0] ** 2 + offset[:, 1] ** 2)


class GrowingArray:
    """A numpy array that grows along its first axis by doubling: O(1) amortized appends."""

    def __init__(self, shape: tuple[int, ...], dtype, capacity: int = 1024):
        self.data = np.zeros((capacity, *shape), dtype=dtype)
        self.size = 0

    def append(self, value) -> int:
        if self.size == len(self.data):
            grown = np.zeros((2 * len(self.data), *self.data.shape[1:]), self.data.dtype)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size] = value
        self.size += 1
        return self.size - 1

    def view(self) -> np.ndarray:
        return self.data[: self.size]

    @property
    def nbytes(self) -> int:
        return self.data[: self.size].nbytes


class SettledCell:
    """The settled keyframes of one hash cell that stay searchable: every ``stride``-th to
    arrive, the stride doubling (and every second one leaving) whenever they fill
    SEARCHED_PER_CELL, so they stay spread evenly over the whole run, the first always among
    them. Those that leave stay in the map: drawn, saved, and read around when searched."""

    def __init__(self):
        self.keyframes = GrowingArray((), np.int64, capacity=8)     # most cells hold few
        self.arrivals = 0
        self.stride = 1
        self._places: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def ready(self) -> bool:
        """Whether its places are worked out (``places`` then costs nothing)."""
        return self._places is not None

    def add(self, keyframe: int) -> None:
        if self.arrivals % self.stride == 0:
            if self.keyframes.size == SEARCHED_PER_CELL:
                kept = self.keyframes.view()[::2].copy()
                self.keyframes.data[:len(kept)] = kept
                self.keyframes.size = len(kept)
                self.stride *= 2
            self.keyframes.append(keyframe)
            self._places = None
        self.arrivals += 1

    def places(self, place_map: PlaceMap) -> tuple[np.ndarray, np.ndarray]:
        """The places on the searchable keyframes, in order, and their positions (n, 2):
        worked out once after each change, as settled keyframes no longer move (a crowded
        neighbourhood is then gathered without expanding its keyframes at every search). Built
        at the first search, by when a settled keyframe holds all its places (a loaded map's
        too: they are added right after its keyframes)."""
        if self._places is None:
            places = place_map.places_of(self.keyframes.view())
            self._places = (places, place_map.positions(places))
            place_map.settled_bytes += places.nbytes + self._places[1].nbytes
        return self._places

    @property
    def nbytes(self) -> int:
        cached = 0 if self._places is None else sum(part.nbytes for part in self._places)
        return self.keyframes.data.nbytes + cached


@dataclass(frozen=True)
class Neighbourhood:
    """What the spatial hash holds around a point (``PlaceMap.near``)."""

    moving: np.ndarray               # keyframes the pose graph may still move
    settled: list[SettledCell]       # cells of settled keyframes


class PlaceMap:
    """Places (one per step) on keyframes; positions follow the keyframes' estimates.

    Args:
        code_dim: length of a smell code.
        keyframe_every: steps per keyframe.
        cell: size of a spatial-hash cell (world units).
    """

    def __init__(self, code_dim: int, keyframe_every: int, cell: float = 20.0):
        self.code_dim, self.keyframe_every, self.cell = code_dim, keyframe_every, cell
        self.codes = GrowingArray((code_dim,), np.float16)       # (P, d)
        self.odometry = GrowingArray((2,), np.float32)            # (P, 2) step into the place
        self.offsets = GrowingArray((2,), np.float32)             # (P, 2) from its keyframe
        self.keyframe_positions = GrowingArray((2,), np.float64)  # (K, 2) latest estimates
        self.reach = GrowingArray((), np.float64)                 # (K,) farthest offset on it
        self.hashed_cells = GrowingArray((2,), np.int64)          # (K, 2) where each is hashed
        self.cells: dict[tuple[int, int], set[int]] = defaultdict(set)     # may still move
        self.settled_cells: dict[tuple[int, int], SettledCell] = {}        # will not
        # kept as they change (here and by SettledCell.places), so that nbytes, in
        # /diagnostics every step, does not visit every cell of a map that grows with the
        # ground covered
        self.settled_keyframes = 0
        self.settled_bytes = 0

    def __len__(self) -> int:
        return self.codes.size

    @property
    def keyframes(self) -> int:
        return self.keyframe_positions.size

    @property
    def nbytes(self) -> int:
        hashed = self.keyframes - self.settled_keyframes     # every moving keyframe: once
        return (self.codes.nbytes + self.odometry.nbytes + self.offsets.nbytes
                + self.settled_bytes + self.keyframe_positions.nbytes + self.reach.nbytes
                + 16 * hashed + self.hashed_cells.nbytes)

    def _cell(self, position: np.ndarray) -> tuple[int, int]:
        return math.floor(position[0] / self.cell), math.floor(position[1] / self.cell)

    def keyframe_of(self, place: int | np.ndarray):
        return place // self.keyframe_every

    def add_keyframe(self, position: np.ndarray) -> int:
        index = self.keyframe_positions.append(position)
        self.reach.append(0.0)
        cell = self._cell(position)
        self.hashed_cells.append(cell)
        self.cells[cell].add(index)
        return index

    def add_place(self, code: np.ndarray, odometry: np.ndarray, offset: np.ndarray) -> int:
        """A new place on the newest keyframe (the caller adds keyframes on schedule)."""
        keyframe = self.keyframe_of(len(self))
        self.odometry.append(odometry)
        index = self.offsets.append(offset)
        stored = self.offsets.data[index].astype(np.float64)      # as positions() will read it
        self.reach.data[keyframe] = max(self.reach.data[keyframe], float(np.hypot(*stored)))
        return self.codes.append(code)

    def move_keyframes(self, indices: np.ndarray, positions: np.ndarray) -> None:
        """New estimates (n, 2) of keyframes ``indices``; those that changed cells are
        rehashed (few do: a correction moves most keyframes by less than a cell)."""
        self.keyframe_positions.data[indices] = positions
        cells = np.floor(positions / self.cell).astype(np.int64)
        hashed = self.hashed_cells.data
        changed = (cells != hashed[indices]).any(axis=1)
        for index, cell in zip(indices[changed].tolist(), cells[changed].tolist()):
            self.cells[tuple(hashed[index].tolist())].discard(index)
            self.cells[tuple(cell)].add(index)
            hashed[index] = cell

    def move_keyframe(self, index: int, position: np.ndarray) -> None:
        """A new estimate of keyframe ``index``."""
        self.move_keyframes(np.array([index]), np.asarray(position, dtype=np.float64)[None])

    def settle_keyframe(self, index: int, position: np.ndarray) -> None:
        """Keyframe ``index``'s final estimate: it will not move again."""
        self.move_keyframe(index, position)
        cell = tuple(self.hashed_cells.data[index].tolist())
        self.cells[cell].discard(index)
        if not self.cells[cell]:
            del self.cells[cell]
        settled = self.settled_cells.get(cell)
        if settled is None:
            settled = self.settled_cells[cell] = SettledCell()
            before = 0
        else:
            before = settled.nbytes      # adding may grow its array and drop its places
        settled.add(index)
        self.settled_bytes += settled.nbytes - before
        self.settled_keyframes += 1

    def positions(self, places: np.ndarray) -> np.ndarray:
        """(n, 2) current positions of the given places."""
        keyframes = self.keyframe_of(places)
        return self.keyframe_positions.data[keyframes] + self.offsets.data[places]

    def near(self, centre: np.ndarray, radius: float) -> Neighbourhood:
        """The keyframes and settled cells hashed within ``radius`` (plus one cell) of
        ``centre``."""
        low, high = self._cell(centre - radius), self._cell(centre + radius)
        cells = [(x, y) for x in range(low[0] - 1, high[0] + 2)
                 for y in range(low[1] - 1, high[1] + 2)]
        moving = [k for cell in cells for k in self.cells.get(cell, ())]
        return Neighbourhood(np.array(moving, dtype=np.int64),
                             [self.settled_cells[cell] for cell in cells
                              if cell in self.settled_cells])

    def within(self, near: Neighbourhood, centre: np.ndarray, radius: float
               ) -> tuple[np.ndarray, np.ndarray]:
        """The places in ``near`` within ``radius`` of ``centre``, in order, and their
        distances from it. A moving keyframe farther away than ``radius`` plus the farthest of
        its places' offsets cannot hold one, so only the others' places are looked at."""
        apart = distances(self.keyframe_positions.data[near.moving], centre)
        # (the margin: rounding must not drop a place exactly on the circle)
        moving = self.places_of(near.moving[apart <= radius + self.reach.data[near.moving]
                                            + 1e-6])
        settled = [cell.places(self) for cell in near.settled]
        places = np.concatenate([*(part[0] for part in settled), moving])
        positions = np.concatenate([*(part[1] for part in settled), self.positions(moving)])
        distance = distances(positions, centre)
        inside = distance <= radius
        places, distance = places[inside], distance[inside]
        order = np.argsort(places)
        return places[order], distance[order]

    def places_of(self, keyframes: np.ndarray) -> np.ndarray:
        """Every place on the given keyframes, in order."""
        if len(keyframes) == 0:
            return np.zeros(0, dtype=np.int64)
        starts = keyframes * self.keyframe_every
        places = (starts[:, None] + np.arange(self.keyframe_every)[None]).reshape(-1)
        return places[places < len(self)]

    @staticmethod
    def in_few_passes(places: np.ndarray, max_passes: int, gap: int) -> np.ndarray:
        """Which of ``places`` (sorted) to search, as a mask: those on at most ``max_passes``
        of the passes through a neighbourhood they make (a pass: places fewer than ``gap``
        steps apart), spread evenly over time, the first and the newest always among them.
        Every visit adds places, so a neighbourhood crossed a thousand times would otherwise
        cost a thousand times as much to search as one crossed once; the passes kept still
        span the whole run (a loaded map's included)."""
        if len(places) == 0:
            return np.zeros(0, dtype=bool)
        pass_of = np.zeros(len(places), dtype=np.int64)
        np.cumsum(np.diff(places) >= gap, out=pass_of[1:])
        passes = int(pass_of[-1]) + 1
        if passes <= max_passes:
            return np.ones(len(places), dtype=bool)
        kept = np.zeros(passes, dtype=bool)
        # evenly spaced, both ends included (np.linspace's numbers, without its overhead)
        spacing = (passes - 1) / max(max_passes - 1, 1)
        kept[np.round(np.arange(max_passes) * spacing).astype(np.int64)] = True
        return kept[pass_of]

    def relative_positions(self, first: int, last: int, origin: int) -> np.ndarray:
        """Places first..last relative to place ``origin``, from odometry alone (the local
        geometry a loop-closure measurement may rest on)."""
        path = np.zeros((last - first + 1, 2))
        np.cumsum(self.odometry.data[first + 1:last + 1], axis=0, dtype=np.float64,
                  out=path[1:])
        return path - path[origin - first]

    def stretches_around(self, centres: np.ndarray, span: int) -> np.ndarray:
        """(C, 2 span + 1, 2): for each place in ``centres``, the places ``span`` either side
        of it relative to it, from odometry alone (``relative_positions`` for many at once)."""
        steps = self.odometry.data[centres[:, None] + np.arange(1 - span, span + 1)[None]]
        paths = np.zeros((len(centres), 2 * span + 1, 2))
        np.cumsum(steps, axis=1, dtype=np.float64, out=paths[:, 1:])
        return paths - paths[:, span:span + 1]
