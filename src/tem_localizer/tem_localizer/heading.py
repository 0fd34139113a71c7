"""How far the odometry frame is turned in the map frame (docs/design.md §14).

Wheel odometry integrates its own heading, so a heading error turns every later displacement:
the odometry path bends away from the true one. slam corrects positions at loop closures but
takes each step's displacement as odometry gives it, so between closures the bend goes on.
This fits the turn instead: over the newest ``window`` steps, the rotation that best carries
odometry's positions onto the map's (corrected) positions of the same steps (2-D Procrustes,
both centred). New displacements are turned by it before they reach the localizer, and
``map -> odom`` carries it. Where nothing was corrected the map's positions are odometry's
turned by the current estimate, so the fit returns that estimate and nothing changes. It can
also fit odometry's scale against a loaded map (``fit_scale``, design §14).
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from treeworld_schema.frames import wrap

MIN_CLOSURES = 3        # closures a scale is fitted over, at least ...
MIN_SPREAD = 10.0       # ... the farthest this many world units from their middle


def similarity_between(source: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(angle in radians, scale) of the rotation and the scaling that best map the centred
    points ``source`` (n, 2) onto the centred ``target`` (n, 2) in the least-squares sense."""
    source = source - source.mean(axis=0)
    target = target - target.mean(axis=0)
    cross = float(np.sum(source[:, 0] * target[:, 1] - source[:, 1] * target[:, 0]))
    dot = float(np.sum(source * target))
    return math.atan2(cross, dot), math.hypot(cross, dot) / max(float(np.sum(source**2)), 1e-12)


class OdometryHeading:
    """The odometry frame's heading in the map frame, refitted every ``every`` steps over the
    newest ``window`` steps that have a place. With ``fit_scale`` also how much longer the
    map's displacements are than odometry's (a wheel radius that is off), fitted over the loop
    closures of those steps that the caller passes in: each says where the agent was in the
    map's own units (a loaded map's, made with other odometry). The map's positions of the
    steps themselves cannot show the scale: between closures they are odometry's."""

    def __init__(self, window: int, every: int = 10, fit_scale: bool = False):
        self.window, self.every, self.fit_scale = window, every, fit_scale
        self.reset()

    def reset(self) -> None:
        self.angle, self.scale = 0.0, 1.0
        self.odometry_position = np.zeros(2)    # the displacements given, summed
        self.recent: deque[tuple[int, np.ndarray]] = deque(maxlen=self.window)
        # (step, odometry position, old place, offset from it) of each recent closure
        self.closures: deque[tuple[int, np.ndarray, int, np.ndarray]] = deque()
        self.steps = 0

    def to_map(self, displacement: np.ndarray) -> np.ndarray:
        """An odometry-frame displacement (2,) turned (and scaled) into the map frame;
        remembered."""
        self.odometry_position = self.odometry_position + displacement
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        return self.scale * np.array([cos * displacement[0] - sin * displacement[1],
                                      sin * displacement[0] + cos * displacement[1]])

    def observe(self, place: int | None, map_positions, closure=None) -> None:
        """After a step: ``place`` (None when the step made none), ``map_positions``, a
        function from places to their map positions (n, 2) as the map has them now, and the
        step's loop closure (a loop_closure.Closure) if it made one."""
        if place is not None:
            self.recent.append((place, self.odometry_position.copy()))
        if closure is not None and self.fit_scale:
            self.closures.append((self.steps, self.odometry_position.copy(), closure.old,
                                  np.asarray(closure.offset, dtype=np.float64)))
        while self.closures and self.closures[0][0] <= self.steps - self.window:
            self.closures.popleft()
        self.steps += 1
        if self.steps % self.every or len(self.recent) < self.window:
            return
        places = [place for place, _ in self.recent]
        odometry = np.array([position for _, position in self.recent])
        self.angle = wrap(similarity_between(odometry, map_positions(places))[0])
        if len(self.closures) >= MIN_CLOSURES:
            odometry = np.array([position for _, position, _, _ in self.closures])
            anchored = map_positions([old for _, _, old, _ in self.closures]) + \
                np.array([offset for _, _, _, offset in self.closures])
            if np.linalg.norm(odometry - odometry.mean(axis=0), axis=1).max() >= MIN_SPREAD:
                self.scale = similarity_between(odometry, anchored)[1]
