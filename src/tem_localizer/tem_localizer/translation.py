"""Path integration: shift a belief by an action with a convolution (docs/design.md §5).

The kernel for action a moves belief mass by a / cell_size cells, split bilinearly between the
neighbouring cells. Each axis' weights are a tent function max(0, 1 - |k - p|) around the
target pre-index p = -a / cell_size + K, which is exactly the bilinear split (all mass on one
cell for a whole-cell shift) and is differentiable in a, so a learned action map can train.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def filter_size_for(max_action_norm: float, cell_size: float, blur_sigma: float = 0.0) -> int:
    """Smallest odd kernel size that holds the largest shift (and its blur): in cells."""
    return 2 * math.ceil(max_action_norm / cell_size + 3 * blur_sigma) + 3


def translation_kernel(action: torch.Tensor, cell_size: float, filter_size: int,
                       blur_sigma: float = 0.0) -> torch.Tensor:
    """(B, f, f) kernels, indexed (y, x), for actions (B, 2) given as world-frame (x, y).

    ``blur_sigma`` (cells) spreads the kernel with a Gaussian to model action uncertainty.
    """
    half = (filter_size - 1) // 2
    pre_index = (-action / cell_size + half).clamp(0, filter_size - 1)           # (B, 2)
    taps = torch.arange(filter_size, device=action.device, dtype=action.dtype)   # (f,)
    weights = (1 - (taps[None, None, :] - pre_index[..., None]).abs()).clamp_min(0)  # (B, 2, f)
    kernel = weights[:, 1, :, None] * weights[:, 0, None, :]                     # (B, f, f)
    if blur_sigma > 0:
        # imported here: torchvision takes over a second to import; only this option needs it
        import torchvision.transforms.v2.functional as TF

        size = 2 * math.ceil(3 * blur_sigma) + 1
        kernel = TF.gaussian_blur(kernel[:, None], [size, size], [blur_sigma, blur_sigma])[:, 0]
        kernel = kernel / kernel.sum(dim=(1, 2), keepdim=True)
    return kernel


def path_integrate(belief: torch.Tensor, action: torch.Tensor, cell_size: float,
                   filter_size: int, blur_sigma: float = 0.0) -> torch.Tensor:
    """Shift each belief (B, S, S) by its own action (B, 2); mass pushed off the grid is lost.

    A grouped convolution: one kernel per batch element, no mixing between elements.
    """
    batch = belief.shape[0]
    kernel = translation_kernel(action, cell_size, filter_size, blur_sigma)     # (B, f, f)
    shifted = F.conv2d(belief[None], kernel[:, None], padding=filter_size // 2,
                       groups=batch)                                            # (1, B, S, S)
    return shifted[0]


def sharpen(belief: torch.Tensor, exponent: float) -> torch.Tensor:
    """belief ** exponent, renormalized: counters the blur of repeated bilinear shifts."""
    belief = belief.clamp_min(0).pow(exponent)
    total = belief.sum(dim=(1, 2), keepdim=True)
    return belief / total.clamp_min(torch.finfo(belief.dtype).tiny)
