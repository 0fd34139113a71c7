"""Start the three-node graph from the pip install (where ``ros2 launch`` does not exist) and
gather what it publishes into the same report as ``treeworld run``.

Each node is its own OS process, started with the same parameter file ``ros2 launch`` would
pass, and dies with the launcher (even when the launcher is killed). Discovery stays on this
machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST). The launcher is one of the simulator's
required readers: it reports each step it has gathered, so in lockstep no step can outrun it,
the localizer or the recorder. Ctrl-C or SIGTERM stops every child (by PID); a child that dies
or a graph that stalls ends the launch too, and in every such case what did arrive is kept:
the caller writes it as a partial report.
"""
from __future__ import annotations

import ctypes
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import OccupancyGrid, Odometry
from rclpy.context import Context
from rclpy.executors import Executor
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock
from tqdm import tqdm
from visualization_msgs.msg import MarkerArray

from treeworld_bringup.interrupts import Stopped, StopRequests
from treeworld_bringup.recording import (
    NO_TREES,
    Recording,
    Scene,
    belief_from_occupancy,
    scene_from_markers,
)
from treeworld_bringup.settings import Settings, parameter_document
from treeworld_schema import diagnostics as keys
from treeworld_schema import interface as io
from treeworld_schema.ros import init_ros

NODE_MODULES = {"treeworld_sim": "treeworld_sim.node",
                "spiral_controller": "spiral_controller.node",
                "tem_localizer": "tem_localizer.node",
                "bag_recorder": "treeworld_bringup.recorder"}
FINISHES_ON_ITS_OWN = {"treeworld_sim"}   # exits with status 0 once its run is complete
STOP_GRACE_SECONDS = 5.0
DRAIN_AFTER_FAILURE = 5.0   # a node died or the graph stalled: keep what already arrived
DRAIN_AFTER_STOP = 2.0      # Ctrl-C or SIGTERM: the same, but the user is waiting
# Real time: once the simulator's run is over, nothing new for this long means that what has
# not arrived never will (it came too late for the localizer, or was lost while it lagged).
REAL_TIME_QUIET_SECONDS = 3.0
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


class NodeDied(RuntimeError):
    """A node of the graph exited before the run was complete."""


class GraphStalled(RuntimeError):
    """No progress for too long."""


