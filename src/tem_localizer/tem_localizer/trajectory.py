"""The estimated trajectory kept at a bounded size, for /tem/path.

A run of any length is drawn with at most ``max_poses`` poses: every ``spacing``-th estimate is
kept, and when the store is full every other kept pose is dropped and the spacing doubles. The
newest estimate is always the path's end. Appending costs O(1) amortized and the path never
grows past ``max_poses + 1``, so publishing it costs the same at step 100 and at step 100,000.

The poses are rows of arrays, so that moving every pose to its place's corrected position
after a loop closure, and serializing the path, are a few numpy calls however full it is.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_PLACE = -1       # a pose slam did not add to its map


@dataclass(frozen=True)
class TrajectoryRows:
    """The kept poses in order, ending with the newest. Views into the trajectory: writing a
    position or a place here changes the trajectory."""

    stamps: np.ndarray       # (n,) nanoseconds
    places: np.ndarray       # (n,) slam's place of each pose, or NO_PLACE
    positions: np.ndarray    # (n, 2) in the map frame
    yaws: np.ndarray         # (n,) radians in the map frame


class BoundedTrajectory:
    def __init__(self, max_poses: int):
        if max_poses < 2:
            raise ValueError(f"max_poses must be at least 2, got {max_poses}")
        self.max_poses = max_poses
        # the kept poses and, after them, the newest when it is not kept: at most one row
        # over the bound before it is thinned
        self.stamps = np.zeros(max_poses + 1, np.int64)
        self.places = np.zeros(max_poses + 1, np.int64)
        self.positions = np.zeros((max_poses + 1, 2))
        self.yaws = np.zeros(max_poses + 1)
        self.clear()

    def clear(self) -> None:
        self.kept = 0
        self.newest_kept = True
        self.spacing = 1
        self.appended = 0

    def append(self, stamp: int, place: int | None, position, yaw: float) -> None:
        row = self.kept
        self.stamps[row], self.yaws[row] = stamp, yaw
        self.places[row] = NO_PLACE if place is None else place
        self.positions[row] = position
        self.newest_kept = self.appended % self.spacing == 0
        if self.newest_kept:
            self.kept += 1
            if self.kept > self.max_poses:
                thinned = (self.kept + 1) // 2        # the newest stays: its row is even
                for array in (self.stamps, self.places, self.positions, self.yaws):
                    array[:thinned] = array[:self.kept:2].copy()
                self.kept = thinned
                self.spacing *= 2
        self.appended += 1

    def rows(self) -> TrajectoryRows:
        """The kept poses in order, ending with the newest."""
        count = self.kept + (not self.newest_kept)
        return TrajectoryRows(self.stamps[:count], self.places[:count],
                              self.positions[:count], self.yaws[:count])
