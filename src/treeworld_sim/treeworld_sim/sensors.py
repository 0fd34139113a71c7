"""Smell sensors: what the agent perceives of the trees around it (docs/design.md §2).

The smell is a diffusion model: each tree's embedding, weighted by a Gaussian kernel of the
distance whose width is set so it falls to 0.1 at ``max_sense_distance``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FRUIT_COUNT_WORDS = ("no fruit", "one fruit", "two fruit", "several fruit", "many fruit")
KERNEL_AT_MAX_DISTANCE = 0.1


def fruit_count_category(count: int) -> int:
    """Index into FRUIT_COUNT_WORDS: 0, 1, 2, several (3-5), many (>5)."""
    return count if count <= 2 else (3 if count <= 5 else 4)


@dataclass(frozen=True)
class Smell:
    vector: np.ndarray          # (D,) float64
    closest_tree: int           # index into the world's trees, -1 when none is sensed
    closest_distance: float     # world units, inf when none is sensed


class SimpleSensor:
    """Smells every tree at once, weighted by distance; near a tree, also its fruit count.

    Args:
        max_sense_distance: the kernel falls to 0.1 here (world units).
        can_see_fruit_distance: within this of the closest tree, add its fruit-count word.
        fruit_count_vectors: (5, D) embeddings of FRUIT_COUNT_WORDS, or None to leave them out.
    """

    def __init__(self, max_sense_distance: float, can_see_fruit_distance: float,
                 fruit_count_vectors: np.ndarray | None):
        self.max_sense_distance = max_sense_distance
        self.can_see_fruit_distance = can_see_fruit_distance
        self.fruit_count_vectors = fruit_count_vectors
        # virtual diffusion time t with exp(-r^2 / 2t) = a at r = max_sense_distance
        self.diffusion_time = max_sense_distance**2 / (2 * math.log(1 / KERNEL_AT_MAX_DISTANCE))

    def kernel(self, distance: np.ndarray) -> np.ndarray:
        return np.exp(-(distance**2) / (2 * self.diffusion_time))

    def _with_fruit_count(self, vector: np.ndarray, tree: int, distance: float,
                          fruit: np.ndarray) -> np.ndarray:
        if self.fruit_count_vectors is None or distance >= self.can_see_fruit_distance:
            return vector
        return vector + self.fruit_count_vectors[fruit_count_category(int(fruit[tree]))]

    def sense(self, position: np.ndarray, heading: np.ndarray, tree_positions: np.ndarray,
              tree_embeddings: np.ndarray, fruit: np.ndarray) -> Smell:
        distances = np.linalg.norm(tree_positions - position, axis=1)  # (N,)
        vector = self.kernel(distances) @ tree_embeddings             # (D,)
        closest = int(np.argmin(distances))
        distance = float(distances[closest])
        return Smell(self._with_fruit_count(vector, closest, distance, fruit), closest, distance)


class DirectionalSensor(SimpleSensor):
    """Smells only the closest tree inside a cone around the heading (cos >= 0.9) and range."""

    cone_cosine = 0.9

    def sense(self, position: np.ndarray, heading: np.ndarray, tree_positions: np.ndarray,
              tree_embeddings: np.ndarray, fruit: np.ndarray) -> Smell:
        offsets = tree_positions - position                        # (N, 2)
        distances = np.linalg.norm(offsets, axis=1)                # (N,)
        cosines = offsets @ heading / np.maximum(distances, 1e-12)
        visible = (cosines >= self.cone_cosine) & (distances <= self.max_sense_distance)
        if not visible.any():
            return Smell(np.zeros(tree_embeddings.shape[1]), -1, math.inf)
        closest = int(np.argmin(np.where(visible, distances, np.inf)))
        distance = float(distances[closest])
        vector = self.kernel(np.float64(distance)) * tree_embeddings[closest]
        return Smell(self._with_fruit_count(vector, closest, distance, fruit), closest, distance)