@dataclass
class Gathered:
    """Everything the graph published, by step."""

    truth: dict[int, np.ndarray] = field(default_factory=dict)
    estimates: dict[int, np.ndarray] = field(default_factory=dict)
    beliefs: dict[int, tuple[np.ndarray, tuple]] = field(default_factory=dict)  # grid, corner
    losses: dict[int, float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    arrival: dict[int, float] = field(default_factory=dict)  # perf_counter() at each estimate
    truth_arrival: dict[int, float] = field(default_factory=dict)   # ... at each true pose
    localizer_counters: dict[str, str] = field(default_factory=dict)
    localizer_handled: int = -1                   # the newest step the localizer reported
    newest_truth: int = -1                        # kept, not max() over the dict: O(1) a step
    newest_estimate: int = -1
    sim_totals: dict[str, str] = field(default_factory=dict)
    recorded: dict[str, str] = field(default_factory=dict)   # topic -> messages in the bag
    scene: Scene | None = None
    last_belief: OccupancyGrid | None = None
    last_covariance: np.ndarray | None = None    # (2, 2) of the last pose


class Gatherer(Node):
    """Subscribes to the graph's outputs (transient-local: it misses nothing) and reports on
    its progress topic the newest step whose truth, estimate and localizer report it has; the
    last of the run's ``steps`` only once the simulator's end of run (its final pose and totals)
    has arrived too, since the simulator exits once every reader has the last step, and a
    message still on its way is lost with it."""

    def __init__(self, step_period: float, belief_stride: int, use_localizer: bool,
                 steps: int, context: Context | None = None):
        super().__init__("treeworld_launch_gatherer", context=context)
        self.period, self.belief_stride = step_period, belief_stride
        self.steps = steps
        self.use_localizer = use_localizer
        self.data = Gathered()
        self.last_progress = time.monotonic()
        self.first_step_at: float | None = None    # perf_counter() when step 0 arrived
        self.last_step_at: float | None = None
        self.reported = -1
        qos = io.step_qos()
        self.create_subscription(Odometry, io.GROUND_TRUTH, self.on_truth, qos)
        self.create_subscription(PoseWithCovarianceStamped, io.POSE, self.on_pose, qos)
        self.create_subscription(OccupancyGrid, io.BELIEF, self.on_belief, qos)
        self.create_subscription(DiagnosticArray, io.DIAGNOSTICS, self.on_diagnostics, qos)
        self.create_subscription(MarkerArray, io.TREES, self.on_trees, io.latest_qos())
        self.progress = self.create_publisher(Clock, io.LAUNCHER_PROGRESS, io.latest_qos())

    def step(self, header) -> int:
        self.last_progress = time.monotonic()
        self.last_step_at = time.perf_counter()
        if self.first_step_at is None:
            self.first_step_at = self.last_step_at
        return io.step_of(header.stamp, self.period)

    def report_progress(self) -> None:
        newest = self.data.newest_truth
        if self.use_localizer:   # a reliable reader delivers each writer's samples in order
            newest = min(newest, self.data.localizer_handled, self.data.newest_estimate)
        totals = self.data.sim_totals
        if not totals or int(totals[keys.STEPS]) not in self.data.truth:
            newest = min(newest, self.steps - 2)
        if newest > self.reported:
            self.reported = newest
            self.progress.publish(Clock(clock=io.step_stamp(newest, self.period)))

    def on_truth(self, message: Odometry) -> None:
        position = message.pose.pose.position
        step = self.step(message.header)
        self.data.truth[step] = np.array([position.x, position.y])
        self.data.newest_truth = max(self.data.newest_truth, step)
        self.data.truth_arrival[step] = self.last_step_at
        if not self.use_localizer:
            self.data.arrival[step] = self.last_step_at
        self.report_progress()

    def on_pose(self, message: PoseWithCovarianceStamped) -> None:
        position = message.pose.pose.position
        step = self.step(message.header)
        self.data.estimates[step] = np.array([position.x, position.y])
        self.data.newest_estimate = max(self.data.newest_estimate, step)
        self.data.arrival[step] = self.last_step_at
        self.data.last_covariance = np.asarray(message.pose.covariance).reshape(6, 6)[:2, :2]
        self.report_progress()

    def on_belief(self, message: OccupancyGrid) -> None:
        step = self.step(message.header)
        self.data.last_belief = message
        if self.belief_stride and step % self.belief_stride == 0:
            size, origin = message.info.width, message.info.origin.position
            self.data.beliefs[step] = (
                np.frombuffer(message.data, np.int8).reshape(size, size), (origin.x, origin.y))

    def on_diagnostics(self, message: DiagnosticArray) -> None:
        if (values := io.status_values(message, keys.SIMULATOR)) is not None:
            self.data.sim_totals = values
            self.report_progress()
        if (values := io.status_values(message, keys.RECORDER)) is not None:
            # a recorder catching up is progress too; its own status, recorded on
            # /diagnostics twice a second, is not
            if _without(values, io.DIAGNOSTICS) != _without(self.data.recorded, io.DIAGNOSTICS):
                self.last_progress = time.monotonic()
            self.data.recorded = values
        if (values := io.status_values(message, keys.LOCALIZER)) is not None:
            step = self.step(message.header)
            self.data.localizer_counters = values
            self.data.localizer_handled = max(self.data.localizer_handled, step)
            # every step handled is timed, also those with no loss (dead reckoning's; slam's
            # on new ground), or the latencies would leave out the cheap steps
            if keys.STEP_LATENCY_MS in values:
                self.data.latencies_ms.append(float(values[keys.STEP_LATENCY_MS]))
            if values.get(keys.LOSS, "nan") != "nan":
                self.data.losses[step] = float(values[keys.LOSS])
            self.report_progress()

    def on_trees(self, message: MarkerArray) -> None:
        self.data.scene = scene_from_markers(message)


def _without(counts: dict[str, str], topic: str) -> dict[str, str]:
    return {name: count for name, count in counts.items() if name != topic}


DISCOVERY_RANGES = ("localhost", "subnet", "system_default", "off")


def ros_environment(discovery_range: str = "localhost") -> dict[str, str]:
    """The nodes' environment: this one, with DDS discovery limited to ``discovery_range``
    (localhost unless the graph must meet a robot or a workstation on the network)."""
    return os.environ | {"ROS_AUTOMATIC_DISCOVERY_RANGE": discovery_range.upper()}


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: the kernel sends it SIGTERM when the process
    that started it dies, however it dies, so no node outlives its launcher."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class NodeProcesses:
    """The graph's processes: started with one parameter file, stopped by PID."""

    def __init__(self, names: list[str], parameter_file: Path, log_dir: Path,
                 bag: Path | None = None, discovery_range: str = "localhost",
                 awaited_writers: dict[str, int] | None = None):
        """``bag``: a recorder writes it, reporting progress once ``awaited_writers``
        (topic -> writers) have matched."""
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        for name in names + (["bag_recorder"] if bag else []):
            if name == "bag_recorder":
                arguments = [str(bag)]
                if awaited_writers:
                    arguments += ["--await-writers",
                                  *(f"{topic}={n}" for topic, n in awaited_writers.items())]
            else:
                # every node but the simulator, which publishes /clock, follows simulated time
                arguments = ["--ros-args", "--params-file", str(parameter_file), "-p",
                             f"use_sim_time:={'false' if name == 'treeworld_sim' else 'true'}"]
            self.logs[name] = log_dir / f"{name}.log"
            with open(self.logs[name], "w") as log:
                self.processes[name] = subprocess.Popen(
                    [sys.executable, "-m", NODE_MODULES[name], *arguments],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=ros_environment(discovery_range), start_new_session=True,
                    preexec_fn=_die_with_parent)
            print(f"started {name} (pid {self.processes[name].pid}), log {self.logs[name]}",
                  file=sys.stderr, flush=True)

    @property
    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.processes.items()}

    def check_alive(self) -> None:
        """Raise NodeDied for a node that exited, except the simulator's clean end."""
        for name, process in self.processes.items():
            code = process.poll()
            if code is None or (code == 0 and name in FINISHES_ON_ITS_OWN):
                continue
            tail = self.logs[name].read_text().strip().splitlines()[-1:] or ["(no output)"]
            raise NodeDied(f"node {name} exited with status {code}: {tail[0]}")

    def stop(self) -> None:
        """SIGINT each child (as Ctrl-C would), then SIGKILL what is left after a grace time."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                # A stopped child (Ctrl-Z, SIGSTOP) only acts on SIGINT once it runs again.
                process.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class LaunchResult:
    recording: Recording           # every step that arrived (all of them unless ``failure``)
    scene: Scene
    info: dict                     # pids, elapsed_seconds, bag, parameter_file, workspace,
                                   # logs, latencies_ms, arrival (step -> perf_counter() at
                                   # its estimate), truth_arrival (... at its true pose),
                                   # last_belief, last_covariance
    failure: Exception | None      # NodeDied, GraphStalled or Stopped: the recording is partial


def launch_graph(settings: Settings, use_localizer: bool, belief_stride: int = 0,
                 stall_seconds: float = 60.0, progress: bool = True, record: bool = False,
                 discovery_range: str = "localhost", load_map: Path | None = None,
                 save_map: Path | None = None) -> LaunchResult:
    """Run the graph for ``settings.world.steps`` steps and gather what it publishes. With
    ``record``, a recorder writes every topic into a bag (``info["bag"]``). slam: ``load_map``
    starts the localizer in a copy of that map; ``save_map`` gets the map the localizer writes
    when it is stopped (also after a failure: the map of every step it handled; why not:
    ``info["map_error"]``). The parameter
    file, node logs and bag live in ``info["workspace"]``, a temporary folder the caller
    removes."""
    steps, period = settings.world.steps, settings.world.step_period
    workspace = Path(tempfile.mkdtemp(prefix="treeworld-launch-"))
    map_file = workspace / "map.npz"
    if load_map is not None:
        # a copy: the node's one map_file is read at the start and written at the end, and the
        # map the user loaded must stay as it was
        shutil.copyfile(load_map, map_file)
    copied = time.time_ns()
    if load_map is not None or save_map is not None:
        settings = dataclasses.replace(settings, localizer=dataclasses.replace(
            settings.localizer, map_file=str(map_file), start_in_map=load_map is not None,
            save_map_on_exit=save_map is not None))
    names = ["treeworld_sim", "spiral_controller"] + (["tem_localizer"] if use_localizer else [])
    readers = ([io.LOCALIZER_PROGRESS] if use_localizer else []) + \
        ([io.RECORDER_PROGRESS] if record else []) + [io.LAUNCHER_PROGRESS]
    world = dataclasses.replace(settings.world, progress_topics=tuple(readers),
                                exit_when_done=True)
    if not use_localizer:              # a forager without a localizer steers by odometry
        settings = dataclasses.replace(settings, controller=dataclasses.replace(
            settings.controller, forage_pose_source="odom"))
    parameter_file = workspace / "parameters.yaml"
    parameter_file.write_text(yaml.safe_dump(
        parameter_document(dataclasses.replace(settings, world=world)), sort_keys=False))
    bag = workspace / "bag" if record else None
    camera_topics = ((io.CAMERA,) + ((io.CAMERA_COMPRESSED,) if world.camera_compressed else ())
                     if world.camera else ())
    # The children start before rclpy (and its DDS threads) exist in this process, so the
    # code they run between fork and exec (_die_with_parent) cannot meet a lock held by them.
    nodes = NodeProcesses(names, parameter_file, workspace, bag, discovery_range,
                          awaited_writers=bag_writers(use_localizer, camera_topics, use_localizer
                                                      and settings.localizer.keeps_belief_grid))
    os.environ.update(ros_environment(discovery_range))   # this process meets them the same way
    init_ros([], signal_handler_options=SignalHandlerOptions.NO)   # Ctrl-C is ours
    gatherer = Gatherer(period, belief_stride, use_localizer, steps)
    # rclpy's default executor rebuilds its wait set for every message it takes, which cost
    # the launcher, like the recorder, about half its CPU time
    executor = EventsExecutor()
    executor.add_node(gatherer)
    failure = None
    bar = tqdm(total=steps, desc="graph steps", unit="step", disable=not progress,
               mininterval=0.5)
    # held until every node is stopped: a second Ctrl-C or SIGTERM while they stop (up to
    # STOP_GRACE_SECONDS) must not kill this process and leave them behind
    with StopRequests() as stop:
        try:
            while not complete(gatherer.data, steps, use_localizer, record, camera_topics,
                               use_localizer and settings.localizer.keeps_belief_grid):
                if not world.lockstep and gatherer.data.sim_totals and \
                        time.monotonic() - gatherer.last_progress > REAL_TIME_QUIET_SECONDS:
                    break
                executor.spin_once(timeout_sec=0.05)
                stop.check()
                bar.update(len(gatherer.data.estimates if use_localizer
                               else gatherer.data.truth) - bar.n)
                nodes.check_alive()
                if time.monotonic() - gatherer.last_progress > stall_seconds:
                    missing = awaited(gatherer.data, steps, use_localizer, record,
                                      camera_topics, use_localizer and
                                      settings.localizer.keeps_belief_grid)
                    raise GraphStalled(f"no progress for {stall_seconds:.0f} s at step "
                                       f"{len(gatherer.data.truth)} of {steps}; still "
                                       f"waiting for {', '.join(missing)}")
        except (NodeDied, GraphStalled, Stopped) as error:
            failure = error
            drain(gatherer, executor, limit=DRAIN_AFTER_STOP if isinstance(error, Stopped)
                  else DRAIN_AFTER_FAILURE)
        finally:
            bar.close()
            nodes.stop()
            executor.shutdown()
            gatherer.destroy_node()
            rclpy.shutdown()
    map_error = None
    if save_map is not None:
        if not map_file.exists() or map_file.stat().st_mtime_ns <= copied:
            map_error = "the localizer did not save its map (its log says why)"
        else:
            try:
                move_into_place(map_file, save_map)
            except OSError as error:
                map_error = f"could not save the map: {error}"
    data = gatherer.data
    elapsed = None if gatherer.first_step_at is None else \
        gatherer.last_step_at - gatherer.first_step_at
    recording = _recording(data, settings, use_localizer, belief_stride, elapsed)
    info = {"pids": nodes.pids, "elapsed_seconds": elapsed, "bag": bag,
            "parameter_file": parameter_file, "workspace": workspace, "logs": nodes.logs,
            "latencies_ms": data.latencies_ms, "arrival": data.arrival,
            "truth_arrival": data.truth_arrival,
            "last_belief": data.last_belief, "last_covariance": data.last_covariance,
            "map_error": map_error}
    return LaunchResult(recording, data.scene or NO_TREES, info, failure)


def move_into_place(source: Path, target: Path) -> None:
    """Move ``source`` to ``target`` atomically, also across file systems."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.{os.getpid()}.partial"
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def drain(gatherer: Gatherer, executor: Executor, limit: float, quiet: float = 1.0) -> None:
    """Take what the graph already sent (it may still be on its way) until nothing new has
    come for ``quiet`` seconds since the drain began, or ``limit`` seconds in all; and while
    the simulator's final pose has come without its totals, which it sends right after.

    Quiet is counted from the drain's start too: with a slow localizer the last step may have
    come long before the stop, and what was sent just before it may still be held up: a
    process stopped inside a send holds the receiver's shared-memory port until Fast DDS gives
    it up after 1 s (the likely way CI lost the simulator's totals)."""
    start = time.monotonic()
    deadline = start + limit

    def totals_due() -> bool:
        return gatherer.steps in gatherer.data.truth and not gatherer.data.sim_totals

    while (now := time.monotonic()) < deadline and \
            (now < max(start, gatherer.last_progress) + quiet or totals_due()):
        executor.spin_once(timeout_sec=0.05)


