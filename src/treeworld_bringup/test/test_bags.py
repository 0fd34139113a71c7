"""Record, replay, play, evaluate and export real rosbag2 bags (issue: record and replay)."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from nav_msgs.msg import Odometry
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from ros_support import pid_alive, private_domain, ros_context, wait_for
from tem_localizer import Localizer
from treeworld_bringup.bags import STACK_TOPICS, BagReader
from treeworld_bringup.cli import main
from treeworld_bringup.launcher import NodeProcesses
from treeworld_bringup.replay import replay_events
from treeworld_bringup.settings import load_settings, parameter_document
from treeworld_schema import interface as io

BIN = Path(sys.executable).parent
STEPS = 200
KILTED = get_typestore(Stores.ROS2_KILTED)


def ros_env(domain: str) -> dict[str, str]:
    return os.environ | {"ROS_DOMAIN_ID": domain, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}


@pytest.fixture(scope="module")
def live_run(tmp_path_factory) -> Path:
    """A recorded 200-step live run, memory on, so recall is part of what must reproduce."""
    out = tmp_path_factory.mktemp("live") / "run"
    result = subprocess.run(
        [str(BIN / "treeworld"), "launch", "--steps", str(STEPS), "--controller", "circle",
         "--action-noise", "0.5", "--device", "cpu", "--record", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=ros_env(private_domain()))
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def test_recorded_bag_has_every_topic_count_and_type(live_run):
    with Reader(live_run / "bag") as reader:            # rosbags' own reader, not ours
        found = {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}
        for connection, _, rawdata in reader.messages():
            KILTED.deserialize_cdr(rawdata, connection.msgtype)     # every message decodes
    assert {t: kind for t, (kind, _) in found.items()} == STACK_TOPICS
    counts = {t: n for t, (_, n) in found.items()}
    assert counts[io.SMELL] == counts[io.ODOM] == counts[io.POSE] == STEPS
    assert counts[io.BELIEF] == STEPS
    assert counts[io.GROUND_TRUTH] == STEPS + 1      # and where the agent ended
    assert counts[io.CMD_VEL] >= STEPS and counts[io.CLOCK] >= STEPS
    assert counts[io.TREES] == 1 and counts[io.DIAGNOSTICS] >= STEPS


def test_replay_reproduces_the_live_beliefs_exactly(live_run):
    settings = load_settings(live_run / "parameters.yaml")
    recorded_beliefs, recorded_poses = {}, {}
    with BagReader(live_run / "bag") as bag:
        for message, decoded in bag.decoded([io.BELIEF, io.POSE]):
            stamp = decoded.header.stamp.sec * 10**9 + decoded.header.stamp.nanosec
            if message.topic == io.BELIEF:
                recorded_beliefs[stamp] = np.asarray(decoded.data, np.int8)
            else:
                recorded_poses[stamp] = np.array([decoded.pose.pose.position.x,
                                                  decoded.pose.pose.position.y])
        localizer = Localizer(settings.localizer)
        events = [e for e in replay_events(bag, localizer, settings.localizer)]
    assert len(events) == STEPS and all(e.step.skipped is None for e in events)
    assert any(float(e.step.loss) > 0 for e in events)
    for event in events:
        occupancy = localizer.grid.to_occupancy(event.step.belief[None])[0].numpy()
        np.testing.assert_array_equal(occupancy, recorded_beliefs[event.stamp])
        np.testing.assert_allclose(event.step.mean, recorded_poses[event.stamp], atol=1e-9)


def test_replay_command_writes_the_run_report(live_run, tmp_path):
    out = tmp_path / "replayed"
    assert main(["replay", str(live_run / "bag"), "--config",
                 str(live_run / "parameters.yaml"), "--out", str(out)]) == 0
    np.testing.assert_allclose(np.loadtxt(out / "estimate.tum"),
                               np.loadtxt(live_run / "estimate.tum"), atol=1e-9)
    live = json.loads((live_run / "metrics.json").read_text())
    replayed = json.loads((out / "metrics.json").read_text())
    assert replayed["ate_rmse"] == pytest.approx(live["ate_rmse"], rel=1e-9)


def test_eval_prints_what_evo_ape_prints(live_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(live_run, run)
    assert main(["eval", str(run)]) == 0
    printed = float(re.search(r"ATE RMSE \(unaligned\) ([0-9.]+)",
                              capsys.readouterr().out).group(1))
    evo = subprocess.run([str(BIN / "evo_ape"), "tum", str(run / "ground_truth.tum"),
                          str(run / "estimate.tum")], capture_output=True, text=True,
                         timeout=120, env=os.environ | {"MPLBACKEND": "Agg"})
    assert evo.returncode == 0, evo.stderr
    evo_rmse = float(re.search(r"rmse\s+([0-9.]+)", evo.stdout).group(1))
    assert printed == pytest.approx(evo_rmse, abs=1e-6)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["ate_rmse"] == pytest.approx(evo_rmse, abs=1e-6)
    assert metrics["total_movement"] > 0             # the run's own figures are kept
    assert set(metrics["evaluation"]) == {"ate", "ate_aligned", "rpe"}


def test_eval_of_a_bag_draws_the_belief(live_run, tmp_path):
    out = tmp_path / "bag-eval"
    assert main(["eval", str(live_run / "bag"), "--gif", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    live = json.loads((live_run / "metrics.json").read_text())
    assert metrics["ate_rmse"] == pytest.approx(live["ate_rmse"], rel=1e-9)
    for name in ("world.png", "error.png", "belief.gif", "loss.png"):
        assert (out / name).stat().st_size > 1000, name


def test_export_writes_tum_files_other_tools_read(live_run, tmp_path):
    from evo.tools import file_interface

    assert main(["bag", "export", str(live_run / "bag"), "--tum", str(tmp_path / "tum")]) == 0
    names = sorted(p.name for p in (tmp_path / "tum").iterdir())
    assert names == ["ground_truth_odom.tum", "odom.tum", "tem_pose.tum"]
    pose = file_interface.read_tum_trajectory_file(str(tmp_path / "tum" / "tem_pose.tum"))
    assert pose.num_poses == STEPS
    np.testing.assert_allclose(pose.positions_xyz[:, :2],
                               np.loadtxt(live_run / "estimate.tum")[:, 1:3], atol=1e-9)


def test_bag_info_lists_topics(live_run, capsys):
    assert main(["bag", "info", str(live_run / "bag")]) == 0
    printed = capsys.readouterr().out
    assert re.search(rf"/smell\s+sensor_msgs/msg/Image\s+{STEPS}\b", printed)


def test_lockstep_play_into_a_live_localizer_reproduces_its_poses(live_run, tmp_path):
    domain = private_domain()
    recorded = {}
    with BagReader(live_run / "bag") as bag:
        for _, decoded in bag.decoded([io.POSE]):
            recorded[(decoded.header.stamp.sec, decoded.header.stamp.nanosec)] = \
                decoded.pose.pose.position.x
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text((live_run / "parameters.yaml").read_text())
    poses = {}
    with ros_context(domain) as (context, add_node):
        from geometry_msgs.msg import PoseWithCovarianceStamped
        from rclpy.node import Node

        listener = Node("test_pose_listener", context=context)
        listener.create_subscription(
            PoseWithCovarianceStamped, io.POSE,
            lambda m: poses.__setitem__((m.header.stamp.sec, m.header.stamp.nanosec),
                                        m.pose.pose.position.x), io.step_qos())
        add_node(listener)
        os.environ["ROS_DOMAIN_ID"] = domain
        nodes = NodeProcesses(["tem_localizer"], parameters, tmp_path)
        try:
            player = subprocess.run(
                [str(BIN / "treeworld"), "bag", "play", str(live_run / "bag"), "--lockstep",
                 "--topics", "/odom", "/smell", "/clock"],
                capture_output=True, text=True, timeout=300, env=ros_env(domain))
            assert player.returncode == 0, player.stderr[-2000:]
            wait_for(lambda: len(poses) == STEPS, 60, "every replayed pose", nodes.check_alive)
        finally:
            nodes.stop()
    assert poses == pytest.approx(recorded, abs=1e-9)


# -- recording under trouble ------------------------------------------------------------------

def start_sim_and_controller(tmp_path) -> NodeProcesses:
    settings = load_settings(None)
    settings = dataclasses.replace(settings, world=dataclasses.replace(settings.world,
                                                                       steps=100_000))
    parameters = tmp_path / "parameters.yaml"
    import yaml

    parameters.write_text(yaml.safe_dump(parameter_document(settings)))
    return NodeProcesses(["treeworld_sim", "spiral_controller"], parameters, tmp_path)


def truth_counter(context, add_node):
    """(ground-truth messages seen, the recorder's latest per-topic counts)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.node import Node

    seen, recorded = [], {}

    def on_diagnostics(message):
        for status in message.status:
            if status.name == "bag_recorder":
                recorded.update({kv.key: int(kv.value) for kv in status.values})

    node = Node("test_truth_counter", context=context)
    node.create_subscription(Odometry, io.GROUND_TRUTH, seen.append, io.step_qos())
    node.create_subscription(DiagnosticArray, io.DIAGNOSTICS, on_diagnostics, io.step_qos())
    add_node(node)
    return seen, recorded


@pytest.mark.parametrize("stop_signal, storage", [(signal.SIGINT, "mcap"),
                                                   (signal.SIGTERM, "sqlite3")])
def test_an_interrupted_recording_is_still_a_valid_bag(tmp_path, stop_signal, storage):
    domain = private_domain()
    os.environ["ROS_DOMAIN_ID"] = domain
    bag = tmp_path / "bag"
    with ros_context(domain) as (context, add_node):
        seen, recorded = truth_counter(context, add_node)
        nodes = start_sim_and_controller(tmp_path)
        recorder = subprocess.Popen([str(BIN / "treeworld"), "bag", "record", str(bag),
                                     "--storage", storage],
                                    stderr=subprocess.PIPE, text=True, env=ros_env(domain))
        try:
            wait_for(lambda: recorded.get(io.SMELL, 0) > 100, 120,
                     "the recorder to get going", nodes.check_alive)
            recorder.send_signal(stop_signal)
            assert recorder.wait(timeout=30) == 0, recorder.stderr.read()
        finally:
            if recorder.poll() is None:
                recorder.kill()
            nodes.stop()
    with Reader(bag) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        last = None
        for connection, _, rawdata in reader.messages():
            last = KILTED.deserialize_cdr(rawdata, connection.msgtype)
    assert counts[io.SMELL] > 100 and counts[io.GROUND_TRUTH] > 100
    assert last is not None
    assert list(bag.glob("*.db3" if storage == "sqlite3" else "*.mcap"))


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # EFBIG as an error, as a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


def test_a_full_disk_stops_the_recorder_not_the_graph(tmp_path):
    domain = private_domain()
    os.environ["ROS_DOMAIN_ID"] = domain
    with ros_context(domain) as (context, add_node):
        seen, _ = truth_counter(context, add_node)
        nodes = start_sim_and_controller(tmp_path)
        recorder = subprocess.Popen([str(BIN / "treeworld"), "bag", "record",
                                     str(tmp_path / "bag")], stderr=subprocess.PIPE, text=True,
                                    env=ros_env(domain), preexec_fn=_limit_file_size)
        try:
            code = recorder.wait(timeout=120)
            errors = [line for line in recorder.stderr.read().splitlines() if "error:" in line]
            after = len(seen)
            wait_for(lambda: len(seen) > after + 50, 60, "the graph to keep running",
                     nodes.check_alive)
            assert all(pid_alive(pid) for pid in nodes.pids.values())
        finally:
            if recorder.poll() is None:
                recorder.kill()
            nodes.stop()
    assert code == 1
    assert len(errors) == 1 and "cannot write" in errors[0] and "File too large" in errors[0]


@pytest.mark.parametrize("make_out, message", [
    (lambda d: (d / "exists").mkdir() or d / "exists", "exists already"),
    (lambda d: (d / "file").write_text("x") or d / "file" / "bag", "cannot create bag"),
])
def test_recording_into_an_unusable_folder_fails_at_once(tmp_path, capsys, make_out, message):
    out = make_out(tmp_path)
    assert main(["bag", "record", str(out)]) == 2
    assert message in capsys.readouterr().err


# -- bad bags ---------------------------------------------------------------------------------

def write_bag(path: Path, connections: list[tuple[str, str, dict]], messages=()) -> Path:
    """A bag with the given (topic, type, add_connection options) and raw messages."""
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        made = {topic: writer.add_connection(topic, kind, **({"typestore": KILTED} | options))
                for topic, kind, options in connections}
        for topic, timestamp, rawdata in messages:
            writer.write(made[topic], timestamp, rawdata)
    return path


def odometry_bytes() -> bytes:
    from rclpy.serialization import serialize_message

    message = Odometry()
    message.header.frame_id = "odom"
    return serialize_message(message)


def damaged_copy(live_run: Path, tmp_path: Path, how: str) -> Path:
    bag = tmp_path / how
    shutil.copytree(live_run / "bag", bag)
    storage = next(bag.glob("*.mcap"))
    data = storage.read_bytes()
    if how == "truncated":
        storage.write_bytes(data[: len(data) // 2])
    else:        # damaged records: the magic and the header (payloads carry no CRC here)
        storage.write_bytes(bytes(64) + data[64:])
    return bag


BAD_BAGS = {
    "missing": (lambda live, d: d / "nothing", "no such"),
    "truncated": (lambda live, d: damaged_copy(live, d, "truncated"), "truncated"),
    "corrupted": (lambda live, d: damaged_copy(live, d, "corrupted"), "corrupted"),
    "no smell topic": (lambda live, d: write_bag(d / "b", [
        ("/odom", "nav_msgs/msg/Odometry", {})], [("/odom", 1, odometry_bytes())]),
        "topic /smell not in the bag"),
    "wrong type": (lambda live, d: write_bag(d / "b", [
        ("/odom", "std_msgs/msg/String", {}), ("/smell", "sensor_msgs/msg/Image", {})]),
        "topic /odom is std_msgs/msg/String, expected nav_msgs/msg/Odometry"),
    "other distro": (lambda live, d: write_bag(d / "b", [
        ("/odom", "nav_msgs/msg/Odometry", {"typestore": None,
                                            "msgdef": "std_msgs/Header header\nfloat64 x\n",
                                            "rihs01": "RIHS01_" + "0" * 64}),
        ("/smell", "sensor_msgs/msg/Image", {})]),
        "topic /odom: nav_msgs/msg/Odometry in this bag differs from ROS 2 Kilted"),
}


@pytest.mark.parametrize("case", sorted(BAD_BAGS))
@pytest.mark.parametrize("command", ["replay", "eval", "export"])
def test_a_bad_bag_is_one_line_exit_2_and_nothing_written(live_run, tmp_path, capsys, case,
                                                         command):
    make_bag, message = BAD_BAGS[case]
    bag = make_bag(live_run, tmp_path)
    out = tmp_path / "out"
    argv = {"replay": ["replay", str(bag), "--out", str(out)],
            "eval": ["eval", str(bag), "--out", str(out)],
            "export": ["bag", "export", str(bag), "--tum", str(out)]}[command]
    if command in ("eval", "export") and case in ("no smell topic", "wrong type",
                                                  "other distro"):
        pytest.skip("eval and export do not read /smell; /odom cases are covered by replay")
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("treeworld: error:") and str(bag) in err[0]
    if case in ("missing", "no smell topic", "wrong type", "other distro"):
        assert message in err[0]
    else:                      # damage shows as unreadable or as a topic that cannot be read
        assert "not a readable rosbag2 bag" in err[0] or "cannot" in err[0]
    assert not out.exists()
