"""A drive-based forager: the agent keeps itself alive from what it knows (docs/design.md §3).

It never sees the true pose or where the trees are. Before each step it is told where its
localizer thinks it is, what it smells and its health (any of them may be missing), and it
moves. Three parts:

- **A drive.** Hungry is health below ``hungry_below`` of the best it has had. Fed, it rests
  (resting costs half of moving) unless it still knows fewer than ``want_trees`` edible trees:
  then it explores, for knowing where food is is worth more then. At a tree it stays while
  each step brings a fruit and there is room for the next one.
- **A memory of places, in its own (the localizer's) frame, with the smell there.** Each is
  anchored to the step whose estimate it was measured from; a localizer that corrects its past
  (slam) says where those steps are now (``anchors`` / ``reanchor``), and the places move with
  them, so drift found later no longer lives in the memory. Where
  health rose (an edible tree), where it fell by more than a step's cost (poison: given a wide
  berth, and a smell like the poison's is not homed on), and where homing found nothing
  (barren, not homed on again). A tree it emptied is left alone until some emptied tree is
  found to have fruit again (in Tree World all trees refill together), or for ``regrow_wait``
  steps.
- **A rule to pick a goal.** Hungry: the nearest edible tree expected to have fruit. If every
  known tree is empty it explores while health is above ``reserve_below``, and otherwise
  waits at a known tree for the refill: at rest the smell changes only when a fruit count
  does, so a changed smell with no meal says the trees refilled and this one stands a little
  off the remembered place (the estimate drifted): it looks around. After ``wait_steps``
  with no change it tries another tree. Exploring follows a widening spiral around the
  start; where the smell says a tree it does not know is near, it homes in on it (and eats,
  or learns it is poison).

Homing uses the sensor's model: a tree's smell falls off as a Gaussian of distance (to a
tenth at ``smell_reach``), so the slope of the log of that tree's part of the smell, fitted
over the last few steps, points at the tree and says how far it is (for one Gaussian, centre
= here + width^2 * slope).
Moves zigzag a little so the fit sees both directions. Every move is at most ``speed`` world
units (keep it at or below the localizer's ``max_action_norm``).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from treeworld_schema.topics import START_YAW

EDIBLE, POISONOUS, BARREN = "edible", "poisonous", "barren"


@dataclass(frozen=True)
class ForagerSettings:
    speed: float = 20.0             # world units per step (a step costs the same however long)
    smell_reach: float = 100.0      # world units where a tree's smell falls to a tenth
    hungry_below: float = 0.85      # of the best health: below this there is room to eat
    reserve_below: float = 0.4      # of the best health: below this it waits at a known tree
    want_trees: int = 10            # explores even when fed until it knows this many edible
    explore_radius: float = 700.0   # world units: the spiral ends here
    spiral_spacing: float = 100.0   # world units between the spiral's turns
    zigzag: float = 0.3             # sideways share of each step, alternating
    trail_steps: int = 3            # steps the smell slope is fitted over
    home_steps: int = 12            # steps up the smell where a tree should be ...
    search_steps: int = 8           # ... then around there before it gives up (a smelled
    revisit_search_steps: int = 12  # tree; a remembered one, which the estimate's drift moves)
    rest_from_search: int = 10      # steps after a fruitless search before the next one
    ate_above: float = 5.0          # a health rise above this: it ate edible fruit
    poisoned_below: float = -10.0   # a health change below this: the fruit was poison
    recent_weight: float = 0.5      # a meal's least pull on where its tree is remembered
    merge_radius: float = 20.0      # world units: places this close are one place
    poison_radius: float = 25.0     # world units kept from remembered poison
    wait_steps: int = 250           # waits this long at one emptied tree, then tries another
    regrow_wait: int = 1000         # steps before an emptied tree is tried again anyway


@dataclass
class Place:
    position: np.ndarray            # (2,) in the forager's (the localizer's) frame
    smell: np.ndarray               # (D,) unit vector of the smell there
    kind: str                       # EDIBLE, POISONOUS or BARREN (homing found nothing)
    meals: int = 0
    empty_since: int | None = None  # emptied, or found empty, at this step
    waited_at: int = -10**9         # when it last gave up waiting here
    anchor: int | None = None       # the step whose estimate ``position`` was measured from
    offset: np.ndarray | None = None   # (2,) ``position`` minus that estimate


@dataclass
class Search:
    """Looking for a tree around ``centre``."""
    centre: np.ndarray              # (2,) where it should be, in the forager's frame
    place: Place | None             # the edible tree it is going back to; None: one it smells
    steps: int = 0                  # steps since it got near ``centre``
    smell_waiting: np.ndarray | None = None   # the smell when it began to wait there


@dataclass
class Counters:
    meals: int = 0
    poisonings: int = 0
    trips: int = 0
    empty_trips: int = 0
    homings: int = 0                # trees smelled and homed in on
    missing_pose: int = 0           # steps without a usable estimate (NaN or none)
    missing_health: int = 0


@dataclass
class Forager:
    """Call ``observe(estimate, smell, health, anchor)`` before each ``forager(step)``; any of
    them may be None (unknown). The estimate is of the step before (in lockstep the localizer
    has not seen this step when the command for it is due), so the forager adds the move it
    commanded since; smell and health are of this step; ``anchor`` names the estimate's step.
    With a localizer that corrects its past, call ``reanchor`` with where the steps
    ``anchors()`` names are now, before ``observe``."""

    settings: ForagerSettings = ForagerSettings()
    places: list[Place] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)

    def __post_init__(self):
        self.position = np.zeros(2)         # the last good estimate, moved by what it did since
        self.anchor: int | None = None      # the step of the last estimate, and the estimate
        self.anchor_estimate = np.zeros(2)
        self.heading = START_YAW
        self.last_move = np.zeros(2)
        self.smell: np.ndarray | None = None
        self.health: float | None = None
        self.best_health: float | None = None
        self.trail: deque = deque(maxlen=self.settings.trail_steps)  # (position, smell)
        self.width2 = self.settings.smell_reach**2 / (2 * math.log(10))  # Gaussian's sigma^2
        self.search: Search | None = None   # where it is looking for a tree
        self.search_ended = -10**9          # when the last fruitless search gave up
        self.feeding = False                # ate last step: another fruit may be there
        self.staying = False                # stayed last step for that next fruit
        self.meal_gain = 0.0                # the largest health rise a fruit has given
        self.step_index = 0
        self.spiral_angle = 0.0             # where exploring is along its spiral
        self.side = 1.0                     # which way the next zigzag goes

    # -- what the forager is told ----------------------------------------------------------
    def observe(self, estimate, smell, health, anchor: int | None = None) -> None:
        if estimate is not None and np.all(np.isfinite(estimate)):
            self.anchor_estimate = np.asarray(estimate, dtype=np.float64)
            self.anchor = anchor
            self.position = self.anchor_estimate + self.last_move
        else:
            self.counters.missing_pose += 1
            self.anchor = None               # nothing the localizer can place again
            self.position = self.position + self.last_move     # hold it, moved as commanded
        if smell is not None and np.all(np.isfinite(smell)):
            self.smell = np.asarray(smell, dtype=np.float64)
            self.trail.append((self.position.copy(), self.smell))
        if health is None or not math.isfinite(health):
            self.counters.missing_health += 1
            self.feeding = self.staying = False
            return
        if self.health is not None:
            self._learn(health - self.health)
        self.health = health
        self.best_health = health if self.best_health is None else max(self.best_health, health)

    def _learn(self, change: float) -> None:
        settings = self.settings
        self.feeding = change > settings.ate_above
        if self.feeding:
            self.counters.meals += 1
            self.meal_gain = max(self.meal_gain, change)
            place = self._remember(EDIBLE)
            if place.empty_since is not None:       # fruit again: the trees have refilled
                self._refilled()
            place.meals += 1             # the tree is nearer the middle of where it ate
            place.position = place.position + (self.position - place.position) * \
                max(1 / place.meals, settings.recent_weight)
            self._anchor(place)
            self.search = None                      # found it
        elif self.staying:                          # stayed for fruit and none came
            self._remember(EDIBLE).empty_since = self.step_index
        if change < settings.poisoned_below:
            self.counters.poisonings += 1
            self._remember(POISONOUS)
            self.search = None

    def _refilled(self) -> None:
        for place in self.places:
            if place.empty_since is not None and place.empty_since < self.step_index:
                place.empty_since = None

    def _remember(self, kind: str, position: np.ndarray | None = None) -> Place:
        """The place of this kind here, or a new one."""
        position = self.position if position is None else position
        for place in self.places:
            if place.kind == kind and \
                    np.linalg.norm(place.position - position) < self.settings.merge_radius:
                return place
        direction = self.smell / max(np.linalg.norm(self.smell), 1e-9) \
            if self.smell is not None else np.zeros(1)
        place = Place(position.copy(), direction, kind)
        self._anchor(place)
        self.places.append(place)
        return place

    def _anchor(self, place: Place) -> None:
        """Measure ``place`` from the newest estimate's step (or leave it where it is)."""
        if self.anchor is not None:
            place.anchor, place.offset = self.anchor, place.position - self.anchor_estimate

    def anchors(self) -> list[int]:
        """The steps the remembered places are measured from."""
        return sorted({p.anchor for p in self.places if p.anchor is not None})

    def reanchor(self, anchors: list[int], positions: np.ndarray) -> None:
        """Where the steps ``anchors`` are estimated now (n, 2): every place measured from
        one moves with it (a trip under way keeps the centre it set out for)."""
        now = {anchor: np.asarray(position, dtype=np.float64)
               for anchor, position in zip(anchors, positions)
               if np.all(np.isfinite(position))}
        for place in self.places:
            if place.anchor in now:
                place.position = now[place.anchor] + place.offset

    # -- what it does ----------------------------------------------------------------------
    def __call__(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        self.step_index = step
        # one fruit a step: stay while the tree may have more and there is room for it
        self.staying = self.feeding and self.health + self.meal_gain <= self.best_health
        if self.staying:
            return self._move(np.zeros(2))
        hungry = self._hungry()
        if self.search is not None and self.search.place is not None and not hungry:
            self.search = None            # fed on the way: no need to go on
        if self.search is None and hungry:
            goal = self._pick_goal()
            if goal is not None:
                self.search = Search(goal.position.copy(), goal)
                self.counters.trips += 1
        exploring = hungry or self._still_exploring()
        if self.search is None and exploring and \
                step - self.search_ended >= self.settings.rest_from_search:
            peak = self._smelled_tree()
            if peak is not None and not self._known(peak) and not self._smells_poisonous():
                self.search = Search(peak, None)
                self.counters.homings += 1
        if self.search is not None:
            return self._move(self._searching())
        if exploring:
            return self._move(self._along_spiral())
        return self._move(np.zeros(2))

    def _hungry(self) -> bool:
        if self.health is None:           # unknown is not starving: keep looking for food
            return True
        return self.health < self.settings.hungry_below * self.best_health

    def _low(self) -> bool:
        """Too low to spend on exploring when every known tree is empty."""
        return self.health is not None and \
            self.health < self.settings.reserve_below * self.best_health

    def _still_exploring(self) -> bool:
        trees = sum(p.kind == EDIBLE for p in self.places)
        radius = self.settings.spiral_spacing * self.spiral_angle / (2 * math.pi)
        return trees < self.settings.want_trees and radius < self.settings.explore_radius

    def _ready(self, place: Place) -> bool:
        return place.empty_since is None or \
            self.step_index - place.empty_since >= self.settings.regrow_wait

    def _pick_goal(self) -> Place | None:
        """The nearest edible tree expected to have fruit; when none is and exploring is over,
        an edible tree to wait at (resting there costs half of searching, and all trees
        refill together): the one waited at longest ago, nearest first, for a remembered
        place may be off the tree by the estimate's drift and a refill there never seen."""
        edible = [p for p in self.places if p.kind == EDIBLE]
        ready = [p for p in edible if self._ready(p)]
        if ready:
            return min(ready, key=self._distance)
        if self._still_exploring() and not self._low():
            return None
        return min(edible, key=lambda p: (p.waited_at, self._distance(p)), default=None)

    def _distance(self, place: Place) -> float:
        return float(np.linalg.norm(place.position - self.position))

    def _known(self, position: np.ndarray) -> bool:
        """A tree it knows, or a place where it found none, is near ``position``."""
        return any(np.linalg.norm(p.position - position) <
                   self.settings.merge_radius * (1.0 if p.kind == BARREN else 1.5)
                   for p in self.places)

    def _smells_poisonous(self) -> bool:
        """Whether the smell here is more like the smells at the poisonous trees it has met
        than like those at the edible ones (trees of a kind share a word of their smell)."""
        kinds = {kind: [p.smell for p in self.places if p.kind == kind and
                        self.smell is not None and p.smell.shape == self.smell.shape]
                 for kind in (EDIBLE, POISONOUS)}
        if not kinds[EDIBLE] or not kinds[POISONOUS]:
            return False
        poisonous, edible = np.mean(kinds[POISONOUS], axis=0), np.mean(kinds[EDIBLE], axis=0)
        direction, middle = poisonous - edible, (poisonous + edible) / 2
        here = self.smell / max(float(np.linalg.norm(self.smell)), 1e-9)
        return float((here - middle) @ direction) > 0

    def _searching(self) -> np.ndarray:
        """To a remembered tree: to where it ate there (a smell peak can lie between trees);
        waits there if the tree was emptied. To a smelled tree: up the smell for
        ``home_steps``. Then around the centre in a widening spiral; then give up."""
        settings, search = self.settings, self.search
        distance = float(np.linalg.norm(search.centre - self.position))
        if search.steps == 0 and distance > (2.0 if search.place else settings.smell_reach / 2):
            return self._step_toward(search.centre)
        search.steps += 1
        if search.place is None and search.steps <= settings.home_steps:
            peak = self._smelled_tree()
            if peak is not None and not self._known(peak) and \
                    float(np.linalg.norm(peak - self.position)) > 2.0:
                search.centre = peak
                return self._step_toward(peak)
            search.steps = settings.home_steps + 1      # the smell leads nowhere new: look round
        turn = search.steps - (0 if search.place else settings.home_steps)
        if search.place is not None and search.place.empty_since is not None:
            # waiting at an emptied tree for the refill. At rest the smell changes only when
            # the nearest tree's fruit count does: then the trees have refilled, and if no
            # meal came the tree is not quite where it was remembered: look around
            if search.smell_waiting is None or not self._smell_changed(search.smell_waiting):
                if search.smell_waiting is None:
                    search.smell_waiting = self.smell
                if turn > settings.wait_steps:       # try another tree
                    search.place.waited_at = self.step_index
                    self.search = None
                return np.zeros(2)
            self._refilled()
            search.steps = turn = 0
        if turn <= (settings.revisit_search_steps if search.place else settings.search_steps):
            return self._step_toward(search.centre + 2.5 * turn * np.array(
                [math.cos(turn), math.sin(turn)]))
        if search.place is not None:      # no fruit there now
            search.place.empty_since = self.step_index
            self.counters.empty_trips += 1
        else:                             # no tree there
            self._remember(BARREN, search.centre)
        self.search, self.search_ended = None, self.step_index
        return self._along_spiral()

    def _smell_changed(self, before: np.ndarray | None) -> bool:
        if before is None or self.smell is None or before.shape != self.smell.shape:
            return False
        return float(np.linalg.norm(self.smell - before)) > \
            1e-3 * max(float(np.linalg.norm(before)), 1e-9)

    def _smelled_tree(self) -> np.ndarray | None:
        """Where the smell says the nearest strong tree is. Near a tree the smell is
        kernel(distance) * (that tree's vector) plus words that do not change as the agent
        moves (the fruit count), nearly orthogonal to it: projected on the direction the
        smell changed along the trail, only the kernel term is left. A plane fitted to the
        log of that projection gives the slope; a Gaussian of known width is centred at
        here + width^2 * slope. None when the trail is too straight, the smell did not
        change, or the tree is too far."""
        if len(self.trail) < 3:
            return None
        positions = np.array([p for p, _ in self.trail])
        smells = np.array([s for _, s in self.trail])
        change = smells[-1] - smells[0]
        if float(np.linalg.norm(change)) < 1e-6:
            return None
        kernel = smells @ change
        kernel = kernel if kernel.sum() > 0 else -kernel
        if kernel.min() <= 0:
            return None                   # more than one tree's smell changed
        logs = np.log(kernel)
        centred = positions - positions.mean(axis=0)
        if np.linalg.svd(centred, compute_uv=False)[-1] < 1.0:
            return None                   # a straight trail: only the slope along it
        slope, *_ = np.linalg.lstsq(centred, logs - logs.mean(), rcond=None)
        offset = self.width2 * slope
        if float(np.hypot(*offset)) > self.settings.smell_reach:
            return None
        return self.position + offset

    def _along_spiral(self) -> np.ndarray:
        """Toward the next point of an Archimedean spiral around the start, ``spiral_spacing``
        between turns (the smell reaches about that far, so no tree is missed)."""
        settings = self.settings
        while True:
            radius = settings.spiral_spacing * self.spiral_angle / (2 * math.pi)
            target = radius * np.array([math.cos(self.spiral_angle),
                                        math.sin(self.spiral_angle)])
            if float(np.linalg.norm(target - self.position)) > settings.speed / 2 and \
                    not self._near_poison(target):
                return self._step_toward(target)
            self.spiral_angle += settings.speed / max(radius, settings.speed)

    def _step_toward(self, target: np.ndarray) -> np.ndarray:
        """At most ``speed`` toward ``target``, with a small alternating sideways step so the
        smell is sampled off the line too (not on the last step: that one lands on it)."""
        offset = target - self.position
        distance = float(np.hypot(*offset))
        if distance < 1e-9:
            return np.zeros(2)
        along = offset / distance
        self.side = -self.side
        forward = along * min(self.settings.speed, distance)
        zigzag = self.settings.zigzag if distance > self.settings.speed else 0.0
        move = forward + self.side * zigzag * np.array([-forward[1], forward[0]])
        length = float(np.hypot(*move))
        return self._avoid_poison(move / length * min(self.settings.speed, length), target)

    def _near_poison(self, position: np.ndarray) -> bool:
        return any(p.kind == POISONOUS and float(np.linalg.norm(p.position - position)) <
                   self.settings.poison_radius for p in self.places)

    def _avoid_poison(self, move: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Bend ``move`` away from remembered poison (bending, not reversing: a reversal
        toward a goal behind the tree would undo itself the next step). The berth is kept
        smaller than the poison's distance to ``target``, so a goal beside it is reached."""
        settings = self.settings
        for place in self.places:
            if place.kind != POISONOUS:
                continue
            away = self.position + move - place.position
            distance = float(np.hypot(*away))
            berth = min(settings.poison_radius,
                        0.7 * float(np.linalg.norm(target - place.position)))
            if distance < berth:
                move = move + away / max(distance, 1e-9) * (berth - distance)
        length = float(np.hypot(*move))
        return move / length * min(settings.speed, length) if length > 1e-9 else move

    def _move(self, displacement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.last_move = displacement
        if np.hypot(*displacement) > 1e-9:
            self.heading = math.atan2(displacement[1], displacement[0])
        return displacement, np.array([math.cos(self.heading), math.sin(self.heading)])
