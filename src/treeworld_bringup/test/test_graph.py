"""The three-node graph over real DDS, in separate processes."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import OccupancyGrid, Odometry
from rclpy.node import Node

from ros_support import pid_alive, private_domain, ros_context, wait_for
from treeworld_bringup.cli import main
from treeworld_bringup.launcher import NodeProcesses
from treeworld_bringup.settings import Settings, parameter_document
from treeworld_schema import interface as io

TREEWORLD = str(Path(sys.executable).with_name("treeworld"))


class Recorder(Node):
    """An independent subscriber: everything the graph publishes, by step."""

    def __init__(self, period: float, context):
        super().__init__("test_recorder", context=context)
        self.period = period
        self.beliefs, self.poses, self.truth = {}, {}, {}
        qos = io.step_qos()
        self.create_subscription(OccupancyGrid, io.BELIEF, self.keep(self.beliefs), qos)
        self.create_subscription(PoseWithCovarianceStamped, io.POSE, self.keep(self.poses), qos)
        self.create_subscription(Odometry, io.GROUND_TRUTH, self.keep(self.truth), qos)

    def keep(self, store):
        return lambda message: store.__setitem__(io.step_of(message.header.stamp, self.period),
                                                 message)


def test_graph_delivers_every_step_with_spec_geometry(tmp_path):
    steps = 200
    defaults = Settings()
    settings = Settings(dataclasses.replace(defaults.world, steps=steps), defaults.controller,
                        dataclasses.replace(defaults.localizer, use_memory_to_localize=False,
                                            device="cpu"))
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text(yaml.safe_dump(parameter_document(settings)))
    with ros_context(private_domain()) as (context, add_node):
        recorder = Recorder(settings.world.step_period, context)
        add_node(recorder)
        nodes = NodeProcesses(["treeworld_sim", "spiral_controller", "tem_localizer"],
                              parameters, tmp_path)
        try:
            wait_for(lambda: len(recorder.poses) == steps and len(recorder.beliefs) == steps
                     and len(recorder.truth) == steps + 1, 120, "every step's output",
                     nodes.check_alive)
        finally:
            nodes.stop()
        assert not any(pid_alive(pid) for pid in nodes.pids.values())
    grid = recorder.beliefs[steps - 1]
    assert grid.header.frame_id == "map"
    assert grid.info.resolution == pytest.approx(10.0)
    assert (grid.info.width, grid.info.height) == (101, 101)
    assert (grid.info.origin.position.x, grid.info.origin.position.y) == (-505.0, -505.0)
    data = np.frombuffer(grid.data, np.int8)
    assert data.size == 101 * 101 and data.max() == 100 and data.min() >= 0
    for step in range(steps):
        truth = recorder.truth[step].pose.pose.position
        estimate = recorder.poses[step].pose.pose.position
        assert np.hypot(estimate.x - truth.x, estimate.y - truth.y) <= 10.0, step
    # the most likely cell of the last belief is the true position's cell
    row, col = divmod(int(data.argmax()), 101)
    truth = recorder.truth[steps - 1].pose.pose.position
    assert abs((col - 50) * 10 - truth.x) <= 10 and abs((row - 50) * 10 - truth.y) <= 10


def test_launch_reproduces_the_in_process_run(tmp_path):
    """Memory on, random controller, odometry noise: the nodes add transport, not behaviour."""
    options = ["--steps", "150", "--seed", "5", "--controller", "random", "--action-noise",
               "0.5", "--device", "cpu"]
    env = os.environ | {"ROS_DOMAIN_ID": private_domain(),
                        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    launched = subprocess.run([TREEWORLD, "launch", *options, "--out", str(tmp_path / "live")],
                              capture_output=True, text=True, timeout=300, env=env)
    assert launched.returncode == 0, launched.stderr[-2000:]
    assert main(["run", *options, "--out", str(tmp_path / "inproc")]) == 0
    for name, tolerance in (("ground_truth.tum", 1e-9), ("estimate.tum", 1e-6)):
        live = np.loadtxt(tmp_path / "live" / name)
        inproc = np.loadtxt(tmp_path / "inproc" / name)
        assert live.shape == inproc.shape == (150, 8)
        np.testing.assert_allclose(live, inproc, atol=tolerance, rtol=0)
    live = json.loads((tmp_path / "live" / "metrics.json").read_text())
    inproc = json.loads((tmp_path / "inproc" / "metrics.json").read_text())
    for key in ("total_movement", "final_distance_from_origin", "health", "ate_rmse",
                "mean_loss"):
        assert live[key] == pytest.approx(inproc[key], rel=1e-5), key
    pids = live["launch"]["node_pids"]
    assert set(pids) == {"treeworld_sim", "spiral_controller", "tem_localizer"}
    assert not any(pid_alive(pid) for pid in pids.values())


def started_pids(process: subprocess.Popen, count: int) -> dict[str, int]:
    pids = {}
    while len(pids) < count:
        line = process.stderr.readline()
        assert line, "launcher ended before starting its nodes"
        if line.startswith("started "):
            name, pid = line.split()[1], int(line.split("(pid ")[1].split(")")[0])
            pids[name] = pid
    return pids


def test_ctrl_c_stops_every_node_and_writes_nothing(tmp_path):
    domain = private_domain()
    env = os.environ | {"ROS_DOMAIN_ID": domain, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    out = tmp_path / "out"
    launcher = subprocess.Popen([TREEWORLD, "launch", "--steps", "100000", "--no-memory",
                                 "--device", "cpu", "--out", str(out)],
                                stderr=subprocess.PIPE, text=True, env=env)
    try:
        pids = started_pids(launcher, 3)
        with ros_context(domain) as (context, add_node):
            recorder = Recorder(0.1, context)
            add_node(recorder)
            wait_for(lambda: len(recorder.poses) >= 20, 120, "the graph to run")
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=30) == 130, launcher.stderr.read()[-2000:]
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert not any(pid_alive(pid) for pid in pids.values())
    assert not out.exists()


def test_a_dying_node_is_named(tmp_path):
    env = os.environ | {"ROS_DOMAIN_ID": private_domain(),
                        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    launcher = subprocess.Popen([TREEWORLD, "launch", "--steps", "100000", "--no-memory",
                                 "--device", "cpu", "--out", str(tmp_path / "out")],
                                stderr=subprocess.PIPE, text=True, env=env)
    try:
        pids = started_pids(launcher, 3)
        os.kill(pids["tem_localizer"], signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 1
    assert "node tem_localizer exited with status -9" in stderr
    assert not any(pid_alive(pid) for pid in pids.values())