def complete(data: Gathered, steps: int, use_localizer: bool, record: bool,
             camera_topics: tuple[str, ...] = (), beliefs: bool = True) -> bool:
    """Whether everything the run published has arrived (see ``awaited``)."""
    return not awaited(data, steps, use_localizer, record, camera_topics, beliefs)


def awaited(data: Gathered, steps: int, use_localizer: bool, record: bool,
            camera_topics: tuple[str, ...] = (), beliefs: bool = True) -> list[str]:
    """What of the run has not arrived yet, in words: every true pose, every estimate and the
    localizer's report of its last step, and with ``record`` every message in the bag
    (``camera_topics``: the simulator's camera topics, one image per step; ``beliefs``: the
    localizer publishes a belief grid each step, which dead reckoning does not)."""
    if not data.sim_totals:
        return ["the simulator's totals"]
    ran = int(data.sim_totals[keys.STEPS])        # fewer than ``steps`` if the agent died
    missing = []
    if ran not in data.truth or len(data.truth) < ran + 1:
        missing.append(f"true poses ({len(data.truth)} of {ran + 1})")
    if record:
        recorded = {topic: int(count) for topic, count in data.recorded.items()}
        missing += [f"{topic} in the bag ({recorded.get(topic, 0)} of at least {count})"
                    for topic, count in bag_needs(ran, use_localizer, camera_topics,
                                                  beliefs).items()
                    if recorded.get(topic, 0) < count]
    # The estimates and the localizer's reports come from different writers: a sample lost on
    # the way holds back every later one of its writer until it is repaired, so one arriving
    # says nothing about the other.
    if use_localizer and len(data.estimates) < ran:
        missing.append(f"estimates ({len(data.estimates)} of {ran})")
    if use_localizer and data.localizer_handled < ran - 1:
        missing.append(f"the localizer's report of step {ran - 1} (the newest: "
                       f"{data.localizer_handled})")
    return missing


