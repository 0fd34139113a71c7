"""A panoramic camera: what a robot's camera would show of the trees (docs/design.md §13).

The image is a 360-degree strip, ``height`` x ``width`` x 3 (rgb8). Column c looks at the
bearing (0.5 - (c + 0.5) / width) * 2 pi from the heading, counter-clockwise positive: the
middle column straight ahead, the left half to the robot's left, both edges straight behind.
Each tree is a bar at its bearing, green when its fruit is edible and red when poisonous,
as wide as the tree looks and as tall as it stands, fading into the background with
distance; nearer trees hide farther ones.
"""
from __future__ import annotations

import math

import numpy as np

SKY = np.array([150.0, 180.0, 210.0])
GROUND = np.array([110.0, 95.0, 70.0])
EDIBLE_COLOUR = np.array([30.0, 200.0, 40.0])
POISONOUS_COLOUR = np.array([220.0, 30.0, 30.0])
TREE_RADIUS = 6.0          # world units (the trees' markers are 12 wide)
# How far a tree reaches above and below the horizon, as a share of the half-image at
# distance 1 (a pinhole: both fall as 1 / distance until the tree fills the view)
TREE_ABOVE = 40.0
TREE_BELOW = 10.0
FADE_DISTANCE = 300.0      # a tree's colour is 1/e of its own this far away


class PanoramicCamera:
    def __init__(self, height: int, width: int):
        self.height, self.width = height, width
        self.horizon = height // 2
        self.background = np.empty((height, width, 3))
        self.background[:self.horizon] = SKY
        self.background[self.horizon:] = GROUND

    def render(self, position: np.ndarray, yaw: float, tree_positions: np.ndarray,
               tree_poisonous: np.ndarray) -> np.ndarray:
        """The view from ``position`` facing ``yaw`` (radians): (height, width, 3) uint8."""
        image = self.background.copy()
        offsets = tree_positions - position                                    # (N, 2)
        distances = np.maximum(np.hypot(offsets[:, 0], offsets[:, 1]), TREE_RADIUS)
        bearings = np.arctan2(offsets[:, 1], offsets[:, 0]) - yaw
        centres = (0.5 - bearings / (2 * math.pi)) * self.width                # columns
        half_widths = np.maximum(np.arctan(TREE_RADIUS / distances) / (2 * math.pi)
                                 * self.width, 0.5)
        below = self.height - self.horizon
        tops = np.round(self.horizon * (1 - np.minimum(1.0, TREE_ABOVE / distances)))
        bottoms = np.round(self.horizon + below * np.minimum(1.0, TREE_BELOW / distances))
        fades = np.exp(-distances / FADE_DISTANCE)
        for tree in np.argsort(-distances):                     # far first: near ones cover
            first = math.floor(centres[tree] - half_widths[tree] + 0.5)
            last = math.floor(centres[tree] + half_widths[tree] - 0.5)
            columns = np.arange(first, last + 1) % self.width
            rows = slice(int(tops[tree]), max(int(bottoms[tree]), self.horizon + 1))
            colour = POISONOUS_COLOUR if tree_poisonous[tree] else EDIBLE_COLOUR
            image[rows, columns] = fades[tree] * colour + \
                (1 - fades[tree]) * image[rows, columns]
        return np.round(image).astype(np.uint8)
