"""Smell codes: a smell (D values) compressed to a few dozen numbers for the map.

A fixed random projection (Johnson-Lindenstrauss): distances between smells survive up to a
small distortion, so places can be compared by their codes. Not normalized: a smell's size
carries how close the trees are. The matrix comes from a seed, so a saved map and the localizer
that loads it compress smells the same way.
"""
from __future__ import annotations

import numpy as np


class SmellCode:
    def __init__(self, smell_dim: int, code_dim: int = 32, seed: int = 0):
        generator = np.random.default_rng(seed)
        self.smell_dim, self.code_dim, self.seed = smell_dim, code_dim, seed
        self.matrix = (generator.standard_normal((code_dim, smell_dim))
                       / np.sqrt(code_dim)).astype(np.float32)                # (d, D)

    def __call__(self, smell: np.ndarray) -> np.ndarray:
        """(..., D) -> (..., d)."""
        return np.asarray(smell, dtype=np.float32) @ self.matrix.T
