"""Associative memories of (location belief, smell) pairs: place cells for the TEM
(docs/design.md §6).

``LocationBeliefMemory`` is the faithful episodic form: it keeps every pair, reads smell by
belief affinity and samples beliefs by smell. ``AccumulatedMemory`` reads the same values
(without the affinity threshold) from two running sums, at a cost that does not grow with time.
Both are batched over B agents whose memories never mix.
"""
from __future__ import annotations

import torch


class LocationBeliefMemory:
    """Episodic memory: T pairs (m_t, v_t) per agent, m_t a belief (S, S), v_t a smell (D,).

    Storage grows by doubling; entries removed by ``prune`` are masked out, not moved, so the
    batch stays rectangular. With ``max_entries`` it keeps only the newest that many pairs (a
    ring: the oldest is overwritten), so reads and writes cost the same however long the agent
    runs; None keeps everything.
    """

    def __init__(self, batch_size: int, grid_size: int, smell_dim: int, device=None,
                 dtype=torch.float32, initial_slots: int = 256, max_entries: int | None = None):
        self.batch_size, self.grid_size, self.smell_dim = batch_size, grid_size, smell_dim
        self.device, self.dtype = device, dtype
        self.max_entries = max_entries
        self.initial_slots = min(initial_slots, max_entries or initial_slots)
        self.reset()

    def reset(self) -> None:
        cells = self.grid_size**2
        slots = self.initial_slots
        self.beliefs = torch.zeros(self.batch_size, slots, cells, device=self.device,
                                   dtype=self.dtype)                        # (B, slots, S*S)
        self.smells = torch.zeros(self.batch_size, slots, self.smell_dim,
                                  device=self.device, dtype=self.dtype)     # (B, slots, D)
        self.valid = torch.zeros(self.batch_size, slots, dtype=torch.bool,
                                 device=self.device)                        # (B, slots)
        self.length = 0          # slots in use
        self.written = 0         # pairs ever written

    def __len__(self) -> int:
        return self.length

    @property
    def nbytes(self) -> int:
        """Bytes of stored pairs (used slots only)."""
        per_entry = (self.beliefs.shape[2] + self.smell_dim) * self.beliefs.element_size()
        return self.batch_size * self.length * per_entry

    def _grow(self) -> None:
        slots = 2 * self.beliefs.shape[1]
        if self.max_entries is not None:
            slots = min(slots, self.max_entries)

        def grown(store: torch.Tensor) -> torch.Tensor:
            bigger = store.new_zeros(store.shape[0], slots, *store.shape[2:])
            bigger[:, : store.shape[1]] = store
            return bigger

        self.beliefs, self.smells, self.valid = (
            grown(self.beliefs), grown(self.smells), grown(self.valid))

    def write(self, belief: torch.Tensor, smell: torch.Tensor) -> None:
        """Store one pair per agent: belief (B, S, S), smell (B, D); when full, in place of
        the oldest."""
        full = self.max_entries is not None and self.length == self.max_entries
        if not full and self.length == self.beliefs.shape[1]:
            self._grow()
        slot = self.written % self.max_entries if full else self.length
        if torch.is_grad_enabled() and (belief.requires_grad or smell.requires_grad):
            # earlier reads in this training window saved the stores for backward: write
            # into copies so those saved tensors stay as they were
            self.beliefs, self.smells = self.beliefs.clone(), self.smells.clone()
            self.valid = self.valid.clone()
        self.beliefs[:, slot] = belief.reshape(self.batch_size, -1)
        self.smells[:, slot] = smell
        self.valid[:, slot] = True
        self.length = max(self.length, slot + 1)
        self.written += 1

    def detach(self) -> None:
        """Cut stored pairs from the autograd graph (after an optimizer step)."""
        self.beliefs = self.beliefs.detach()
        self.smells = self.smells.detach()

    def affinity(self, query: torch.Tensor) -> torch.Tensor:
        """<q, m_t> summed over cells: query (B, Q, S, S) -> (B, Q, T); 0 for removed entries."""
        keys = self.beliefs[:, : self.length]                                 # (B, T, S*S)
        flat = query.reshape(query.shape[0], query.shape[1], -1)              # (B, Q, S*S)
        return (flat @ keys.transpose(1, 2)) * self.valid[:, None, : self.length]

    def read(self, query: torch.Tensor, threshold: float | None = None,
             mask_diagonal: bool = False) -> torch.Tensor:
        """Smell predicted at belief ``query``: (B, S, S) -> (B, D), or (B, Q, S, S) -> (B, Q, D).

        Weights are affinities a_t / sum a_t after zeroing those below ``threshold`` (default
        2 / S^2); zeros where no affinity survives or the memory is empty. ``mask_diagonal``
        leaves entry q out of query q's read (queries are the memory's own keys).
        """
        single = query.dim() == 3
        queries = query[:, None] if single else query
        if self.length == 0:
            shape = (queries.shape[0], queries.shape[1], self.smell_dim)
            result = queries.new_zeros(shape)
            return result[:, 0] if single else result
        if threshold is None:
            threshold = 2.0 / self.grid_size**2
        affinity = self.affinity(queries)                                     # (B, Q, T)
        affinity = torch.where(affinity < threshold, torch.zeros_like(affinity), affinity)
        if mask_diagonal:
            affinity = affinity * (1 - torch.eye(affinity.shape[1], affinity.shape[2],
                                                 device=affinity.device, dtype=affinity.dtype))
        total = affinity.sum(dim=-1, keepdim=True)                            # (B, Q, 1)
        weights = affinity / total.clamp_min(torch.finfo(affinity.dtype).tiny)
        result = weights @ self.smells[:, : self.length]                      # (B, Q, D)
        return result[:, 0] if single else result

    def sample(self, smell: torch.Tensor, reference: torch.Tensor | None = None,
               num_samples: int = 25, aggregate: bool = True,
               reference_match_threshold: float = 0.01, temperature: float | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Beliefs recalled by smell (B, D): entries scored by <v_t, smell>, softmax over
        score / temperature (default sqrt(D)), ``num_samples`` drawn with replacement.

        With ``reference`` (B, S, S) (the previous belief) scores are multiplied by each
        entry's affinity to it over the largest affinity, and entries below
        ``reference_match_threshold`` are dropped. Returns the renormalized mean (B, S, S)
        when ``aggregate``, else (B, num_samples, S, S); zeros for an agent with nothing left;
        None when the memory is empty.
        """
        if self.length == 0:
            return None
        if temperature is None:
            temperature = self.smell_dim**0.5
        smells = self.smells[:, : self.length]                                # (B, T, D)
        scores = (smells @ smell[:, :, None])[..., 0]                         # (B, T)
        keep = self.valid[:, : self.length].clone()                           # (B, T)
        if reference is not None:
            match = self.affinity(reference[:, None])[:, 0]                   # (B, T)
            peak = match.max(dim=1, keepdim=True).values
            match = match / peak.clamp_min(torch.finfo(match.dtype).tiny)
            scores = scores * match
            keep &= match >= reference_match_threshold
        found = keep.any(dim=1)                                               # (B,)
        logits = torch.where(keep, scores / temperature, torch.full_like(scores, -torch.inf))
        logits = torch.where(found[:, None], logits, torch.zeros_like(logits))
        probabilities = torch.softmax(logits, dim=1)                          # (B, T)
        picks = torch.multinomial(probabilities, num_samples, replacement=True,
                                  generator=generator)                        # (B, n)
        cells = self.beliefs.shape[2]
        drawn = torch.gather(self.beliefs[:, : self.length], 1,
                             picks[..., None].expand(-1, -1, cells))          # (B, n, S*S)
        drawn = drawn * found[:, None, None]
        size = self.grid_size
        if not aggregate:
            return drawn.reshape(-1, num_samples, size, size)
        mean = drawn.mean(dim=1)                                              # (B, S*S)
        mean = mean / mean.sum(dim=1, keepdim=True).clamp_min(torch.finfo(mean.dtype).tiny)
        return mean.reshape(-1, size, size)

    def prune(self, max_error: float = 0.05, threshold: float | None = None) -> int:
        """Remove entries the others already predict: leave-one-out read error (mean squared,
        relative to the entry's mean squared smell) below ``max_error``. An entry is only
        removed if no other entry removed in the same pass reads from it, so nothing that a
        removed entry's prediction depends on goes with it. Returns the number removed."""
        removed = 0
        while self.length:
            keys = self.beliefs[:, : self.length].reshape(
                self.batch_size, self.length, self.grid_size, self.grid_size)
            predicted = self.read(keys, threshold, mask_diagonal=True)        # (B, T, D)
            smells = self.smells[:, : self.length]
            error = (predicted - smells).pow(2).mean(-1) / smells.pow(2).mean(-1).clamp_min(1e-12)
            has_support = predicted.abs().sum(-1) > 0
            candidates = self.valid[:, : self.length] & has_support & (error < max_error)
            if not candidates.any():
                break
            depends = self.affinity(keys) > 0                                 # (B, T, T)
            for b in range(self.batch_size):
                chosen: list[int] = []
                for t in sorted(candidates[b].nonzero()[:, 0].tolist(),
                                key=lambda i: float(error[b, i])):
                    if not any(depends[b, c, t] or depends[b, t, c] for c in chosen):
                        chosen.append(t)
                self.valid[b, chosen] = False
                removed += len(chosen)
        return removed


class AccumulatedMemory:
    """Constant-size memory: sum_t m_t v_t^T (S*S x D) and sum_t m_t (S*S) per agent.

    Because a read is linear in the query with weights a_t / sum a_t, these two sums give the
    same read as the episodic memory with the affinity threshold off, at a cost independent
    of how many steps were stored. It cannot sample (that needs the individual entries).
    """

    def __init__(self, batch_size: int, grid_size: int, smell_dim: int, device=None,
                 dtype=torch.float32):
        cells = grid_size**2
        self.belief_smell = torch.zeros(batch_size, cells, smell_dim, device=device,
                                        dtype=dtype)                          # (B, S*S, D)
        self.belief_total = torch.zeros(batch_size, cells, device=device, dtype=dtype)
        self.length = 0

    def write(self, belief: torch.Tensor, smell: torch.Tensor) -> None:
        flat = belief.reshape(belief.shape[0], -1)                            # (B, S*S)
        self.belief_smell += flat[:, :, None] * smell[:, None, :]
        self.belief_total += flat
        self.length += 1

    def read(self, query: torch.Tensor) -> torch.Tensor:
        """(B, S, S) -> (B, D)."""
        flat = query.reshape(query.shape[0], -1)
        numerator = torch.einsum("bc,bcd->bd", flat, self.belief_smell)
        denominator = (flat * self.belief_total).sum(dim=1, keepdim=True)
        return numerator / denominator.clamp_min(torch.finfo(flat.dtype).tiny)
