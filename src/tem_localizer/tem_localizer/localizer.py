"""A localizer for one agent: validates each (action, smell), runs the method, keeps counters.

This is what the runner and the ROS node call. Three methods: ``deadreckoning`` (the sum of
measured displacements), ``tem2d`` (the design document's belief grid and memory) and
``slam`` (the belief grid as the front end of a smell-map pose graph that corrects the past).
No method ever sees a NaN, a smell of the wrong length or an oversized action, and no belief it
keeps is NaN or zero-sum.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from tem_localizer.belief import ScrollingBelief
from tem_localizer.camera import CameraEncoder
from tem_localizer.config import DeviceUnavailable, LocalizerConfig
from tem_localizer.grid import BeliefGrid
from tem_localizer.heading import OdometryHeading
from tem_localizer.loop_closure import ClosureSettings
from tem_localizer.map_file import load_map, save_map
from tem_localizer.relocalization import (
    CONFIRM_WITHIN,
    EXPLAINED_SIGMAS,
    FixTrial,
    Relocalizer,
    Verdict,
)
from tem_localizer.tem import TEM2d

log = logging.getLogger(__name__)
RELOCALIZATION_SMELL_SIGMA = 2.5   # code units: a smell this far from a cell's still fits it


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable("device: cuda was asked for but no CUDA device is available")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class LocalizerStep:
    """The estimate after one step. World units."""

    mean: np.ndarray                 # (2,) estimated position
    covariance: np.ndarray           # (2, 2)
    belief: torch.Tensor | None      # (S, S) on the model's device; None for dead reckoning
    loss: float
    lost: bool = False
    skipped: str | None = None       # why the input was rejected, None when it was used
    origin: tuple[float, float] = (0.0, 0.0)   # world (x, y) of the belief grid's corner
    corrected: bool = False          # slam: a loop closure moved the past this step
    place: int | None = None         # slam: this step's place in the map
    retracted: bool = False          # slam: a fix in a loaded map was taken back this step:
                                     # the places from slam.session_start on are gone


@dataclass
class Counters:
    steps: int = 0                  # steps localized (smell used)
    skipped: dict[str, int] = field(default_factory=dict)   # bad input, by kind
    clipped_actions: int = 0
    lost: int = 0
    late_frames: int = 0            # motion integrated, smell dropped: it came too late
    odometry_resets: int = 0        # odometry jumped (a driver restart): re-anchored
    time_restarts: int = 0          # stamps went back (a bag played again): started over


class Localizer:
    """Estimates one agent's position from per-step displacements and smells.

    ``step(action, smell)``: action (2,) is the displacement measured since the last step
    (world frame, world units), smell (D,). The first step's action should be zero.
    """

    def __init__(self, config: LocalizerConfig):
        self.config = config
        if config.cpu_threads:
            # process-wide: a step's tensors are small, and more threads only contend with
            # the other nodes for the cores; the same count everywhere (node, run, replay)
            # also keeps their floating-point sums, and so their estimates, identical
            torch.set_num_threads(config.cpu_threads)
        self.device = resolve_device(config.device)
        self.grid = BeliefGrid(config.grid_size, config.extent)
        self.model = None
        self.optimizer = None
        self.slam = None
        if config.method == "tem2d":
            self.model = TEM2d(
                self.grid, config.sensory_embedding_dim,
                max_action_norm=config.max_action_norm,
                use_memory_to_localize=config.use_memory_to_localize, mixing=config.mixing,
                affinity_exponent=config.affinity_exponent,
                sharpen_exponent=config.sharpen_exponent, num_samples=config.num_samples,
                reference_match_threshold=config.reference_match_threshold,
                sample_temperature=config.sample_temperature or None,
                read_threshold=config.read_threshold,
                kernel_blur_sigma=config.kernel_blur_sigma,
                learn_action_map=config.learn_action_map,
                memory_capacity=config.memory_capacity or None, device=self.device,
                seed=config.seed)
            parameters = list(self.model.parameters())
            self.optimizer = torch.optim.Adam(parameters, lr=config.learning_rate) \
                if parameters else None
        elif config.method == "slam":
            from tem_localizer.slam import Slam  # needs gtsam; the other methods do not

            self.slam = Slam(config.sensory_embedding_dim, slam_settings(config))
            self.front = ScrollingBelief(self.grid, self.device, config.max_action_norm,
                                         config.sharpen_exponent)
        self.heading = OdometryHeading(config.heading_window_steps,
                                       fit_scale=config.learn_action_map) \
            if self.slam is not None and config.heading_window_steps else None
        self.camera = CameraEncoder(
            config.sensory_embedding_dim, config.camera_encoder,
            (config.camera_rows, config.camera_columns), config.camera_panoramic,
            config.camera_weights, str(self.device), config.seed) \
            if config.observation == "camera" else None
        self.counters = Counters()
        self.reset()

    def encode_camera(self, image: np.ndarray, yaw: float) -> np.ndarray:
        """The observation (D,) of a camera image (H, W, 3) in [0, 1] taken facing ``yaw``
        (radians, in the odometry frame)."""
        return self.camera(image[None], np.array([yaw]))[0]

    def reset(self) -> None:
        """Back to the start: belief around the origin, empty memory or map, counters kept."""
        self.dead_reckoned = np.zeros(2)
        self.belief = None
        self.pending_losses: list[torch.Tensor] = []
        self.warned: set[str] = set()
        if self.model is not None:
            self.model.reset()
            self.belief = self.model.initial_belief()
        if self.heading is not None:
            self.heading.reset()
        if self.slam is not None:
            self.slam.reset()
            self.front.reset(np.zeros(2))
            self.position = np.zeros(2)
            self.relocalizer: Relocalizer | None = None
            self.loaded_map = None          # the SavedMap a search started from
            self.steps_at_load = 0
            self.relocalized_after: int | None = None
            self.fix_trial: FixTrial | None = None     # a fix in the loaded map on trial
            # steps a loaded map failed to explain what was smelled where the belief settled
            self.relocalization_unexplained = 0
            # fixes taken back: no loop closed to the map after them and the map did not
            # explain the smells either (docs/design.md §10)
            self.relocalization_retracted = 0

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self.warned:
            self.warned.add(kind)
            log.warning(message)

    def restart_time(self, jump: float) -> None:
        """The input's stamps went ``jump`` seconds back for good: a new run of time (a bag
        played again or looped, a simulator restarted). Start over, counters kept; counted,
        warned each time."""
        self.reset()
        self.counters.time_restarts += 1
        log.warning(f"time went back {jump:.1f} s (a whole step stamped before the last one "
                    "used: a bag played again or looped, a simulator restarted); starting over "
                    "from it as ~/reset does (counted as 'time_restarts')")

    def odometry_reset(self, jump: float) -> None:
        """Odometry jumped by ``jump`` world units between two steps: not motion but a reset
        of its origin, so the step moves nothing; counted, warned once."""
        self.counters.odometry_resets += 1
        self._warn_once("odometry_reset", f"odometry jumped {jump:.1f} units in one step: "
                        "taken as a reset of its origin, the estimate stays (warned once)")

    def reject(self, kind: str, message: str) -> LocalizerStep:
        """Count an input that cannot be used and return the unchanged estimate."""
        self.counters.skipped[kind] = self.counters.skipped.get(kind, 0) + 1
        self._warn_once(kind, f"skipping a step: {message} (counted as '{kind}')")
        return self._estimate(loss=float("nan"), lost=False, skipped=kind)

    def _estimate(self, loss: float, lost: bool, skipped: str | None,
                  corrected: bool = False, placed: bool = False,
                  retracted: bool = False) -> LocalizerStep:
        """``placed``: slam added this step to its map (a step still searching a loaded map,
        a late frame or a skipped step adds none, so it names no place)."""
        if self.slam is not None:
            place = len(self.slam.places) - 1 if placed else None
            return LocalizerStep(self.position.copy(), self._whole_belief.covariance(),
                                 self.front.belief[0], loss, lost, skipped,
                                 self.front.occupancy_origin, corrected, place, retracted)
        if self.model is None:
            return LocalizerStep(self.dead_reckoned.copy(), np.zeros((2, 2)), None, loss, lost,
                                 skipped)
        summary = self.grid.summarize(self.belief)
        return LocalizerStep(summary.mean[0].detach().double().cpu().numpy(),
                             summary.covariance[0].detach().double().cpu().numpy(),
                             self.belief[0].detach(),
                             loss, lost, skipped, self.grid.occupancy_origin)

    def _checked_action(self, action) -> np.ndarray | LocalizerStep:
        """The action, clipped to max_action_norm, or the rejection when it is unusable."""
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (2,):
            return self.reject("bad_action", f"action has {action.size} values, expected 2")
        if not np.isfinite(action).all():
            return self.reject("nonfinite_action", f"action {action.tolist()} is not finite")
        norm = float(np.hypot(*action))
        # only TEM2d's fixed translation kernel limits a step; the others take it in full
        if self.model is not None and norm > self.config.max_action_norm:
            self.counters.clipped_actions += 1
            self._warn_once("clipped", f"action norm {norm:.2f} exceeds max_action_norm "
                            f"{self.config.max_action_norm}; clipping it (warned once)")
            action = action * (self.config.max_action_norm / norm)
        return action

    def step(self, action, smell) -> LocalizerStep:
        """Localize from the displacement since the last step (2,) and the smell here (D,)."""
        smell = np.array(smell, dtype=np.float32).reshape(-1)   # a copy torch may own
        if smell.shape != (self.config.sensory_embedding_dim,):
            return self.reject("wrong_smell_length", f"smell has {smell.size} values, "
                               f"expected {self.config.sensory_embedding_dim}")
        if not np.isfinite(smell).all():
            return self.reject("nonfinite_smell", "smell contains NaN or inf")
        action = self._checked_action(action)
        if isinstance(action, LocalizerStep):
            return action
        self.counters.steps += 1
        self.dead_reckoned = self.dead_reckoned + action
        if self.slam is not None:
            return self._slam_step(action, smell)
        if self.model is None:
            return self._estimate(loss=float("nan"), lost=False, skipped=None)
        action_t = torch.as_tensor(action, dtype=torch.float32, device=self.device)[None]
        smell_t = torch.as_tensor(smell, device=self.device)[None]
        with torch.set_grad_enabled(self.optimizer is not None):
            result = self.model(self.belief, action_t, smell_t)
        if self.optimizer is not None:
            self.pending_losses.append(result.loss.sum())
        estimate = self._take(result)
        if len(self.pending_losses) >= self.config.train_every:
            self.train()
        return estimate

    def drop_late_frame(self, action) -> LocalizerStep:
        """A step that arrived too late to localize: its motion is integrated (so no
        displacement is lost), its smell is not used; counted as a late frame."""
        action = self._checked_action(action)
        if isinstance(action, LocalizerStep):
            return action
        self.counters.late_frames += 1
        self.dead_reckoned = self.dead_reckoned + action
        if self.slam is not None:
            action = self._to_map(action)
            if self.relocalizer is not None:      # still finding itself: no map pose to coast
                self.relocalizer.move(self.front, action)
                self.position = self._whole_belief.mean()
            else:
                self.front.move(action)
                self.position = self.slam.coast(action)
            return self._estimate(loss=float("nan"), lost=False, skipped=None)
        if self.model is None:
            return self._estimate(loss=float("nan"), lost=False, skipped=None)
        action_t = torch.as_tensor(action, dtype=torch.float32, device=self.device)[None]
        with torch.no_grad():
            return self._take(self.model.integrate_motion(self.belief, action_t))

    def save_map(self, file) -> None:
        """slam: write the map (corrected positions) to ``file``, atomically."""
        save_map(self.slam.saved_map(self.grid.size, self.grid.cell_size), file)

    def load_map(self, file) -> None:
        """slam: replace the map with the one in ``file`` and find where the agent is in it
        before mapping on. A bad file raises MapFileError and changes nothing."""
        saved = load_map(file, self.config.sensory_embedding_dim, self.grid.size,
                         self.grid.cell_size)
        self.slam.load(saved)
        self.loaded_map, self.steps_at_load = saved, self.counters.steps
        self.relocalization_unexplained = self.relocalization_retracted = 0
        self.warned.discard("unexplained")
        self._search_loaded_map()

    def _search_loaded_map(self) -> None:
        """A flat belief over the map slam holds, as loaded: where is the agent in it?"""
        self.relocalizer = Relocalizer(self.slam.places, RELOCALIZATION_SMELL_SIGMA,
                                       settled_spread=self.grid.cell_size / 2,
                                       min_strength=self.slam.settings.closure.min_strength)
        self.relocalizer.start(self.front)
        if self.relocalizer.wide:
            log.info("the loaded map spans %.0f x %.0f world units, more than the belief "
                     "grid's %.0f: searching it on %.0f-unit cells first",
                     *self.relocalizer.map_span, self.grid.extent,
                     self.relocalizer.coarse.grid.cell_size)
        self.position = self._whole_belief.mean()
        self.relocalized_after, self.fix_trial = None, None

    @property
    def _whole_belief(self) -> ScrollingBelief:
        """slam: the grid that holds the whole belief: ``front``, or while the agent searches a
        map wider than ``front``'s window, the search's coarse grid."""
        return self.front if self.relocalizer is None else self.relocalizer.holder(self.front)

    @property
    def relocalizing(self) -> bool:
        """slam: whether the agent is still finding itself in a loaded map."""
        return self.slam is not None and self.relocalizer is not None

    @property
    def fix_on_trial(self) -> bool:
        """slam: whether the agent has found itself in a loaded map but no loop closure or
        smell has yet confirmed it (docs/design.md §10)."""
        return self.slam is not None and self.fix_trial is not None

    @property
    def started_in_a_loaded_map(self) -> bool:
        """slam: whether this run began by finding itself in a loaded map (found or not yet)."""
        return self.relocalizing or (self.slam is not None and
                                     self.relocalized_after is not None)

    @property
    def heading_correction(self) -> float:
        """How far the odometry frame is turned in the map frame (radians; 0 unless slam
        fits it, ``heading_window_steps``)."""
        return 0.0 if self.heading is None else self.heading.angle

    def _to_map(self, action: np.ndarray) -> np.ndarray:
        return action if self.heading is None else self.heading.to_map(action)

    def _slam_step(self, action: np.ndarray, smell: np.ndarray) -> LocalizerStep:
        action = self._to_map(action)
        if self.relocalizer is not None:
            return self._relocalize(action, smell)
        self.front.move(action)
        result = self.slam.step(action, smell)
        if result.closure is not None:
            self.front.shift(result.correction)
        self.position = result.position
        if self.fix_trial is not None and not self._fix_stands(result.closure):
            self._retract_fix()
            return self._estimate(float("nan"), lost=False, skipped=None, retracted=True)
        if self.heading is not None:
            # only a loaded map, made with other odometry, knows odometry's true scale: a
            # closure to this session's own places would measure odometry against itself
            to_loaded_map = result.closure is not None and \
                result.closure.old < self.slam.session_start
            self.heading.observe(len(self.slam.places) - 1, self.corrected_positions,
                                 result.closure if to_loaded_map else None)
        return self._estimate(self.slam.smell_error, lost=False, skipped=None,
                              corrected=result.closure is not None, placed=True)

    def _relocalize(self, action: np.ndarray, smell: np.ndarray) -> LocalizerStep:
        """A step while the agent does not yet know where it is in a loaded map."""
        verdict = self.relocalizer.update(self.front, action, self.slam.code(smell))
        self.position = self._whole_belief.mean()
        if verdict is Verdict.UNEXPLAINED:
            self.relocalization_unexplained += 1
            self._warn_once("unexplained", "the belief settled near ({:.1f}, {:.1f}) but the "
                            "loaded map does not explain the smells there (a map of another "
                            "place?); still searching (counted as "
                            "'relocalization_unexplained')".format(*self.position))
        if verdict is Verdict.SETTLED:
            self.relocalized_after = self.counters.steps - self.steps_at_load
            log.info("found itself in the loaded map after %d steps, at (%.1f, %.1f)",
                     self.relocalized_after, *self.position)
            self.slam.start_session(self.position, sigma=self.grid.cell_size / 2)
            self.relocalizer = None
            self.fix_trial = FixTrial(self.slam.counters.searched_loaded,
                                      (EXPLAINED_SIGMAS * RELOCALIZATION_SMELL_SIGMA) ** 2)
        return self._estimate(float("nan"), lost=False, skipped=None)

    def _fix_stands(self, closure) -> bool:
        """Whether the fix in the loaded map still stands after this step (``closure``: the
        step's); a verdict either way ends its trial."""
        slam = self.slam
        error = float("nan")
        # the map's places alone predict this smell while the session's own are too recent
        # to be searched (a wrong fix's own places would explain it)
        if len(slam.places) - slam.session_start <= slam.settings.closure.exclude:
            code = slam.places.codes.data[len(slam.places) - 1].astype(np.float32)
            if float(np.linalg.norm(code)) >= slam.settings.closure.min_strength:
                error = slam.smell_error * len(code)
        verdict = self.fix_trial.judge(closure is not None and closure.old < slam.session_start,
                                       slam.counters.searched_loaded, error)
        if verdict is not None:
            self.fix_trial = None
        return verdict is not False

    def _retract_fix(self) -> None:
        """Forget what was mapped since the fix and search the loaded map again."""
        self.relocalization_retracted += 1
        log.warning("no loop closed to the loaded map in %d steps with its places to test "
                    "since the agent found itself there after %d steps, and the map does not "
                    "explain the smells: that fix was wrong (a place that smells like "
                    "another?); searching again (counted as 'relocalization_retracted')",
                    CONFIRM_WITHIN, self.relocalized_after)
        self.slam.load(self.loaded_map)
        if self.heading is not None:         # fitted against a map it was not in
            self.heading.reset()
        self._search_loaded_map()

    def memory_size(self) -> tuple[int, int]:
        """(entries, bytes) of what the localizer remembers: TEM2d's (belief, smell) pairs or
        slam's places."""
        if self.slam is not None:
            return len(self.slam.places), self.slam.places.nbytes
        if self.model is not None:
            return len(self.model.memory), self.model.memory.nbytes
        return 0, 0

    def corrected_positions(self, places) -> np.ndarray:
        """slam: where the given places are now, after every correction so far (n, 2)."""
        places = np.asarray(places, dtype=np.int64)
        self.slam.refresh_keyframes_of(places)
        return self.slam.places.positions(places)

    def _take(self, result) -> LocalizerStep:
        """Adopt the model's new belief, or restart around dead reckoning when it is lost."""
        lost = bool(result.inferred_mass[0] < self.config.lost_mass)
        if lost:
            self.counters.lost += 1
            self._warn_once("lost", "belief left the grid; restarting it around the "
                            f"dead-reckoned position ({self.dead_reckoned[0]:.1f}, "
                            f"{self.dead_reckoned[1]:.1f}) (counted as 'lost')")
            centre = torch.as_tensor(self.dead_reckoned, dtype=torch.float32,
                                     device=self.device)[None]
            half = self.config.extent / 2
            self.belief = self.grid.initial_belief(centre.clamp(-half, half))
        else:
            self.belief = result.belief
        return self._estimate(float(result.loss[0].detach()), lost, None)

    def train(self) -> None:
        """One optimizer step on the losses since the last one; cut the memory from the graph."""
        if self.optimizer is None or not self.pending_losses:
            return
        self.optimizer.zero_grad()
        torch.stack(self.pending_losses).sum().backward()
        self.optimizer.step()
        self.pending_losses = []
        self.model.memory.detach()
        self.belief = self.belief.detach()


def slam_settings(config: LocalizerConfig):
    """The slam method's settings (a SlamSettings) from the localizer's configuration."""
    from tem_localizer.slam import SlamSettings

    return SlamSettings(
        keyframe_every=config.keyframe_every, code_dim=config.smell_code_dim,
        odometry_sigma=config.odometry_sigma, max_gate=config.closure_max_gate,
        graph_window=config.graph_window_steps, seed=config.seed,
        closure=ClosureSettings(
            exclude=config.closure_exclude_steps, min_strength=config.closure_min_strength,
            min_gradient=config.closure_min_gradient,
            retrace_tolerance=config.closure_tolerance,
            crossing_tolerance=config.closure_tolerance,
            min_crossing_sine=config.closure_min_crossing_sine))
