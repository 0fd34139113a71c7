"""Start the three-node graph from the pip install (where ``ros2 launch`` does not exist) and
gather what it publishes into the same report as ``treeworld run``.

Each node is its own OS process, started with the same parameter file ``ros2 launch`` would
pass. Discovery stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST). Every topic
is transient-local, so the order in which processes come up does not matter: nothing is
slept on. Ctrl-C or SIGTERM stops every child (by PID); a child that dies ends the launch with
an error naming it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rclpy
import torch
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import OccupancyGrid, Odometry
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from tqdm import tqdm
from visualization_msgs.msg import MarkerArray

from tem_localizer import BeliefGrid
from treeworld_bringup.interrupts import StopRequests
from treeworld_bringup.recorder import STATUS_NAME
from treeworld_bringup.recording import NO_TREES, Recording, Scene, scene_from_markers
from treeworld_bringup.settings import Settings, parameter_document
from treeworld_schema import interface as io

NODE_MODULES = {"treeworld_sim": "treeworld_sim.node",
                "spiral_controller": "spiral_controller.node",
                "tem_localizer": "tem_localizer.node",
                "bag_recorder": "treeworld_bringup.recorder"}
STOP_GRACE_SECONDS = 5.0


class NodeDied(RuntimeError):
    """A node of the graph exited before the run was complete."""


class GraphStalled(RuntimeError):
    """No progress for too long."""


@dataclass
class Gathered:
    """Everything the graph published, by step."""

    truth: dict[int, np.ndarray] = field(default_factory=dict)
    estimates: dict[int, np.ndarray] = field(default_factory=dict)
    beliefs: dict[int, np.ndarray] = field(default_factory=dict)
    losses: dict[int, float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    localizer_counters: dict[str, str] = field(default_factory=dict)
    sim_totals: dict[str, str] = field(default_factory=dict)
    recorded: dict[str, str] = field(default_factory=dict)   # topic -> messages in the bag
    scene: Scene | None = None
    last_belief: OccupancyGrid | None = None
    last_covariance: np.ndarray | None = None    # (2, 2) of the last pose


class Gatherer(Node):
    """Subscribes to the graph's outputs (transient-local: it misses nothing)."""

    def __init__(self, step_period: float, belief_stride: int):
        super().__init__("treeworld_launch_gatherer")
        self.period, self.belief_stride = step_period, belief_stride
        self.data = Gathered()
        self.last_progress = time.monotonic()
        self.first_step_at: float | None = None    # perf_counter() when step 0 arrived
        qos = io.step_qos()
        self.create_subscription(Odometry, io.GROUND_TRUTH, self.on_truth, qos)
        self.create_subscription(PoseWithCovarianceStamped, io.POSE, self.on_pose, qos)
        self.create_subscription(OccupancyGrid, io.BELIEF, self.on_belief, qos)
        self.create_subscription(DiagnosticArray, io.DIAGNOSTICS, self.on_diagnostics, qos)
        self.create_subscription(MarkerArray, io.TREES, self.on_trees, io.latest_qos())

    def step(self, header) -> int:
        self.last_progress = time.monotonic()
        if self.first_step_at is None:
            self.first_step_at = time.perf_counter()
        return io.step_of(header.stamp, self.period)

    def on_truth(self, message: Odometry) -> None:
        position = message.pose.pose.position
        self.data.truth[self.step(message.header)] = np.array([position.x, position.y])

    def on_pose(self, message: PoseWithCovarianceStamped) -> None:
        position = message.pose.pose.position
        self.data.estimates[self.step(message.header)] = np.array([position.x, position.y])
        self.data.last_covariance = np.asarray(message.pose.covariance).reshape(6, 6)[:2, :2]

    def on_belief(self, message: OccupancyGrid) -> None:
        step = self.step(message.header)
        self.data.last_belief = message
        if self.belief_stride and step % self.belief_stride == 0:
            size = message.info.width
            self.data.beliefs[step] = np.frombuffer(message.data, np.int8).reshape(size, size)

    def on_diagnostics(self, message: DiagnosticArray) -> None:
        for status in message.status:
            values = {kv.key: kv.value for kv in status.values}
            if status.name == "treeworld_sim":
                self.data.sim_totals = values
            elif status.name == STATUS_NAME:
                self.data.recorded = values
            elif status.name == "tem_localizer":
                self.data.localizer_counters = values
                if values.get("loss", "nan") != "nan":
                    self.data.losses[self.step(message.header)] = float(values["loss"])
                    self.data.latencies_ms.append(float(values["step_latency_ms"]))

    def on_trees(self, message: MarkerArray) -> None:
        self.data.scene = scene_from_markers(message)


def ros_environment() -> dict[str, str]:
    return os.environ | {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}


