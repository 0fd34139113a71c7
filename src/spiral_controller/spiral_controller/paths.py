"""Controllers: each step they return a world-frame displacement and a heading.

A controller is a callable ``controller(step) -> (displacement, heading)`` with numpy (2,)
arrays in world units; it knows nothing of the simulator or the true pose, so the same object
drives the in-process runner and the ROS 2 controller node.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import numpy as np

from spiral_controller.config import ControllerConfig
from spiral_controller.drive import DiffDrive
from spiral_controller.forager import Forager, ForagerSettings
from treeworld_schema.topics import START_YAW


class Controller(Protocol):
    def __call__(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(displacement, heading) for ``step``; steps are asked for in order 0, 1, 2, ..."""


def senses(controller) -> bool:
    """Whether ``controller`` uses what the agent knows (``observe(estimate, smell, health)``
    before each step): the forager does, the traced and random paths do not."""
    return hasattr(controller, "observe")


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.hypot(vector[0], vector[1]))
    return vector / norm if norm > 0 else vector


class TracedPath:
    """Follows coords(t): the action at step t is coords(t+1) - coords(t)."""

    def coords(self, step: int) -> np.ndarray:
        raise NotImplementedError

    def heading(self, step: int, displacement: np.ndarray) -> np.ndarray:
        return _unit(displacement)

    def __call__(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        displacement = self.coords(step + 1) - self.coords(step)
        return displacement, self.heading(step, displacement)


class Spiral(TracedPath):
    """The seed's PathTracing agent: coords(t) = alpha t (cos beta t, sin beta t), with the
    heading turning independently at gamma t. Default: 1000 steps end 250 from the origin.

    The seed's agent moves faster the farther out it is (alpha sqrt(1 + (beta t)^2) a step:
    157 units a step by step 10,000, far past what odometry may jump in a step). So once it
    would pass ``max_step`` (step 1,018 at the defaults, after the seed's 1,000 steps) it goes
    on along the same curve, r = (alpha / beta) theta, at ``max_step`` a step, as a robot at
    its top speed would. ``max_step`` 0: the seed's path at every length."""

    def __init__(self, distance_increment: float = 25.0, period: int = 100,
                 heading_period: int = 25, max_step: float = 16.0):
        self.alpha = distance_increment / period
        self.beta = 2 * math.pi / period
        self.gamma = 2 * math.pi / heading_period
        self.max_step = max_step
        if max_step > 0:
            self.top_speed_from = math.sqrt(max(max_step / self.alpha, 1.0) ** 2 - 1) / self.beta
            self.arc_at_top_speed = self._arc(self.beta * self.top_speed_from)
        else:
            self.top_speed_from = math.inf

    def _arc(self, angle: float) -> float:
        """Length of the curve r = (alpha / beta) theta from theta = 0 to ``angle``."""
        return self.alpha / self.beta / 2 * (angle * math.hypot(1.0, angle) + math.asinh(angle))

    def _angle(self, step: int) -> float:
        if step <= self.top_speed_from:
            return self.beta * step
        arc = self.arc_at_top_speed + self.max_step * (step - self.top_speed_from)
        scale = self.alpha / self.beta
        # far out the arc is (alpha / beta) (theta^2 + 1/2 + ln 2 theta) / 2: a start that
        # leaves Newton's method one or two steps
        rough = math.sqrt(2 * arc / scale)
        angle = math.sqrt(max(rough**2 - 0.5 - math.log(2 * rough), 1.0))
        for _ in range(60):
            change = (self._arc(angle) - arc) / (scale * math.hypot(1.0, angle))
            angle -= change
            if abs(change) <= 1e-13 * angle:
                break
        return angle

    def coords(self, step: int) -> np.ndarray:
        angle = self._angle(step)
        radius = self.alpha / self.beta * angle
        return np.array([radius * math.cos(angle), radius * math.sin(angle)])

    def heading(self, step: int, displacement: np.ndarray) -> np.ndarray:
        return np.array([math.cos(self.gamma * step), math.sin(self.gamma * step)])


class Circle(TracedPath):
    """A circle through the origin: coords(t) = (r cos(2 pi t / P) - r, r sin(2 pi t / P))."""

    def __init__(self, radius: float = 100.0, period: int = 100):
        self.radius = radius
        self.omega = 2 * math.pi / period

    def coords(self, step: int) -> np.ndarray:
        angle = self.omega * step
        return np.array([self.radius * math.cos(angle) - self.radius,
                         self.radius * math.sin(angle)])


class RandomExploration:
    """Smooth random motion, like a foraging animal: the turning rate is a damped random walk,
    the speed varies around its mean, and beyond ``radius`` the agent steers back to the start.
    It integrates its own commands to know where it has gone (no true pose needed)."""

    def __init__(self, seed: int, speed: float = 5.0, turn_std: float = 0.15,
                 radius: float = 400.0):
        self.generator = np.random.default_rng(seed)
        self.speed, self.turn_std, self.radius = speed, turn_std, radius
        self.direction = START_YAW
        self.turn_rate = 0.0
        self.commanded_position = np.zeros(2)

    def __call__(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        self.turn_rate = 0.8 * self.turn_rate + self.generator.normal(0.0, self.turn_std)
        distance_from_start = float(np.hypot(*self.commanded_position))
        if distance_from_start > self.radius:
            home = math.atan2(-self.commanded_position[1], -self.commanded_position[0])
            error = math.atan2(math.sin(home - self.direction), math.cos(home - self.direction))
            self.turn_rate += 0.2 * error
        self.direction += self.turn_rate
        speed = max(0.0, self.speed * (1.0 + 0.2 * self.generator.normal()))
        heading = np.array([math.cos(self.direction), math.sin(self.direction)])
        displacement = speed * heading
        self.commanded_position = self.commanded_position + displacement
        return displacement, heading


class PathFileError(ValueError):
    """A path file cannot be read; the message names the file and the line."""


def load_path_file(path: str | Path) -> np.ndarray:
    """Read a recorded path: TUM ('t x y z qx qy qz qw', '#' comments) or CSV ('t,x,y', an
    optional header). Returns (T, 2) positions in world units."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise PathFileError(f"{path}: cannot read path file ({error})") from None
    points = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(",") if "," in line else line.split()
        if len(fields) not in (3, 8):
            raise PathFileError(f"{path}:{number}: expected 't,x,y' or 't x y z qx qy qz qw', "
                                f"got {len(fields)} fields")
        try:
            values = [float(v) for v in fields]
        except ValueError:
            if not points and number == 1:
                continue  # a CSV header
            raise PathFileError(f"{path}:{number}: not a number in {line!r}") from None
        if not all(math.isfinite(v) for v in values):
            raise PathFileError(f"{path}:{number}: NaN or infinite value in {line!r}")
        points.append(values[1:3])
    if len(points) < 2:
        raise PathFileError(f"{path}: a path needs at least 2 poses, found {len(points)}")
    return np.asarray(points, dtype=np.float64)


class RecordedPath(TracedPath):
    """Follows a recorded path from the origin (the path is shifted to start there); rests
    once the path has ended."""

    def __init__(self, positions: np.ndarray):
        self.positions = positions - positions[0]

    def coords(self, step: int) -> np.ndarray:
        return self.positions[min(step, len(self.positions) - 1)]


def make_controller(config: ControllerConfig) -> Controller | DiffDrive:
    """The controller named by ``config.controller``, in its differential-drive form when
    ``config.motion`` is diff_drive. Raises PathFileError for a bad path file."""
    controller = _holonomic_controller(config)
    if config.motion == "diff_drive":
        return DiffDrive(controller, config.max_turn, pursue=not senses(controller))
    return controller


def _holonomic_controller(config: ControllerConfig) -> Controller:
    if config.controller == "spiral":
        return Spiral(config.spiral_distance_increment, config.spiral_period,
                      config.heading_period, config.spiral_max_step)
    if config.controller == "circle":
        return Circle(config.circle_radius, config.circle_period)
    if config.controller == "random":
        return RandomExploration(config.seed, config.random_speed, config.random_turn_std,
                                 config.random_radius)
    if config.controller == "forage":
        return Forager(ForagerSettings(
            speed=config.forage_speed,
            hungry_below=config.forage_hungry_below))
    return RecordedPath(load_path_file(config.path_file))