def bag_needs(ran: int, use_localizer: bool, camera_topics: tuple[str, ...],
              beliefs: bool) -> dict[str, int]:
    """The fewest messages of each topic a complete bag of ``ran`` steps holds."""
    # /diagnostics: the localizer's report of each step and the simulator's totals, at least
    # (the recorder's own status goes there too)
    return {io.GROUND_TRUTH: ran + 1, io.SMELL: ran, io.ODOM: ran} | (
        {io.POSE: ran, io.DIAGNOSTICS: ran + 1} if use_localizer else {}) | (
        {io.BELIEF: ran} if use_localizer and beliefs else {}) | \
        {topic: ran for topic in camera_topics}


def bag_writers(use_localizer: bool, camera_topics: tuple[str, ...],
                beliefs: bool) -> dict[str, int]:
    """The writers the recorder must have matched before the simulator starts: those of every
    topic ``bag_needs`` counts. The localizer's are the ones at risk: its topics are not held
    to the recorder's pace, so if it were discovered late its first steps would be gone."""
    writers = {topic: 1 for topic in bag_needs(0, use_localizer, camera_topics, beliefs)}
    if use_localizer:
        writers[io.DIAGNOSTICS] = 2              # the simulator's and the localizer's
    return writers


def _recording(data: Gathered, settings: Settings, use_localizer: bool, belief_stride: int,
               elapsed: float | None) -> Recording:
    """The steps that arrived (with an estimate, when localizing), in order."""
    totals = data.sim_totals
    ran = int(totals[keys.STEPS]) if totals else settings.world.steps
    steps = sorted(s for s in data.truth if s < ran and (not use_localizer or s in data.estimates))
    summary = {"elapsed_seconds": elapsed,
               "steps_per_second": len(steps) / elapsed if elapsed else None}
    if totals:
        summary |= {"total_movement": float(totals[keys.TOTAL_MOVEMENT]),
                    "health": float(totals[keys.HEALTH]),
                    "fruit_eaten": int(totals[keys.FRUIT_EATEN]),
                    "poisonous_fruit_eaten": int(totals[keys.POISONOUS_FRUIT_EATEN])}
    if ran in data.truth:
        summary["final_distance_from_origin"] = float(np.hypot(*data.truth[ran]))
    recording = Recording(timestamps=np.array(steps) * settings.world.step_period,
                          true_positions=np.array([data.truth[s] for s in steps]).reshape(-1, 2),
                          grid_extent=settings.localizer.extent, summary=summary,
                          belief_stride=belief_stride or 4)
    if not use_localizer:
        return recording
    recording.estimates = np.array([data.estimates[s] for s in steps]).reshape(-1, 2)
    recording.losses = np.array([data.losses.get(s, np.nan) for s in steps])
    counters = data.localizer_counters
    # in real time, steps the localizer got too late (late_frames) or never got whole
    summary |= {"steps_without_estimate": ran - len(steps),
                "skipped": keys.skipped_by_kind(counters),
                "skipped_total": int(counters.get(keys.SKIPPED_TOTAL, 0)),
                "lost_count": int(counters.get(keys.LOST, 0)),
                "clipped_actions": int(counters.get(keys.CLIPPED_ACTIONS, 0)),
                "odometry_resets": int(counters.get(keys.ODOMETRY_RESETS, 0)),
                "late_frames": int(counters.get(keys.LATE_FRAMES, 0))}
    if keys.CLOSURES_ACCEPTED in counters:
        summary["slam"] = {key: float(value) if "." in value else int(value)
                           for key, value in counters.items()
                           if key.startswith(keys.CLOSURE_PREFIX) or key in (
                               keys.OPTIMIZER_FAILURES, keys.KEYFRAMES, keys.MAP_BYTES,
                               keys.RELOCALIZATION_UNEXPLAINED,
                               keys.RELOCALIZATION_RETRACTED)}
        if keys.RELOCALIZED_AFTER_STEPS in counters:      # started in a loaded map
            found = counters[keys.RELOCALIZED_AFTER_STEPS]
            summary["slam"][keys.RELOCALIZED_AFTER_STEPS] = int(found) if found else None
    # in real time the steps with an estimate have gaps: each kept belief at its own row
    rows = [row for row, step in enumerate(steps) if step in data.beliefs]
    if rows:
        shown = [data.beliefs[steps[row]] for row in rows]
        recording.belief_frames = np.stack([
            belief_from_occupancy(frame, settings.localizer.grid_size) for frame, _ in shown])
        recording.belief_origins = np.array([origin for _, origin in shown])
        recording.belief_rows = np.array(rows)
    return recording
