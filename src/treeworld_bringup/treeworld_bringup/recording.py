"""What a run leaves behind, however it was run (in-process, live ROS graph, replayed bag)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from treeworld_schema import topics

GIF_FRAMES = 500     # the most belief frames a run keeps for belief.gif


def gif_stride(steps: int) -> int:
    """Every how many steps a run of ``steps`` keeps a belief for belief.gif: every 4th, and
    in a long run fewer, so that the frames held until the end and the GIF's drawing time
    stay bounded (10,000 steps at every 4th: 2,500 frames, 5 minutes to draw, 14 MB)."""
    return max(4, math.ceil(steps / GIF_FRAMES))


class RunFolderError(Exception):
    """A run folder or bag lacks what evaluation needs; the message names the file."""


@dataclass(frozen=True)
class Scene:
    """The trees, for drawing. World units."""

    tree_positions: np.ndarray      # (N, 2)
    tree_poisonous: np.ndarray      # (N,) bool
    tree_labels: list[str]


@dataclass
class Recording:
    """One run, one row per step. Positions in world units, timestamps in seconds."""

    timestamps: np.ndarray                      # (T,)
    true_positions: np.ndarray | None           # (T, 2) where the agent was when it sensed
    estimates: np.ndarray | None = None         # (T, 2) the localizer's estimate at each step
    corrected: np.ndarray | None = None         # (T, 2) slam: the same steps, as corrected later
    losses: np.ndarray | None = None            # (T,) NaN where the step was skipped
    belief_frames: np.ndarray | None = None     # (K, S, S) every belief_stride-th belief
    belief_origins: np.ndarray | None = None    # (K, 2) world (x, y) of each frame's corner;
                                                # None: every frame centred on the origin
    belief_stride: int = 4
    belief_rows: np.ndarray | None = None       # (K,) the row of each frame; None: every
                                                # belief_stride-th (a gathered run's rows can have
                                                # gaps: real time, a salvaged bag)
    grid_extent: float = 1000.0
    summary: dict = field(default_factory=dict)  # world and localizer counters
    health: np.ndarray | None = None            # (T,) the agent's health at each step

    @property
    def steps(self) -> int:
        return len(self.timestamps)


def belief_from_occupancy(data: np.ndarray, size: int) -> np.ndarray:
    """The (size, size) normalized belief that nav_msgs/OccupancyGrid data (size * size
    values, 0..100 with 100 at the peak, as the localizer publishes it) stands for, quantized
    to 1 % of the peak; unknown cells (-1) count as 0."""
    values = np.clip(np.asarray(data, dtype=np.float32), 0, None).reshape(size, size)
    return values / max(float(values.sum()), 1e-12)


def scene_from_markers(markers) -> Scene:
    """The trees of a /treeworld/trees MarkerArray (rclpy or rosbags message): each tree's
    kind is its marker's namespace."""
    trees = [m for m in markers.markers if m.ns in (topics.EDIBLE_TREES, topics.POISONOUS_TREES)]
    labels = {m.id: m.text for m in markers.markers if m.ns == topics.TREE_LABELS}
    return Scene(
        np.array([[m.pose.position.x, m.pose.position.y] for m in trees]).reshape(-1, 2),
        np.array([m.ns == topics.POISONOUS_TREES for m in trees], dtype=bool),
        [labels.get(m.id, "") for m in trees])


def scene_to_json(scene: Scene) -> dict:
    return {"trees": [{"x": float(p[0]), "y": float(p[1]), "poisonous": bool(poison),
                       "label": label} for p, poison, label in
                      zip(scene.tree_positions, scene.tree_poisonous, scene.tree_labels)]}


def scene_from_json(document: dict) -> Scene:
    trees = document.get("trees", [])
    return Scene(np.array([[t["x"], t["y"]] for t in trees]).reshape(-1, 2),
                 np.array([t["poisonous"] for t in trees], dtype=bool),
                 [t["label"] for t in trees])


NO_TREES = Scene(np.zeros((0, 2)), np.zeros(0, dtype=bool), [])
