"""How far the odometry frame is turned in the map frame (docs/design.md §14).

Wheel odometry integrates its own heading, so a heading error turns every later displacement:
the odometry path bends away from the true one. slam corrects positions at loop closures but
takes each step's displacement as odometry gives it, so between closures the bend goes on.
This fits the turn instead: over the newest ``window`` steps, the rotation that best carries
odometry's positions onto the map's (corrected) positions of the same steps (2-D Procrustes,
both centred). New displacements are turned by it before they reach the localizer, and
``map -> odom`` carries it. Where nothing was corrected the map's positions are odometry's
turned by the current estimate, so the fit returns that estimate and nothing changes.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from treeworld_schema.frames import wrap


def rotation_between(source: np.ndarray, target: np.ndarray) -> float:
    """The angle (radians) of the rotation that best maps the centred points ``source`` (n, 2)
    onto the centred ``target`` (n, 2) in the least-squares sense."""
    source = source - source.mean(axis=0)
    target = target - target.mean(axis=0)
    cross = float(np.sum(source[:, 0] * target[:, 1] - source[:, 1] * target[:, 0]))
    return math.atan2(cross, float(np.sum(source * target)))


class OdometryHeading:
    """The odometry frame's heading in the map frame, refitted every ``every`` steps over the
    newest ``window`` steps that have a place."""

    def __init__(self, window: int, every: int = 10):
        self.window, self.every = window, every
        self.reset()

    def reset(self) -> None:
        self.angle = 0.0
        self.odometry_position = np.zeros(2)    # the displacements given, summed
        self.recent: deque[tuple[int, np.ndarray]] = deque(maxlen=self.window)
        self.steps = 0

    def to_map(self, displacement: np.ndarray) -> np.ndarray:
        """An odometry-frame displacement (2,) turned into the map frame; remembered."""
        self.odometry_position = self.odometry_position + displacement
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        return np.array([cos * displacement[0] - sin * displacement[1],
                         sin * displacement[0] + cos * displacement[1]])

    def observe(self, place: int | None, map_positions) -> None:
        """After a step: ``place`` (None when the step made none) and ``map_positions``, a
        function from places to their map positions (n, 2) as the map has them now."""
        if place is not None:
            self.recent.append((place, self.odometry_position.copy()))
        self.steps += 1
        if self.steps % self.every or len(self.recent) < self.window:
            return
        places = [place for place, _ in self.recent]
        odometry = np.array([position for _, position in self.recent])
        self.angle = wrap(rotation_between(odometry, map_positions(places)))
