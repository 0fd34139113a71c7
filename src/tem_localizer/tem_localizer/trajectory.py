"""The estimated trajectory kept at a bounded size, for /tem/path.

A run of any length is drawn with at most ``max_poses`` poses: every ``spacing``-th estimate is
kept, and when the store is full every other kept pose is dropped and the spacing doubles. The
newest estimate is always the path's end. Appending costs O(1) amortized and the path never
grows past ``max_poses + 1``, so publishing it costs the same at step 100 and at step 100,000.
"""
from __future__ import annotations

from typing import Generic, TypeVar

Pose = TypeVar("Pose")


class BoundedTrajectory(Generic[Pose]):
    def __init__(self, max_poses: int):
        if max_poses < 2:
            raise ValueError(f"max_poses must be at least 2, got {max_poses}")
        self.max_poses = max_poses
        self.clear()

    def clear(self) -> None:
        self.kept: list[Pose] = []
        self.latest: Pose | None = None
        self.spacing = 1
        self.appended = 0

    def append(self, pose: Pose) -> None:
        if self.appended % self.spacing == 0:
            self.kept.append(pose)
            if len(self.kept) > self.max_poses:
                self.kept = self.kept[::2]
                self.spacing *= 2
        self.latest = pose
        self.appended += 1

    def poses(self) -> list[Pose]:
        """The kept poses in order, ending with the newest."""
        if self.latest is None or (self.kept and self.kept[-1] is self.latest):
            return list(self.kept)
        return self.kept + [self.latest]
