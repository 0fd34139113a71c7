"""TEM2d: path integration on a belief grid plus a location-belief memory (docs/design.md §7).

One step: shift the last belief by the action (grid cells), optionally mix in a belief
recalled from memory by smell (place cells), sharpen against the convolution's blur, predict
the smell from memory, and store the new (belief, smell) pair.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tem_localizer.grid import BeliefGrid
from tem_localizer.memory import LocationBeliefMemory
from tem_localizer.translation import filter_size_for, path_integrate, sharpen


@dataclass(frozen=True)
class TEMStep:
    belief: torch.Tensor          # (B, S, S) sums to 1 (0 only where all mass left the grid)
    loss: torch.Tensor            # (B,) the three-term loss
    inferred_mass: torch.Tensor   # (B,) belief mass left on the grid after path integration


class TEM2d(nn.Module):
    """The seed's localizer, batched over B agents, on whatever device its inputs live.

    Args:
        grid: the belief grid geometry.
        smell_dim: D, the smell vector length.
        max_action_norm: largest action the kernel must hold (world units).
        use_memory_to_localize: mix a belief recalled from memory into path integration.
        mixing: "average" (the seed's code) or "affinity" (weight c^k on path integration,
            c = cosine between the smells the memory reads at the recalled and the previous
            belief: trust path integration when the memory says nothing changed).
        affinity_exponent: k for the affinity mixing.
        sharpen_exponent: belief <- belief ** e, then renormalized (counters the blur).
        num_samples, reference_match_threshold, sample_temperature: memory.sample arguments.
        read_threshold: affinity threshold of memory reads, in units of 1 / S^2.
        kernel_blur_sigma: Gaussian blur of the translation kernel (cells), 0 = off.
        learn_action_map: a trainable 2x2 map applied to actions (for actions whose effect
            must be learned); otherwise the model has no parameters.
        memory_capacity: keep only the newest this many (belief, smell) pairs, so a step
            costs the same at any run length; None keeps every pair.
        seed: seed of the memory-sampling generator.
    """

    def __init__(self, grid: BeliefGrid, smell_dim: int, *, batch_size: int = 1,
                 max_action_norm: float = 20.0, use_memory_to_localize: bool = True,
                 mixing: str = "average", affinity_exponent: float = 20.0,
                 sharpen_exponent: float = 1.05, num_samples: int = 25,
                 reference_match_threshold: float = 0.01,
                 sample_temperature: float | None = None, read_threshold: float = 2.0,
                 kernel_blur_sigma: float = 0.0, learn_action_map: bool = False,
                 memory_capacity: int | None = None, device: torch.device | str = "cpu",
                 seed: int = 0):
        super().__init__()
        self.grid, self.smell_dim, self.batch_size = grid, smell_dim, batch_size
        self.max_action_norm = max_action_norm
        self.use_memory_to_localize = use_memory_to_localize
        self.mixing, self.affinity_exponent = mixing, affinity_exponent
        self.sharpen_exponent = sharpen_exponent
        self.num_samples = num_samples
        self.reference_match_threshold = reference_match_threshold
        self.sample_temperature = sample_temperature
        self.read_threshold = read_threshold / grid.size**2
        self.kernel_blur_sigma = kernel_blur_sigma
        self.filter_size = filter_size_for(max_action_norm, grid.cell_size, kernel_blur_sigma)
        self.device = torch.device(device)
        self.action_map = nn.Parameter(torch.eye(2, device=self.device)) \
            if learn_action_map else None
        self.memory = LocationBeliefMemory(batch_size, grid.size, smell_dim, device=self.device,
                                           max_entries=memory_capacity)
        self.seed = seed
        self.generator = torch.Generator(self.device)
        self.reset()

    def reset(self) -> None:
        """Forget everything: empty memory, sampling generator back to its seed."""
        self.memory.reset()
        self.generator.manual_seed(self.seed)

    def initial_belief(self) -> torch.Tensor:
        return self.grid.initial_belief(torch.zeros(self.batch_size, 2, device=self.device))

    def _mix(self, inferred: torch.Tensor, recalled: torch.Tensor, last_belief: torch.Tensor
             ) -> torch.Tensor:
        """The mix of path integration and recall, batched."""
        if self.mixing == "average":
            weight = torch.full((inferred.shape[0],), 0.5, device=inferred.device)
        else:
            at_recalled = self.memory.read(recalled, self.read_threshold)
            at_last = self.memory.read(last_belief, self.read_threshold)
            cosine = torch.cosine_similarity(at_recalled, at_last, dim=-1).clamp_min(0)
            weight = 1 - cosine.pow(self.affinity_exponent)
        return inferred + weight[:, None, None] * (recalled - inferred)

    def _path_integrated(self, last_belief: torch.Tensor | None, action: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """(last belief, shifted belief (B, S, S)); the last belief is the initial one at the
        start."""
        if last_belief is None:
            last_belief = self.initial_belief()
        if self.action_map is not None:
            action = action @ self.action_map.T
        return last_belief, path_integrate(last_belief, action, self.grid.cell_size,
                                           self.filter_size, self.kernel_blur_sigma)

    def integrate_motion(self, last_belief: torch.Tensor | None, action: torch.Tensor
                         ) -> TEMStep:
        """Path integration alone, for a step whose smell is not used: no recall, no write,
        loss NaN."""
        _, inferred = self._path_integrated(last_belief, action)
        inferred_mass = inferred.sum(dim=(1, 2))
        loss = torch.full_like(inferred_mass, float("nan"))
        return TEMStep(sharpen(inferred, self.sharpen_exponent), loss, inferred_mass)

    def forward(self, last_belief: torch.Tensor | None, action: torch.Tensor,
                smell: torch.Tensor) -> TEMStep:
        """last_belief (B, S, S) or None (start), action (B, 2) world units, smell (B, D)."""
        last_belief, inferred = self._path_integrated(last_belief, action)      # (B, S, S)
        inferred_mass = inferred.sum(dim=(1, 2))                                 # (B,)
        recalled = None
        has_recall = torch.zeros_like(inferred_mass, dtype=torch.bool)
        if self.use_memory_to_localize:
            recalled = self.memory.sample(
                smell, reference=last_belief, num_samples=self.num_samples,
                reference_match_threshold=self.reference_match_threshold,
                temperature=self.sample_temperature, generator=self.generator)
        if recalled is not None:
            has_recall = recalled.sum(dim=(1, 2)) > 1e-6                         # (B,)
            mixed = self._mix(inferred, recalled, last_belief)
            belief = torch.where(has_recall[:, None, None], mixed, inferred)
        else:
            belief = inferred
        belief = sharpen(belief, self.sharpen_exponent)

        predicted = self.memory.read(belief, self.read_threshold)                # (B, D)
        loss = (smell - predicted).pow(2).mean(dim=-1)                           # (B,)
        if recalled is not None:
            loss = loss + has_recall * ((belief - inferred).pow(2).mean(dim=(1, 2))
                                        + (belief - recalled).pow(2).mean(dim=(1, 2)))
        self.memory.write(belief, smell)
        return TEMStep(belief, loss, inferred_mass)
