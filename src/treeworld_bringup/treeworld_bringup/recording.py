"""What a run leaves behind, however it was run (in-process, live ROS graph, replayed bag)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
    true_positions: np.ndarray                  # (T, 2) where the agent was when it sensed
    estimates: np.ndarray | None = None         # (T, 2) localizer's belief mean
    losses: np.ndarray | None = None            # (T,) NaN where the step was skipped
    belief_frames: np.ndarray | None = None     # (K, S, S) every belief_stride-th belief
    belief_stride: int = 4
    grid_extent: float = 1000.0
    summary: dict = field(default_factory=dict)  # world and localizer counters

    @property
    def steps(self) -> int:
        return len(self.timestamps)
