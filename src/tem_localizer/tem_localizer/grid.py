"""The location belief grid: geometry, the initial belief, summaries, OccupancyGrid arrays.

belief[b, i, j] is the probability that agent b is at y = cell_size * (i - R),
x = cell_size * (j - R): rows are y, columns are x, the origin is the centre cell
(docs/design.md §4).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from tem_localizer.config import grid_cell_size


@functools.lru_cache(maxsize=16)
def _cell_centres(size: int, cell_size: float, device: torch.device,
                  dtype: torch.dtype) -> torch.Tensor:
    offsets = (torch.arange(size, device=device, dtype=dtype) - (size - 1) // 2) * cell_size
    y, x = torch.meshgrid(offsets, offsets, indexing="ij")
    return torch.stack([x, y], dim=-1)


@dataclass(frozen=True)
class BeliefSummary:
    mean: torch.Tensor         # (B, 2) world units, (x, y)
    covariance: torch.Tensor   # (B, 2, 2) world units^2
    mode: torch.Tensor         # (B, 2) centre of the most likely cell


@dataclass(frozen=True)
class BeliefGrid:
    """A square grid of ``size`` cells per side (odd) spanning ``extent`` world units."""

    size: int = 101
    extent: float = 1000.0

    @property
    def radius(self) -> int:
        """R: cells from the centre to the edge."""
        return (self.size - 1) // 2

    @property
    def cell_size(self) -> float:
        """gamma: world units per cell."""
        return grid_cell_size(self.extent, self.size)

    @property
    def occupancy_origin(self) -> tuple[float, float]:
        """World (x, y) of the grid's outer corner, so that cell centres fall on grid points."""
        corner = -(self.radius + 0.5) * self.cell_size
        return corner, corner

    def cell_centres(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """(S, S, 2): the world (x, y) of every cell centre."""
        return _cell_centres(self.size, self.cell_size, torch.device(device or "cpu"), dtype)

    def initial_belief(self, centre: torch.Tensor) -> torch.Tensor:
        """(B, S, S) Gaussian beliefs, proportional to exp(-(|p - centre| / sd)^2) with
        sd = 0.1 R gamma, around ``centre`` (B, 2) world units."""
        sd = 0.1 * self.radius * self.cell_size
        cells = self.cell_centres(centre.device, centre.dtype)            # (S, S, 2)
        offsets = cells[None] - centre[:, None, None, :]                   # (B, S, S, 2)
        belief = torch.exp(-(offsets.pow(2).sum(-1)) / sd**2)              # (B, S, S)
        return belief / belief.sum(dim=(1, 2), keepdim=True)

    def summarize(self, belief: torch.Tensor) -> BeliefSummary:
        """Mean, covariance and most likely cell of (B, S, S) normalized beliefs."""
        mean = self.mean(belief)
        mode = self._cells(belief)[belief.reshape(belief.shape[0], -1).argmax(dim=1)]  # (B, 2)
        return BeliefSummary(mean, self.covariance(belief, mean), mode)

    def mean(self, belief: torch.Tensor) -> torch.Tensor:
        """(B, 2) mean of (B, S, S) normalized beliefs."""
        return belief.reshape(belief.shape[0], -1) @ self._cells(belief)

    def covariance(self, belief: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """(B, 2, 2) covariance of (B, S, S) normalized beliefs about their ``mean`` (B, 2)."""
        weights = belief.reshape(belief.shape[0], -1)                          # (B, S*S)
        centred = self._cells(belief)[None] - mean[:, None, :]                 # (B, S*S, 2)
        return torch.einsum("bc,bci,bcj->bij", weights, centred, centred)

    def _cells(self, belief: torch.Tensor) -> torch.Tensor:
        """(S*S, 2) cell centres on ``belief``'s device and dtype."""
        return self.cell_centres(belief.device, belief.dtype).reshape(-1, 2)

    def to_occupancy(self, belief: torch.Tensor) -> torch.Tensor:
        """(B, S*S) int8 in 0..100, row-major, 100 = the most likely cell (OccupancyGrid.data)."""
        flat = belief.reshape(belief.shape[0], -1)
        peak = flat.max(dim=1, keepdim=True).values.clamp_min(torch.finfo(flat.dtype).tiny)
        return torch.round(flat / peak * 100).to(torch.int8)
