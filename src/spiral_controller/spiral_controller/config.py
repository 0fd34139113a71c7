"""Every setting of the controllers, with its default, unit and allowed range."""
from __future__ import annotations

from dataclasses import dataclass

from treeworld_schema import ConfigError, setting
from treeworld_schema.topics import MOTIONS


@dataclass(frozen=True)
class ControllerConfig:
    """Which path the agent follows, and its shape (docs/design.md §3). World units, steps."""

    controller: str = setting("spiral", "Which path the agent follows (docs/design.md §3); "
                              "forage: a drive-based forager that uses the localizer's estimate",
                              choices=("spiral", "circle", "random", "path", "forage"))
    path_file: str = setting("", "Recorded path to follow (TUM 't x y z qx qy qz qw' or CSV "
                             "'t,x,y'); used by controller=path")
    seed: int = setting(0, "Seed of the random exploration controller", low=0)
    step_period: float = setting(0.1, "Simulated seconds per step (velocity = displacement / "
                                 "step_period)", low=0.0, low_exclusive=True)
    spiral_distance_increment: float = setting(
        25.0, "Radius gained per turn of the spiral", low=0.0, low_exclusive=True)
    spiral_period: int = setting(100, "Steps per turn of the spiral", low=1)
    spiral_max_step: float = setting(
        16.0, "Top speed of the spiral (world units per step): once it would go faster (step "
        "1,018 at the defaults) it goes on along the same curve at this speed. 0 = the seed's "
        "path at every length, ever faster", low=0.0)
    heading_period: int = setting(25, "Steps per turn of the spiral's heading", low=1)
    circle_radius: float = setting(100.0, "Radius of the circle", low=0.0, low_exclusive=True)
    circle_period: int = setting(100, "Steps per lap of the circle", low=1)
    random_speed: float = setting(5.0, "Mean distance per step of random exploration", low=0.0)
    random_turn_std: float = setting(0.15, "Std. dev. of the turning-rate change per step "
                                     "(radians)", low=0.0)
    random_radius: float = setting(400.0, "Random exploration turns back beyond this distance "
                                   "from the start", low=0.0, low_exclusive=True)
    forage_speed: float = setting(20.0, "Forager: world units per step (a step costs the same "
                                  "health however long; keep it at or below the localizer's "
                                  "max_action_norm)", low=0.0, low_exclusive=True)
    forage_hungry_below: float = setting(
        0.85, "Forager: goes to eat below this share of the best health it has had", low=0.0,
        high=1.0)
    forage_pose_source: str = setting(
        "pose", "Forager, ROS node: where it learns its position: pose (/tem/pose, the "
        "localizer's estimate) or odom (/odom, dead reckoning)", choices=("pose", "odom"))
    forage_recall: bool = setting(
        False, "Forager, ROS node: ask the localizer (slam) where the steps its memory is "
        "anchored to are now, each step, and wait for the answer (the launchers set it for a "
        "forager on slam)")
    forage_wait: float = setting(
        2.0, "Forager, ROS node: seconds to wait for the previous step's pose and this step's "
        "smell and health before deciding without them (counted); in real time never for a step "
        "the clock has passed", low=0.0)

    motion: str = setting(
        "holonomic", "How the agent moves (the simulator's motion): holonomic displacements, or "
        "diff_drive: forward speed and turn rate, steering toward what the controller wants",
        choices=MOTIONS)
    max_turn: float = setting(
        0.5, "diff_drive: the most the base turns in one step (radians)", low=0.0,
        low_exclusive=True, high=3.2)

    def check(self) -> None:
        if self.controller == "path" and not self.path_file:
            raise ConfigError("path_file: controller=path needs a path file")
