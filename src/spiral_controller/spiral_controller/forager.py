"""A drive-based forager: the agent keeps itself alive from what it knows (docs/design.md §3).

It never sees the true pose or where the trees are. Before each step it is told where its
localizer thinks it is, what it smells and its health (any of them may be missing), and it
moves:

- **Drive.** Hunger is how far health is below the best it has had. Once there is room for a
  tree's worth of fruit (``hungry_below`` of the best), it goes to eat; otherwise it rests
  (resting costs half of moving, and fruit eaten at full health is wasted).
- **A memory of outcomes by place, with the smell there.** Health rising means it ate: an
  edible place. Health falling by more than a step's cost means poison: a place to stay away
  from, recognized both by position and by smell (a tree smells of its own kind and name
  however wrong the estimate is). A place where it ate until the fruit ran out, or where a
  trip found nothing, is left alone for ``regrow_wait`` steps.
- **A rule to pick a goal.** Hungry with a known edible place that should have fruit again: go
  to the nearest, and search around it in a widening spiral (estimate and tree are both a few
  units off). Otherwise explore: out along a spiral around the start (the smell reaches about
  a turn's spacing), and where the smell rises steeply, up its gradient (fitted to the last
  few steps) to the peak, a tree; then back to the spiral.

Every displacement is at most ``speed`` world units (keep it at or below the localizer's
``max_action_norm``).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ForagerSettings:
    speed: float = 20.0             # world units per step on a trip (a step costs the same
                                    # health however long it is: travel fast)
    explore_speed: float = 10.0     # ... when exploring (slow enough not to jump past a tree)
    hungry_below: float = 0.85      # of the best health: below this there is room for a tree
    ate_above: float = 5.0          # a health rise of more than this: it ate edible fruit
    poisoned_below: float = -10.0   # a health change below this: the fruit was poison
    merge_radius: float = 12.0      # world units: outcomes this close are one place
    poison_radius: float = 25.0     # world units: kept from remembered poison
    poison_smell: float = 0.97      # smell this much like a poisonous place's: it is near
    search_steps: int = 30          # steps of spiral search around a goal before giving up
    regrow_wait: int = 1000         # steps a harvested or empty place is left alone
    gradient_steps: int = 6         # steps the smell gradient is fitted over
    climb_above: float = 0.3        # smell strength per world unit: steep enough to climb
    climb_steps: int = 15           # steps a climb may take before it gives up
    spiral_spacing: float = 120.0   # world units between the exploring spiral's turns


@dataclass
class Place:
    position: np.ndarray            # (2,) in the forager's (the localizer's) frame
    smell: np.ndarray               # (D,) unit vector of the smell there
    poisonous: bool
    meals: int = 0
    empty_since: int | None = None  # harvested or found empty at this step


@dataclass
class Counters:
    meals: int = 0
    poisonings: int = 0
    trips: int = 0
    empty_trips: int = 0
    missing_pose: int = 0           # steps without a usable estimate (NaN or none)
    missing_health: int = 0


@dataclass
class Forager:
    """Call ``observe(estimate, smell, health)`` before each ``forager(step)``; any of them may
    be None (unknown)."""

    settings: ForagerSettings = ForagerSettings()
    places: list[Place] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)

    def __post_init__(self):
        self.position = np.zeros(2)         # the last good estimate, moved by what it did since
        self.heading = math.pi / 4          # the agent starts heading (1, 1) / sqrt(2)
        self.last_move = np.zeros(2)
        self.smell: np.ndarray | None = None
        self.health: float | None = None
        self.best_health: float | None = None
        self.trail: deque = deque(maxlen=self.settings.gradient_steps)  # (position, strength)
        self.goal: Place | None = None
        self.searching = 0                  # steps spent searching around the goal
        self.feeding = False                # ate last step: stay for the next fruit
        self.step_index = 0
        self.spiral_angle = 0.0             # where exploring is along its spiral
        self.climb = 0                      # steps spent climbing toward this peak

    # -- what the forager is told ----------------------------------------------------------
    def observe(self, estimate, smell, health) -> None:
        if estimate is not None and np.all(np.isfinite(estimate)):
            self.position = np.asarray(estimate, dtype=np.float64).copy()
        else:
            self.counters.missing_pose += 1
            self.position = self.position + self.last_move     # hold it, moved as commanded
        if smell is not None and np.all(np.isfinite(smell)):
            self.smell = np.asarray(smell, dtype=np.float64)
            self.trail.append((self.position.copy(), float(np.linalg.norm(self.smell))))
        if health is None or not math.isfinite(health):
            self.counters.missing_health += 1
            self.feeding = False
            return
        if self.health is not None:
            self._learn(health - self.health)
        self.health = health
        self.best_health = health if self.best_health is None else max(self.best_health, health)

    def _learn(self, change: float) -> None:
        settings = self.settings
        was_feeding, self.feeding = self.feeding, change > settings.ate_above
        if self.feeding:
            self.counters.meals += 1
            self._remember(poisonous=False).meals += 1
            if self.goal is not None and not self.goal.poisonous:
                self.goal = None          # found it
        elif was_feeding:                 # the fruit ran out: come back when it regrows
            self._remember(poisonous=False).empty_since = self.step_index
        if change < settings.poisoned_below:
            self.counters.poisonings += 1
            self._remember(poisonous=True)
            self.goal = None

    def _remember(self, poisonous: bool) -> Place:
        for place in self.places:
            if place.poisonous == poisonous and \
                    np.linalg.norm(place.position - self.position) < self.settings.merge_radius:
                return place
        direction = self.smell / max(np.linalg.norm(self.smell), 1e-9) \
            if self.smell is not None else np.zeros(1)
        place = Place(self.position.copy(), direction, poisonous)
        self.places.append(place)
        return place

    # -- what it does ----------------------------------------------------------------------
    def __call__(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        self.step_index = step
        if self.feeding:                  # one fruit a step: stay while it lasts
            return self._move(np.zeros(2))
        if not self._hungry():
            self.goal = None
            return self._move(np.zeros(2))
        if self.goal is None:
            self.goal = self._pick_goal()
            if self.goal is not None:
                self.counters.trips += 1
                self.searching = 0
        move = self._toward_goal() if self.goal is not None else self._explore()
        return self._move(self._avoid_poison(move))

    def _hungry(self) -> bool:
        if self.health is None:           # unknown is not starving: keep looking for food
            return True
        return self.health < self.settings.hungry_below * self.best_health

    def _pick_goal(self) -> Place | None:
        ready = [p for p in self.places if not p.poisonous and p.meals and (
            p.empty_since is None or self.step_index - p.empty_since >= self.settings.regrow_wait)]
        if not ready:
            return None
        return min(ready, key=lambda p: float(np.linalg.norm(p.position - self.position)))

    def _toward_goal(self) -> np.ndarray:
        settings = self.settings
        offset = self.goal.position - self.position
        distance = float(np.hypot(*offset))
        if self.searching == 0 and distance > settings.speed / 2:
            return offset / distance * min(settings.speed, distance)
        # there (by the estimate): search in a widening spiral around it
        self.searching += 1
        if self.searching > settings.search_steps:
            self.goal.empty_since = self.step_index
            self.counters.empty_trips += 1
            self.goal = None
            return self._explore()
        angle = self.searching * 0.8
        target = self.goal.position + (1.5 + 0.4 * self.searching) * np.array(
            [math.cos(angle), math.sin(angle)])
        step = target - self.position
        length = float(np.hypot(*step))
        return step / length * min(settings.speed, length) if length > 1e-9 else np.zeros(2)

    def _explore(self) -> np.ndarray:
        """Out along a spiral around the start (the smell reaches about a spiral turn's
        spacing, so no tree is missed); where the smell rises steeply, up its fitted gradient
        to the peak (a tree), then back to the spiral."""
        settings = self.settings
        gradient = self._gradient()
        climbing = gradient is not None and float(np.hypot(*gradient)) > settings.climb_above
        if climbing and not self._near_known() and self.climb < settings.climb_steps:
            self.climb += 1
            return settings.explore_speed * gradient / float(np.hypot(*gradient))
        if not climbing:
            self.climb = 0
        return self._along_spiral()

    def _along_spiral(self) -> np.ndarray:
        """Toward the next point of an Archimedean spiral around the start,
        ``spiral_spacing`` between turns, at ``explore_speed``."""
        settings = self.settings
        while True:
            radius = settings.spiral_spacing * self.spiral_angle / (2 * math.pi)
            target = radius * np.array([math.cos(self.spiral_angle),
                                        math.sin(self.spiral_angle)])
            offset = target - self.position
            distance = float(np.hypot(*offset))
            if distance > settings.explore_speed / 2:
                return offset / distance * min(settings.explore_speed, distance)
            self.spiral_angle += settings.explore_speed / max(radius, settings.explore_speed)

    def _near_known(self) -> bool:
        """Near a place it knows: its peak is no news."""
        return any(np.linalg.norm(p.position - self.position) < 2 * self.settings.merge_radius
                   for p in self.places)

    def _gradient(self) -> np.ndarray | None:
        """The smell strength's gradient (per world unit), a plane fitted to the trail."""
        if len(self.trail) < 3:
            return None
        positions = np.array([p for p, _ in self.trail])
        strengths = np.array([s for _, s in self.trail])
        centred = positions - positions.mean(axis=0)
        if np.linalg.matrix_rank(centred, tol=1e-6) < 2:
            return None                   # a straight trail: only the slope along it
        solution, *_ = np.linalg.lstsq(centred, strengths - strengths.mean(), rcond=None)
        return solution

    def _avoid_poison(self, move: np.ndarray) -> np.ndarray:
        """Bend ``move`` away from remembered poison: near its position, or wherever the smell
        says that tree is close."""
        settings = self.settings
        for place in self.places:
            if not place.poisonous:
                continue
            away = self.position + move - place.position
            distance = float(np.hypot(*away))
            near_by_smell = self.smell is not None and place.smell.shape == self.smell.shape \
                and float(place.smell @ self.smell) / max(np.linalg.norm(self.smell), 1e-9) > \
                settings.poison_smell
            if near_by_smell:             # back the way it came
                move = -self.last_move if np.hypot(*self.last_move) > 1e-9 else -move
            elif distance < settings.poison_radius:
                move = move + away / max(distance, 1e-9) * (settings.poison_radius - distance)
        length = float(np.hypot(*move))
        return move / length * min(settings.speed, length) if length > 1e-9 else move

    def _move(self, displacement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.last_move = displacement
        if np.hypot(*displacement) > 1e-9:
            self.heading = math.atan2(displacement[1], displacement[0])
        return displacement, np.array([math.cos(self.heading), math.sin(self.heading)])
