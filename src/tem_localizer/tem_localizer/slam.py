"""``method: slam``: the design document's conclusion made concrete, a localizer that corrects
its past (docs/design.md §10).

Per step: the smell is compressed to a short code; the step becomes a place in the map (on a
keyframe of the pose graph every ``keyframe_every`` steps); the loop-closure detectors compare
the newest places with old ones inside a gate that grows with the drift since the last closure;
an accepted closure goes into the pose graph, which re-solves the past. The estimate is the
newest keyframe's position plus the odometry since, so it moves with every correction, and so do
the places (their positions are rendered from keyframes).

A map can be saved and loaded (``map_file``); started in a loaded map with no idea where it is,
the localizer first finds itself with a Bayes filter over the map's places
(``relocalization``), then continues mapping on top of it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from tem_localizer.loop_closure import Closure, ClosureSettings, Rejection, candidates, find_closure
from tem_localizer.map_file import MapFileError, SavedMap
from tem_localizer.place_map import GrowingArray, PlaceMap
from tem_localizer.pose_graph import PRIOR_SIGMA, PoseGraph
from tem_localizer.smell_code import SmellCode

REFRESHED_PER_STEP = 8   # keyframes brought up to date each step besides those near the agent
CLOSURE_LOSS_SIGMAS = 3.0    # a closure's pull halves at this many innovation sigmas
CONTRADICTION_SCALES = 10.0  # missed by this many loss scales: outweighed (weight below 1 %)


@dataclass(frozen=True)
class SlamSettings:
    keyframe_every: int = 4          # steps per pose-graph keyframe
    code_dim: int = 32               # length of a smell code
    odometry_sigma: float = 1.0      # world units per axis per step
    gate_floor: float = 10.0         # world units added to the drift-based gate
    max_gate: float = 60.0           # world units: the widest gate
    retrace_cooldown: int = 5        # steps between retrace closures (neighbours say the same)
    crossing_cooldown: int = 2       # steps: a crossing is seen from several steps
    prediction_radius: float = 10.0  # world units: places this near predict the smell here
    confirm_beyond: float = 20.0     # world units: a larger correction needs a second closure
    confirm_after: int = 5           # steps: ... found at least this much later (elsewhere)
    confirm_within: int = 200        # steps: ... and no later than this
    graph_window: int = 2400         # steps the pose graph may still move (older: settled)
    seed: int = 0                    # seed of the smell code
    closure: ClosureSettings = ClosureSettings()


@dataclass
class SlamCounters:
    accepted: dict[str, int] = field(default_factory=dict)   # closures by kind
    rejected: dict[str, int] = field(default_factory=dict)   # candidates by reason
    outweighed: int = 0          # accepted closures the rest of the graph overruled
    searched: int = 0            # steps with old places in the gate to test against
    searched_loaded: int = 0     # ... of those, with a loaded map's places among them
    optimizer_failures: int = 0
    optimizer_seconds: float = 0.0                           # the last update
    optimizer_seconds_total: float = 0.0

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1


@dataclass(frozen=True)
class _Candidate:
    """A closure found, as the pose graph would take it."""

    result: Closure
    place: int                       # the current place when it was found
    old_keyframe: int
    new_keyframe: int
    offset: np.ndarray               # (2,) keyframe to keyframe
    loss_scale: float
    correction: np.ndarray           # (2,) how far it would move the newest keyframe


@dataclass(frozen=True)
class SlamStep:
    position: np.ndarray             # (2,) the current estimate, world units
    correction: np.ndarray           # (2,) how far a closure moved it this step (0 if none)
    closure: Closure | None          # the closure accepted this step


class Slam:
    """Keyframe pose graph + smell map + loop closure, for one agent."""

    def __init__(self, smell_dim: int, settings: SlamSettings = SlamSettings()):
        self.settings = settings
        self.code = SmellCode(smell_dim, settings.code_dim, settings.seed)
        self.reset()

    def reset(self) -> None:
        settings = self.settings
        self.places = PlaceMap(settings.code_dim, settings.keyframe_every)
        self.graph = PoseGraph(max(2, settings.graph_window // settings.keyframe_every))
        # the graph version each keyframe's position in the map comes from: refreshing it
        # again before the graph changes would change nothing
        self.estimated_at = GrowingArray((), np.int64)
        self.counters = SlamCounters()
        self.session_start = 0           # the first place of this session (after a loaded map)
        self.position = np.zeros(2)      # the current estimate
        self.offset = np.zeros(2)        # from the newest keyframe, by odometry
        self.since_keyframe = np.zeros(2)   # odometry since the newest keyframe was made
        self.last_retrace = self.last_crossing = self.last_closure = -(10**9)
        self.step_index = 0
        self.next_refresh = 0
        self.coasted = np.zeros(2)          # motion of late frames, not yet in a place
        self.smell_error = float("nan")
        self.start_sigma = PRIOR_SIGMA      # how sure the session is of where it started
        self.pending: _Candidate | None = None   # a large correction awaiting confirmation

    # -- the step --------------------------------------------------------------------------
    def step(self, action: np.ndarray, smell: np.ndarray) -> SlamStep:
        """One step: ``action`` (2,) the displacement measured since the last step, ``smell``
        (D,) here. Returns the estimate after any correction."""
        action = np.asarray(action, dtype=np.float64) + self.coasted
        self.coasted = np.zeros(2)
        place = len(self.places)
        if place % self.settings.keyframe_every == 0:
            self._add_keyframe(place, action)
        else:
            self.offset = self.offset + action
            self.since_keyframe = self.since_keyframe + action
        self.position = self.places.keyframe_positions.data[self.places.keyframes - 1] + \
            self.offset
        code = self.code(smell)
        nearby, distance = self._neighbourhood(place)
        self.smell_error = self._smell_error(code, nearby, distance)
        self.places.add_place(code, action, self.offset)
        self.step_index += 1
        closure = self._close_loop(place, nearby, distance)
        correction = np.zeros(2)
        self.refresh_in_turn(REFRESHED_PER_STEP)
        if closure is not None:
            before = self.position
            self._refresh_around(closure)
            self.position = self.places.keyframe_positions.data[self.places.keyframes - 1] + \
                self.offset
            correction = self.position - before
        return SlamStep(self.position.copy(), correction, closure)

    def coast(self, action: np.ndarray) -> np.ndarray:
        """Motion without a place (a step whose smell came too late to use): the estimate
        moves, and the next place's odometry includes it."""
        self.coasted = self.coasted + np.asarray(action, dtype=np.float64)
        return self.position + self.coasted

    def _neighbourhood(self, place: int) -> tuple[np.ndarray, np.ndarray]:
        """The old places (the recent past left out) around the estimate as far as the
        loop-closure gate or the smell prediction reaches, and their distances from it, the
        keyframes there brought up to date first: one search a step serves both."""
        radius = max(self.gate_radius(place), 2 * self.settings.prediction_radius)
        near = self.places.near(self.position, radius)
        self._refresh(near.moving)
        nearby, distance = self.places.within(near, self.position, radius)
        old = nearby <= place - self.settings.closure.exclude
        return nearby[old], distance[old]

    def _smell_error(self, code: np.ndarray, nearby: np.ndarray, distance: np.ndarray) -> float:
        """How far this smell is from what the map predicts here (mean squared code error;
        NaN on new ground): the map read at the estimate, as TEM reads its memory at the
        belief. Places within a cell of the estimate weigh in by a Gaussian of distance."""
        cell = self.settings.prediction_radius
        within = distance <= 2 * cell
        nearby, distance = nearby[within], distance[within]
        kept = self.places.in_few_passes(nearby, self.settings.closure.max_passes,
                                         self.settings.closure.pass_gap)
        nearby, distance = nearby[kept], distance[kept]
        weight = np.exp(-0.5 * (distance / cell) ** 2)
        if weight.sum() <= 1e-9:
            return float("nan")
        predicted = weight @ self.places.codes.data[nearby].astype(np.float32) / weight.sum()
        return float(np.mean((code - predicted) ** 2))

    def _add_keyframe(self, place: int, action: np.ndarray) -> None:
        """A keyframe at ``place``, linked to the previous one by the odometry of the steps
        since it (their noise adds up)."""
        guess = self.position + action
        if place == self.session_start:
            index = self.graph.add_keyframe(guess, prior_sigma=self.start_sigma)
        else:
            steps = self.settings.keyframe_every
            odometry = self.since_keyframe + action
            variance = steps * max(self.settings.odometry_sigma, 1e-3) ** 2
            index = self.graph.add_keyframe(guess, odometry, variance * np.eye(2))
        self._optimize()
        self.places.add_keyframe(self.graph.position(index))
        self.estimated_at.append(self.graph.version)
        self.offset = np.zeros(2)
        self.since_keyframe = np.zeros(2)

    def _optimize(self) -> bool:
        started = time.perf_counter()
        settled = self.graph.settled.size
        ok = self.graph.update()
        for index in range(settled, self.graph.settled.size):
            self.places.settle_keyframe(index, self.graph.position(index))
        self.counters.optimizer_seconds = time.perf_counter() - started
        self.counters.optimizer_seconds_total += self.counters.optimizer_seconds
        if not ok:
            self.counters.optimizer_failures += 1
        return ok

    # -- loop closure ----------------------------------------------------------------------
    def gate_radius(self, place: int) -> float:
        """How far the estimate may have drifted since the last closure (3 sigma), plus a
        floor for the map's own error; at most ``max_gate``."""
        settings = self.settings
        steps = min(place - self.last_closure, 10**6)
        drift = 3 * settings.odometry_sigma * np.sqrt(2 * steps)
        return float(min(drift + settings.gate_floor, settings.max_gate))

    def _close_loop(self, place: int, nearby: np.ndarray, distance: np.ndarray
                    ) -> Closure | None:
        settings = self.settings
        if place - self.session_start < settings.closure.window:
            return None                  # the windows would reach into a previous session
        retrace_ready = place - self.last_retrace >= settings.retrace_cooldown
        crossing_ready = place - self.last_crossing >= settings.crossing_cooldown
        if not (retrace_ready or crossing_ready):
            return None
        found = candidates(nearby, distance, self.gate_radius(place), settings.closure)
        self.counters.searched += int(len(found) > 0)
        self.counters.searched_loaded += int(len(found) > 0 and found[0] < self.session_start)
        result = find_closure(self.places, place, found, settings.closure, retrace_ready,
                              crossing_ready)
        if result is None:
            return None
        if isinstance(result, Rejection):
            self.counters.count(self.counters.rejected, result.reason)
            return None
        old_keyframe = int(self.places.keyframe_of(result.old))
        # keyframe to keyframe: the places' offsets from their keyframes are odometry
        offset = result.offset + self.places.offsets.data[result.old] - self.offset
        candidate = _Candidate(result, place, old_keyframe, self.places.keyframes - 1, offset,
                               self.loss_scale(place, result.covariance),
                               self._implied_correction(old_keyframe, offset))
        accepted = self._confirmed(candidate)
        if not accepted:
            return None
        for closure in accepted:
            self.graph.add_closure(closure.old_keyframe, closure.new_keyframe, closure.offset,
                                   closure.result.covariance, closure.loss_scale)
        if not self._optimize():
            self.counters.count(self.counters.rejected, "optimizer_failed")
            return None
        for closure in accepted:
            self.counters.count(self.counters.accepted, closure.result.kind)
            if self._contradicts(closure):
                # it stays in the graph, but the robust loss has taken away its pull
                self.counters.outweighed += 1
        self.last_closure = place
        self.last_closure_places = (result.old, result.new)
        if result.kind == "retrace":
            self.last_retrace = place
        else:
            self.last_crossing = place
        return result

    def _implied_correction(self, old_keyframe: int, offset: np.ndarray) -> np.ndarray:
        """How far the closure says the newest keyframe is from where the graph has it."""
        newest = self.places.keyframes - 1
        return self.graph.position(old_keyframe) + offset - self.graph.position(newest)

    def _confirmed(self, candidate: _Candidate) -> list[_Candidate]:
        """The closures to add now. A closure that would move the estimate by more than
        ``confirm_beyond`` waits for a second one, from a different stretch of path (at least
        ``confirm_after`` steps later), that implies the same correction: a place can smell
        like another (two trees, and everything mirrored across the line through them smells
        alike) but two independent coincidences that agree are unlikely."""
        settings = self.settings
        if np.linalg.norm(candidate.correction) <= settings.confirm_beyond:
            return [candidate]
        pending = self.pending
        if pending is not None and candidate.place - pending.place > settings.confirm_within:
            self.counters.count(self.counters.rejected, "unconfirmed")
            pending = self.pending = None
        if pending is None or candidate.place - pending.place < settings.confirm_after:
            if pending is None:
                self.pending = candidate
            return []
        agree = np.linalg.norm(candidate.correction - pending.correction) <= max(
            settings.confirm_beyond / 2, 0.2 * np.linalg.norm(pending.correction))
        self.pending = None if agree else candidate
        if not agree:
            self.counters.count(self.counters.rejected, "unconfirmed")
            return []
        return [pending, candidate]

    def loss_scale(self, place: int, covariance: np.ndarray) -> float:
        """The Cauchy scale of a closure, in its own sigmas: CLOSURE_LOSS_SIGMAS of the
        innovation, the closure's uncertainty plus the drift since the last closure, so a
        correction that drift explains keeps its pull and only one far beyond it loses it."""
        steps = min(place - self.last_closure, place - self.session_start)
        drift = self.settings.odometry_sigma**2 * 2 * max(steps, 1)
        tightest = float(np.linalg.eigvalsh(covariance)[0])
        return CLOSURE_LOSS_SIGMAS * float(np.sqrt(1 + drift / tightest))

    def _contradicts(self, closure: _Candidate) -> bool:
        """After optimizing: does the graph still disagree with the closure by more than
        CONTRADICTION_SCALES loss scales (its Cauchy weight is then below 1 %)? Then the rest
        of the graph outweighed it."""
        residual = self.graph.position(closure.new_keyframe) - \
            self.graph.position(closure.old_keyframe) - closure.offset
        return float(residual @ np.linalg.solve(closure.result.covariance, residual)) > \
            (CONTRADICTION_SCALES * closure.loss_scale) ** 2

    def _refresh(self, keyframes: np.ndarray) -> None:
        """New estimates for the given keyframes; settled ones already have their last."""
        moving = keyframes[keyframes >= self.graph.settled.size]
        stale = moving[self.estimated_at.data[moving] != self.graph.version]
        if len(stale):
            self.places.move_keyframes(stale, self.graph.positions(stale))
            self.estimated_at.data[stale] = self.graph.version

    def _refresh_around(self, closure: Closure) -> None:
        """New estimates for the keyframes a closure moved most (both ends of the loop), and
        a few more in turn, so every keyframe's hashed place catches up with the graph."""
        span = 2 + self.settings.closure.window // self.settings.keyframe_every
        old = int(self.places.keyframe_of(closure.old))
        newest = self.places.keyframes - 1
        self._refresh(np.union1d(np.arange(max(0, old - span), min(newest, old + span) + 1),
                                 np.arange(max(0, newest - span), newest + 1)))

    def refresh_keyframes_of(self, places: np.ndarray) -> None:
        """Bring the keyframes the given places hang on up to date."""
        self._refresh(np.unique(self.places.keyframe_of(places)))

    def refresh_in_turn(self, count: int) -> None:
        """Bring ``count`` more keyframes up to date, round robin over those not settled."""
        first = self.graph.settled.size
        total = self.places.keyframes - first
        if total <= 0:
            return
        start = self.next_refresh % total
        self._refresh(first + (start + np.arange(min(count, total))) % total)
        self.next_refresh = start + count

    # -- maps ------------------------------------------------------------------------------
    def saved_map(self, grid_size: int, cell_size: float) -> SavedMap:
        """Everything mapped so far, positions as corrected now."""
        self.refresh_in_turn(self.places.keyframes)
        places = self.places
        return SavedMap(self.code.smell_dim, self.settings.code_dim, self.settings.seed,
                        self.settings.keyframe_every, grid_size, cell_size,
                        places.codes.view().copy(), places.odometry.view().copy(),
                        places.offsets.view().copy(), places.keyframe_positions.view().copy())

    def load(self, saved: SavedMap) -> None:
        """Replace the map with ``saved``, held fixed; a session starts with
        ``start_session`` once the agent knows where it is in it."""
        settings = self.settings
        for name, mine in (("code_dim", settings.code_dim), ("code_seed", settings.seed),
                           ("keyframe_every", settings.keyframe_every)):
            if getattr(saved, name) != mine:
                raise MapFileError(f"{name}: the map has {getattr(saved, name)}, this "
                                   f"localizer {mine}")
        self.reset()
        self.graph.add_settled(saved.keyframe_positions)     # held where it was saved
        for index, position in enumerate(saved.keyframe_positions):
            self.places.add_keyframe(position)
            self.estimated_at.append(self.graph.version)
            self.places.settle_keyframe(index, position)
        every = settings.keyframe_every
        padded = len(saved.codes) + (-len(saved.codes)) % every
        for place in range(padded):
            if place < len(saved.codes):     # the last keyframe's empty slots stay silent
                self.places.add_place(saved.codes[place], saved.odometry[place],
                                      saved.offsets[place])
            else:
                self.places.add_place(np.zeros(settings.code_dim), np.zeros(2), np.zeros(2))
        self.session_start = padded

    def start_session(self, position: np.ndarray, sigma: float) -> None:
        """Map on from ``position`` (world units), known to about ``sigma``."""
        self.position = np.asarray(position, dtype=np.float64).copy()
        self.offset = np.zeros(2)
        self.since_keyframe = np.zeros(2)
        self.start_sigma = sigma
        self.last_retrace = self.last_crossing = self.last_closure = len(self.places)
