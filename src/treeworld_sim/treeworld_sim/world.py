"""The Tree World simulator: trees with fruit, an agent with health, and its smell
(docs/design.md §2).

One seeded ``numpy.random.Generator`` makes every random draw, so the same seed gives the same
world, the same run and the same odometry noise. Each step is ``observe()`` (sense, maybe eat)
then ``move(displacement, heading)`` (holonomic) or ``drive(forward, turn)`` (differential
drive); the agent moves exactly, while the odometry it reports carries the configured noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from treeworld_schema.topics import START_YAW
from treeworld_sim.camera import PanoramicCamera
from treeworld_sim.config import WorldConfig
from treeworld_sim.embeddings import WordEmbedding, make_embedding
from treeworld_sim.sensors import FRUIT_COUNT_WORDS, DirectionalSensor, SimpleSensor

EDIBLE_FRUITS = ("apple", "banana", "cherry", "date", "elderberry", "fig", "mango", "nectarine",
                 "orange", "papaya", "pear", "plum")
POISON_FRUITS = ("manchineel", "nightshade", "strychnine fruit", "desert rose")
TREE_NAMES = ("Alder", "Birch", "Cedar", "Dogwood", "Elm", "Fir", "Ginkgo", "Hazel", "Ivy",
              "Juniper", "Kapok", "Linden", "Maple", "Nutmeg", "Oak", "Poplar", "Quince",
              "Rowan", "Spruce", "Teak", "Umbrella", "Viburnum", "Willow", "Yew", "Zelkova")


def unit_vector(angle: float) -> np.ndarray:
    return np.array([math.cos(angle), math.sin(angle)])


@dataclass(frozen=True)
class StepRecord:
    """What happened at one step, before the agent moved. Positions in world units."""

    step: int
    position: np.ndarray            # (2,) true position
    heading: np.ndarray             # (2,) unit vector
    odometry_position: np.ndarray   # (2,) integrated measured displacements (noisy)
    odometry_yaw: float             # radians; the true heading's angle unless it is measured
    smell: np.ndarray               # (D,) float64
    closest_tree: int
    closest_distance: float
    health: float
    ate: bool
    camera: np.ndarray | None = None   # (H, W, 3) uint8 panorama, when the world has a camera


class TreeWorld:
    """A world of ``num_trees`` trees and one agent. See WorldConfig for every setting."""

    def __init__(self, config: WorldConfig, embedding: WordEmbedding | None = None):
        self.config = config
        self.generator = np.random.default_rng(config.seed)
        self.embedding = embedding or make_embedding(config.embedding_backend,
                                                     config.sensory_embedding_dim)
        n = config.num_trees
        spread = config.tree_spacing * config.dim
        self.tree_positions = self.generator.normal(0.0, spread, size=(n, 2))   # (N, 2)
        self.tree_poisonous = self.generator.random(n) < config.poisonous_probability
        self.tree_types = [str(self.generator.choice(POISON_FRUITS if poison else EDIBLE_FRUITS))
                           for poison in self.tree_poisonous]
        self.tree_names = [f"{TREE_NAMES[i % len(TREE_NAMES)]} {i // len(TREE_NAMES) + 1}"
                           for i in self.generator.permutation(n)]
        self.tree_embeddings = np.stack([                                          # (N, D)
            self.embedding(kind) + self.embedding(name)
            for kind, name in zip(self.tree_types, self.tree_names)])
        fruit_count_vectors = (np.stack([self.embedding(w) for w in FRUIT_COUNT_WORDS])
                               if config.smell_includes_fruit_count else None)
        sensor_class = DirectionalSensor if config.sensor == "directional" else SimpleSensor
        self.sensor = sensor_class(config.max_sense_distance, config.can_see_fruit_distance,
                                   fruit_count_vectors)
        self.camera = PanoramicCamera(config.camera_height, config.camera_width) \
            if config.camera else None
        self.reset()

    @property
    def smell_dim(self) -> int:
        return self.tree_embeddings.shape[1]

    def reset(self) -> None:
        """Agent back to the origin, heading (1,1)/sqrt(2), full health; all trees refilled."""
        self.step_index = 0
        self.position = np.zeros(2)
        self.heading = unit_vector(START_YAW)
        self.odometry_position = np.zeros(2)
        self.odometry_yaw = START_YAW
        self.odometry_variance = 0.0      # of odometry_position's error, per axis
        self.odometry_yaw_variance = 0.0
        self.health = float(self.config.max_health)
        self.fruit = np.full(self.config.num_trees, self.config.max_fruit, dtype=np.int64)
        self.total_movement = 0.0
        self.fruit_eaten = 0
        self.poisonous_fruit_eaten = 0

    @property
    def alive(self) -> bool:
        return not self.config.allow_death or self.health > 0

    def observe(self) -> StepRecord:
        """Sense at the current position, then eat from the closest tree if near enough."""
        if self.step_index > 0 and self.step_index % self.config.regrow_every == 0:
            self.fruit[:] = self.config.max_fruit
        smell = self.sensor.sense(self.position, self.heading, self.tree_positions,
                                  self.tree_embeddings, self.fruit)
        view = None if self.camera is None else self.camera.render(
            self.position, math.atan2(self.heading[1], self.heading[0]), self.tree_positions,
            self.tree_poisonous)
        ate = self._maybe_eat()
        return StepRecord(self.step_index, self.position.copy(), self.heading.copy(),
                          self.odometry_position.copy(), self.odometry_yaw, smell.vector,
                          smell.closest_tree, smell.closest_distance, self.health, ate, view)

    def _maybe_eat(self) -> bool:
        distances = np.linalg.norm(self.tree_positions - self.position, axis=1)
        tree = int(np.argmin(distances))
        if distances[tree] >= self.config.eat_distance or self.fruit[tree] == 0:
            return False
        self.fruit[tree] -= 1
        self.fruit_eaten += 1
        if self.tree_poisonous[tree]:
            self.poisonous_fruit_eaten += 1
            self.health -= self.config.fruit_health_increase
        else:
            self.health = min(self.health + self.config.fruit_health_increase,
                              self.config.max_health)
        return True

    def move(self, displacement: np.ndarray, heading: np.ndarray) -> np.ndarray:
        """Holonomic: move exactly by ``displacement`` (world units) and face ``heading``;
        return what odometry measured (the heading it reads exactly)."""
        displacement = np.asarray(displacement, dtype=np.float64)
        heading_norm = float(np.hypot(heading[0], heading[1]))
        if heading_norm > 0:
            self.heading = np.asarray(heading, dtype=np.float64) / heading_norm
        self.odometry_yaw = math.atan2(self.heading[1], self.heading[0])
        moving = bool(displacement.any())
        measured = displacement
        if self.config.odometry_noise > 0 and moving:       # wheels at rest do not tick
            measured = displacement + self.generator.normal(0.0, self.config.odometry_noise, 2)
            self.odometry_variance += self.config.odometry_noise**2
        return self._moved(displacement, measured, moving)

    def drive(self, forward: float, turn: float) -> np.ndarray:
        """Differential drive: turn by ``turn`` radians while going ``forward`` world units
        along the mean of the old and new heading (the midpoint rule wheel odometry uses).
        Odometry measures the distance and the turn with their noise and integrates its own
        heading, so a heading error bends every later displacement. Returns the measured
        displacement in the odometry frame."""
        yaw = math.atan2(self.heading[1], self.heading[0])
        displacement = forward * unit_vector(yaw + turn / 2)
        self.heading = unit_vector(yaw + turn)
        moving = bool(forward or turn)
        measured_forward, measured_turn = forward, turn
        if moving:                                           # wheels at rest do not tick
            if self.config.odometry_noise > 0:
                measured_forward += self.generator.normal(0.0, self.config.odometry_noise)
                self.odometry_variance += self.config.odometry_noise**2
            if self.config.heading_noise > 0:
                measured_turn += self.generator.normal(0.0, self.config.heading_noise)
                self.odometry_yaw_variance += self.config.heading_noise**2
        measured = measured_forward * unit_vector(self.odometry_yaw + measured_turn / 2)
        self.odometry_yaw += measured_turn
        return self._moved(displacement, measured, moving)

    def _moved(self, displacement: np.ndarray, measured: np.ndarray, moving: bool) -> np.ndarray:
        self.health -= self.config.move_cost if moving else self.config.rest_cost
        self.position = self.position + displacement
        self.total_movement += float(np.hypot(displacement[0], displacement[1]))
        self.odometry_position = self.odometry_position + measured
        self.step_index += 1
        return measured
