"""The differential-drive form of any controller (``motion: diff_drive``).

A controller says where it wants to go as a map-frame displacement per step; a wheeled base can
only drive forward and turn. ``DiffDrive`` turns toward what is wanted and drives as far along
it as the turn allows, the way a pure-pursuit follower does. Its heading is its own commands
integrated (the base turns exactly as commanded), so it needs no pose. A traced or random path
is open loop: the follower pursues the point the path has reached, so the lag of every turn is
made up later (at up to twice the path's top speed) instead of bending the whole path. The
forager closes its own loop through the estimate, so its displacement is followed as it is.
"""
from __future__ import annotations

import math

import numpy as np

from treeworld_schema.frames import wrap
from treeworld_schema.topics import START_YAW

CATCH_UP = 2.0   # making up lag, the base goes at most this times the path's top speed


class DiffDrive:
    """``drive(step) -> (forward, turn)``: world units and radians for ``step``.

    Args:
        controller: any controller (``controller(step) -> (displacement, heading)``).
        max_turn: the most the base turns in one step (radians).
        pursue: follow the path's accumulated position (open-loop controllers) rather than
            each step's displacement.
    """

    def __init__(self, controller, max_turn: float, pursue: bool):
        self.controller, self.max_turn, self.pursue = controller, max_turn, pursue
        self.yaw = START_YAW
        self.position = np.zeros(2)       # its own commands integrated
        self.planned = np.zeros(2)        # where the holonomic controller has gone
        self.top_speed = 0.0              # the longest step it has asked for

    def __getattr__(self, name):
        # the forager's observe/anchors/reanchor/counters pass through
        return getattr(self.controller, name)

    def __call__(self, step: int) -> tuple[float, float]:
        displacement, _ = self.controller(step)
        self.planned = self.planned + displacement
        self.top_speed = max(self.top_speed, float(np.hypot(displacement[0], displacement[1])))
        wanted = self.planned - self.position if self.pursue else np.asarray(displacement)
        distance = float(np.hypot(wanted[0], wanted[1]))
        if distance < 1e-9:
            return 0.0, 0.0
        # an arc that starts along the heading and ends at the wanted point turns twice the
        # bearing; the midpoint rule then drives along the bearing itself
        bearing = wrap(math.atan2(wanted[1], wanted[0]) - self.yaw)
        turn = float(np.clip(2.0 * bearing, -self.max_turn, self.max_turn))
        direction = np.array([math.cos(self.yaw + turn / 2), math.sin(self.yaw + turn / 2)])
        forward = min(max(float(wanted @ direction), 0.0), distance, CATCH_UP * self.top_speed)
        self.position = self.position + forward * direction
        self.yaw += turn
        return forward, turn
