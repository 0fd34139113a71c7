"""A location belief that follows the agent anywhere (docs/design.md §4, §5, §10).

The belief grid keeps its S x S cells, but the window they cover moves: when the belief's mean
comes within ``margin`` cells of an edge, the window re-centres on it by whole cells (the
content moves the other way in the array, world coordinates stay). So the grid no longer bounds
the world. A loop closure moves the belief itself (``shift``): whole cells by moving the array,
the remainder by the translation kernel.
"""
from __future__ import annotations

import numpy as np
import torch

from tem_localizer.grid import BeliefGrid
from tem_localizer.translation import filter_size_for, path_integrate, sharpen


def roll_cells(belief: torch.Tensor, rows: int, columns: int) -> torch.Tensor:
    """(B, S, S) moved by whole cells (+rows: up in y, +columns: right in x); what leaves the
    array is dropped, what enters is zero."""
    size = belief.shape[-1]
    moved = torch.zeros_like(belief)
    if abs(rows) >= size or abs(columns) >= size:
        return moved
    source_rows = slice(max(0, -rows), size - max(0, rows))
    target_rows = slice(max(0, rows), size - max(0, -rows))
    source_cols = slice(max(0, -columns), size - max(0, columns))
    target_cols = slice(max(0, columns), size - max(0, -columns))
    moved[:, target_rows, target_cols] = belief[:, source_rows, source_cols]
    return moved


class ScrollingBelief:
    """One agent's belief on a grid window centred at ``centre`` (world units, a whole number
    of cells from the origin)."""

    def __init__(self, grid: BeliefGrid, device: torch.device, max_action_norm: float,
                 sharpen_exponent: float = 1.05, margin: int | None = None):
        self.grid, self.device = grid, device
        self.sharpen_exponent = sharpen_exponent
        self.max_action_norm = max_action_norm
        self.filter_size = filter_size_for(max_action_norm, grid.cell_size)
        self.margin = margin if margin is not None else grid.radius // 2
        self.reset(np.zeros(2))

    def reset(self, position: np.ndarray) -> None:
        """The initial Gaussian belief around ``position``, the window centred on it."""
        self.centre = np.round(np.asarray(position, float) / self.grid.cell_size) * \
            self.grid.cell_size
        local = torch.as_tensor(np.asarray(position) - self.centre, dtype=torch.float32,
                                device=self.device)[None]
        self.belief = self.grid.initial_belief(local)                        # (1, S, S)

    def move(self, action: np.ndarray) -> None:
        """Path integration by ``action`` (world units; beyond the kernel's reach, whole cells
        first), then sharpening."""
        if float(np.hypot(*action)) <= self.max_action_norm:
            action_t = torch.as_tensor(action, dtype=torch.float32, device=self.device)[None]
            self.belief = path_integrate(self.belief, action_t, self.grid.cell_size,
                                         self.filter_size)
            total = self.belief.sum()
            self.belief = self.belief / total.clamp_min(torch.finfo(torch.float32).tiny)
        else:
            self.shift(action)
        self.belief = sharpen(self.belief, self.sharpen_exponent)
        self._recentre()

    def shift(self, delta: np.ndarray) -> None:
        """Move the belief by ``delta`` world units (a correction or a step of any size)."""
        cells = np.round(np.asarray(delta, float) / self.grid.cell_size).astype(int)
        self.belief = roll_cells(self.belief, int(cells[1]), int(cells[0]))
        remainder = np.asarray(delta, float) - cells * self.grid.cell_size
        if np.any(np.abs(remainder) > 1e-9):
            remainder_t = torch.as_tensor(remainder, dtype=torch.float32,
                                          device=self.device)[None]
            # at most half a cell: a 3 x 3 kernel holds it (a step's kernel is sized for the
            # largest action, 7 x 7 at the defaults, and cost a closing step 0.18 ms more)
            self.belief = path_integrate(self.belief, remainder_t, self.grid.cell_size, 3)
        total = self.belief.sum()
        if float(total) <= 0:            # moved off the window entirely: start over there
            self.reset(self.mean() + delta)
            return
        self.belief = self.belief / total
        self._recentre()

    @property
    def belief(self) -> torch.Tensor:
        return self._belief

    @belief.setter
    def belief(self, value: torch.Tensor) -> None:
        self._belief, self._mean, self._covariance = value, None, None

    def _local_mean(self) -> tuple[torch.Tensor, np.ndarray]:
        """The mean relative to the window's centre, (1, 2) and (2,), once per belief."""
        if self._mean is None:
            mean = self.grid.mean(self._belief)
            self._mean = mean, mean[0].double().cpu().numpy()
        return self._mean

    def mean(self) -> np.ndarray:
        return self._local_mean()[1] + self.centre

    def covariance(self) -> np.ndarray:
        """Computed once per belief, and only when asked for: a closing step moves the
        belief twice, and re-centring needs only the mean."""
        if self._covariance is None:
            self._covariance = self.grid.covariance(self._belief, self._local_mean()[0])[0] \
                .double().cpu().numpy()
        return self._covariance

    def _recentre(self) -> None:
        local = self.mean() - self.centre
        cells = np.round(local / self.grid.cell_size).astype(int)
        if np.abs(cells).max() <= self.margin:
            return
        self.belief = roll_cells(self.belief, -int(cells[1]), -int(cells[0]))
        self.belief = self.belief / self.belief.sum().clamp_min(torch.finfo(torch.float32).tiny)
        self.centre = self.centre + cells * self.grid.cell_size

    @property
    def occupancy_origin(self) -> tuple[float, float]:
        """World (x, y) of the window's outer corner, for nav_msgs/OccupancyGrid."""
        corner = self.grid.occupancy_origin
        return corner[0] + float(self.centre[0]), corner[1] + float(self.centre[1])