class NodeProcesses:
    """The graph's processes: started with one parameter file, stopped by PID."""

    def __init__(self, names: list[str], parameter_file: Path, log_dir: Path,
                 bag: Path | None = None):
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        for name in names + (["bag_recorder"] if bag else []):
            # every node but the simulator, which publishes /clock, follows simulated time
            arguments = [str(bag)] if name == "bag_recorder" else \
                ["--ros-args", "--params-file", str(parameter_file), "-p",
                 f"use_sim_time:={'false' if name == 'treeworld_sim' else 'true'}"]
            self.logs[name] = log_dir / f"{name}.log"
            with open(self.logs[name], "w") as log:
                self.processes[name] = subprocess.Popen(
                    [sys.executable, "-m", NODE_MODULES[name], *arguments],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=ros_environment(), start_new_session=True)
            print(f"started {name} (pid {self.processes[name].pid}), log {self.logs[name]}",
                  file=sys.stderr, flush=True)

    @property
    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.processes.items()}

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            code = process.poll()
            if code is not None:
                tail = self.logs[name].read_text().strip().splitlines()[-1:] or ["(no output)"]
                raise NodeDied(f"node {name} exited with status {code}: {tail[0]}")

    def stop(self) -> None:
        """SIGINT each child (as Ctrl-C would), then SIGKILL what is left after a grace time."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def launch_graph(settings: Settings, use_localizer: bool, belief_stride: int = 0,
                 stall_seconds: float = 60.0, progress: bool = True, record: bool = False
                 ) -> tuple[Recording, Scene, dict]:
    """Run the graph for ``settings.world.steps`` steps; returns what it published. With
    ``record``, a recorder writes every topic into a bag (``info["bag"]``). The parameter file,
    node logs and bag live in ``info["workspace"]``, a temporary folder the caller removes; after
    a failure it is kept, for the logs."""
    steps, period = settings.world.steps, settings.world.step_period
    names = ["treeworld_sim", "spiral_controller"] + (["tem_localizer"] if use_localizer else [])
    workspace = Path(tempfile.mkdtemp(prefix="treeworld-launch-"))
    parameter_file = workspace / "parameters.yaml"
    parameter_file.write_text(yaml.safe_dump(parameter_document(settings), sort_keys=False))
    bag = workspace / "bag" if record else None
    rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)   # Ctrl-C is ours
    gatherer = Gatherer(period, belief_stride)
    nodes = None
    try:
        with StopRequests() as stop:
            nodes = NodeProcesses(names, parameter_file, workspace, bag)
            bar = tqdm(total=steps, desc="graph steps", unit="step", disable=not progress,
                       mininterval=0.5)
            while not _complete(gatherer.data, steps, use_localizer, record):
                rclpy.spin_once(gatherer, timeout_sec=0.05)
                stop.check()
                bar.update(len(gatherer.data.estimates if use_localizer
                               else gatherer.data.truth) - bar.n)
                nodes.check_alive()
                if time.monotonic() - gatherer.last_progress > stall_seconds:
                    raise GraphStalled(f"no progress for {stall_seconds:.0f} s at step "
                                       f"{len(gatherer.data.truth)} of {steps}")
            bar.close()
        # from the first step's data (node start-up excluded) to the last step's estimate
        elapsed = time.perf_counter() - gatherer.first_step_at
        info = {"pids": nodes.pids, "elapsed_seconds": elapsed, "bag": bag,
                "parameter_file": parameter_file, "workspace": workspace, "logs": nodes.logs}
    finally:
        if nodes is not None:
            nodes.stop()
        gatherer.destroy_node()
        rclpy.shutdown()
    recording = _recording(gatherer.data, settings, use_localizer, belief_stride, elapsed)
    scene = gatherer.data.scene or NO_TREES
    return recording, scene, info | {"latencies_ms": gatherer.data.latencies_ms,
                                     "last_belief": gatherer.data.last_belief,
                                     "last_covariance": gatherer.data.last_covariance}


def _complete(data: Gathered, steps: int, use_localizer: bool, record: bool) -> bool:
    if len(data.truth) < steps + 1 or not data.sim_totals:
        return False
    if record:
        recorded = {topic: int(count) for topic, count in data.recorded.items()}
        needed = {io.GROUND_TRUTH: steps + 1, io.SMELL: steps, io.ODOM: steps} | (
            {io.POSE: steps, io.BELIEF: steps} if use_localizer else {})
        if any(recorded.get(topic, 0) < count for topic, count in needed.items()):
            return False
    if not use_localizer:
        return True
    # the step's diagnostics (its loss and latency) follow its estimate
    return len(data.estimates) >= steps and \
        int(data.localizer_counters.get("steps", 0)) >= steps


def _recording(data: Gathered, settings: Settings, use_localizer: bool, belief_stride: int,
               elapsed: float) -> Recording:
    steps, period = settings.world.steps, settings.world.step_period
    truth = np.stack([data.truth[s] for s in range(steps)])
    totals = data.sim_totals
    summary = {
        "total_movement": float(totals["total_movement"]),
        "final_distance_from_origin": float(np.hypot(*data.truth[steps])),
        "health": float(totals["health"]), "fruit_eaten": int(totals["fruit_eaten"]),
        "poisonous_fruit_eaten": int(totals["poisonous_fruit_eaten"]),
        "elapsed_seconds": elapsed, "steps_per_second": steps / max(elapsed, 1e-9),
    }
    recording = Recording(timestamps=np.arange(steps) * period, true_positions=truth,
                          grid_extent=settings.localizer.extent, summary=summary,
                          belief_stride=belief_stride or 4)
    if use_localizer:
        recording.estimates = np.stack([data.estimates[s] for s in range(steps)])
        recording.losses = np.array([data.losses.get(s, np.nan) for s in range(steps)])
        counters = data.localizer_counters
        skipped = {k[len("skipped_"):]: int(v) for k, v in counters.items()
                   if k.startswith("skipped_") and k != "skipped_total"}
        summary |= {"skipped": skipped, "skipped_total": int(counters.get("skipped_total", 0)),
                    "lost_count": int(counters.get("lost", 0)),
                    "clipped_actions": int(counters.get("clipped_actions", 0))}
        if data.beliefs:
            grid = BeliefGrid(settings.localizer.grid_size, settings.localizer.extent)
            frames = [grid.from_occupancy(torch.from_numpy(data.beliefs[s].reshape(1, -1)))[0]
                      .numpy() for s in sorted(data.beliefs)]
            recording.belief_frames = np.stack(frames)
    return recording

