"""Each node on its own, fed bad messages and bad parameters over real DDS."""
from __future__ import annotations

import array
import io as io_bytes
import math
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseWithCovarianceStamped, TwistStamped
from nav_msgs.msg import Odometry
from PIL import Image as PillowImage
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image

from ros_support import private_domain, ros_context, throttled, wait_for
from treeworld_bringup.launcher import NodeProcesses, ros_environment
from treeworld_schema import diagnostics as keys
from treeworld_schema import interface as io
from treeworld_schema.frames import quaternion_of

SMELL_DIM = 8
PERIOD = 0.1


class Driver(Node):
    """Plays the simulator's part: publishes crafted /odom, /smell and /cmd_vel."""

    def __init__(self, context):
        super().__init__("test_driver", context=context)
        qos = io.step_qos()
        self.odom = self.create_publisher(Odometry, io.ODOM, qos)
        self.smell = self.create_publisher(Image, io.SMELL, qos)
        self.command = self.create_publisher(TwistStamped, io.CMD_VEL, qos)
        self.poses, self.diagnostics = [], []
        self.create_subscription(PoseWithCovarianceStamped, io.POSE, self.poses.append, qos)
        self.create_subscription(DiagnosticArray, io.DIAGNOSTICS, self.diagnostics.append, qos)

    def send(self, step, x=None, smell=None, frame="odom", encoding=io.SMELL_ENCODING,
             smell_frame="map", quaternion=(0.0, 0.0, 0.0, 1.0), truncate=0):
        stamp = io.step_stamp(step, PERIOD)
        if x is not None:
            odom = Odometry()
            odom.header.stamp, odom.header.frame_id = stamp, frame
            odom.pose.pose.position.x = x
            q = odom.pose.pose.orientation
            q.x, q.y, q.z, q.w = quaternion
            self.odom.publish(odom)
        if smell is not None:
            smell = np.asarray(smell, np.float32)
            image = Image(height=1, width=smell.size, encoding=encoding, step=4 * smell.size)
            image.header.stamp, image.header.frame_id = stamp, smell_frame
            image.data = array.array("B", smell.tobytes()[:len(smell.tobytes()) - truncate])
            self.smell.publish(image)

    def send_command(self, step, vx):
        message = TwistStamped()
        message.header.stamp, message.header.frame_id = io.step_stamp(step, PERIOD), "map"
        message.twist.linear.x = vx
        self.command.publish(message)

    def counters(self) -> dict[str, str]:
        return {kv.key: kv.value for kv in self.diagnostics[-1].status[0].values} \
            if self.diagnostics else {}


def localizer_parameters(tmp_path, **overrides):
    parameters = {"grid_size": 21, "extent": 200.0, "sensory_embedding_dim": SMELL_DIM,
                  "use_memory_to_localize": False, "device": "cpu"} | overrides
    path = tmp_path / "parameters.yaml"
    path.write_text(yaml.safe_dump({"tem_localizer": {"ros__parameters": parameters}}))
    return path


GOOD = np.ones(SMELL_DIM)


def test_localizer_counts_bad_messages_and_keeps_its_belief(tmp_path):
    with ros_context(private_domain()) as (context, add_node):
        driver = Driver(context)
        add_node(driver)
        nodes = NodeProcesses(["tem_localizer"], localizer_parameters(tmp_path), tmp_path)
        try:
            driver.send(0, x=0.0, smell=GOOD)
            wait_for(lambda: len(driver.poses) == 1, 60, "the first pose", nodes.check_alive)
            driver.send(1, x=1.0, smell=np.ones(SMELL_DIM + 1))           # wrong length
            driver.send(2, x=2.0, smell=np.ones(SMELL_DIM + 1))           # again: no new warning
            driver.send(3, x=3.0, smell=np.full(SMELL_DIM, np.nan))       # NaN smell
            driver.send(4, x=math.inf, smell=GOOD)                        # inf odometry
            driver.send(5, x=5.0, smell=GOOD, frame="base_link",
                        smell_frame="camera")                             # unknown frames
            driver.send(0, x=0.0, smell=GOOD)                             # in the past
            driver.send(6, smell=GOOD, encoding="8UC1")                   # not a smell
            driver.send(6, x=6.0, quaternion=(0.0, 0.0, 0.5, 0.5))        # not unit length
            driver.send(6, smell=GOOD, truncate=3)                        # cut short
            driver.send(7, x=7.0, quaternion=quaternion_of(0.3))
            driver.send(7, x=7.0, quaternion=quaternion_of(0.3))         # repeated
            wait_for(lambda: driver.counters().get("skipped_repeated_stamp") == "1", 30,
                     "the repeated stamp counted", nodes.check_alive)
            driver.send(7, smell=GOOD)
            wait_for(lambda: driver.counters().get("steps") == "2", 60, "the good step",
                     nodes.check_alive)
            driver.send(7, smell=GOOD)                                    # late: stale
            wait_for(lambda: driver.counters().get("skipped_total") == "13", 30,
                     "every bad message counted", nodes.check_alive)
        finally:
            nodes.stop()
    counters = driver.counters()
    expected = {"wrong_smell_length": "2", "nonfinite_smell": "1", "nonfinite_action": "1",
                "unknown_frame": "2", "stale_stamp": "3", "bad_encoding": "1",
                "repeated_stamp": "1", "bad_quaternion": "1", "bad_image_size": "1"}
    assert {k: counters.get(f"skipped_{k}") for k in expected} == expected
    assert len(driver.poses) == 2
    # no displacement was lost: the step-7 estimate is 7 units from the start
    assert driver.poses[1].pose.pose.position.x == pytest.approx(7.0, abs=0.5)
    # the pose faces where odometry does
    orientation = driver.poses[1].pose.pose.orientation
    assert (orientation.x, orientation.y, orientation.z, orientation.w) == \
        pytest.approx(quaternion_of(0.3))
    assert all(np.isfinite(p.pose.covariance).all() for p in driver.poses)
    log = (tmp_path / "tem_localizer.log").read_text()
    assert log.count("counted as 'wrong_smell_length'") == 1      # one warning per kind
    assert log.count("tf2_msgs is not installed") == 1            # said once, at start-up
    assert driver.diagnostics[-1].status[0].level == DiagnosticStatus.WARN


def test_a_camera_localizer_counts_undecodable_frames_and_keeps_its_belief(tmp_path):
    """Compressed camera frames: a corrupt JPEG and an unsupported format are counted and
    warned about; the node goes on and no displacement is lost."""
    png = io_bytes.BytesIO()
    PillowImage.fromarray(np.full((16, 128, 3), 120, np.uint8)).save(png, format="PNG")
    frames = {0: ("png", png.getvalue()), 1: ("jpeg", b"\xff\xd8\xff not a jpeg"),
              2: ("theora", b"\x00" * 64), 3: ("png", png.getvalue())}
    parameters = localizer_parameters(tmp_path, observation="camera",
                                      camera_transport="compressed")
    with ros_context(private_domain()) as (context, add_node):
        driver = Driver(context)
        camera = driver.create_publisher(CompressedImage, io.CAMERA_COMPRESSED, io.step_qos())
        add_node(driver)
        nodes = NodeProcesses(["tem_localizer"], parameters, tmp_path)
        try:
            for step, (codec, data) in frames.items():
                driver.send(step, x=float(step))
                frame = CompressedImage(format=codec, data=array.array("B", data))
                frame.header.stamp, frame.header.frame_id = io.step_stamp(step, PERIOD), \
                    io.BASE_FRAME
                camera.publish(frame)
            wait_for(lambda: len(driver.poses) == 2, 60, "the two good frames' poses",
                     nodes.check_alive)
            wait_for(lambda: driver.counters().get("skipped_total") == "4", 30,
                     "every bad frame counted", nodes.check_alive)
        finally:
            nodes.stop()
    counters = driver.counters()
    assert {k: counters.get(f"skipped_{k}") for k in ("corrupt_image", "bad_encoding",
                                                      "unpaired")} == \
        {"corrupt_image": "1", "bad_encoding": "1", "unpaired": "2"}
    assert driver.poses[1].pose.pose.position.x == pytest.approx(3.0, abs=0.5)
    log = (tmp_path / "tem_localizer.log").read_text()
    assert log.count("counted as 'corrupt_image'") == 1


def test_localizer_from_commanded_velocity_rejects_a_nan_twist(tmp_path):
    parameters = localizer_parameters(tmp_path, action_source="cmd_vel")
    with ros_context(private_domain()) as (context, add_node):
        driver = Driver(context)
        add_node(driver)
        nodes = NodeProcesses(["tem_localizer"], parameters, tmp_path)
        try:
            driver.send(0, smell=GOOD)
            wait_for(lambda: len(driver.poses) == 1, 60, "the first pose", nodes.check_alive)
            driver.send(1, smell=GOOD)              # waits for the command of step 0
            driver.send_command(0, 50.0)            # 50 units/s for 0.1 s: 5 units
            wait_for(lambda: len(driver.poses) == 2, 30, "the second pose", nodes.check_alive)
            driver.send_command(1, math.nan)
            driver.send(2, smell=GOOD)
            wait_for(lambda: driver.counters().get("skipped_nonfinite_action") == "1", 30,
                     "the NaN twist counted", nodes.check_alive)
        finally:
            nodes.stop()
    assert driver.poses[1].pose.pose.position.x == pytest.approx(5.0, abs=0.5)
    assert len(driver.poses) == 2


def test_slam_node_saves_its_map_refuses_a_damaged_one_and_draws_its_path_and_graph(
        tmp_path):
    from nav_msgs.msg import Path
    from std_srvs.srv import Trigger
    from visualization_msgs.msg import MarkerArray

    map_file = tmp_path / "map.npz"
    parameters = localizer_parameters(tmp_path, method="slam", map_file=str(map_file))
    graphs, paths = [], []
    with ros_context(private_domain()) as (context, add_node):
        driver = Driver(context)
        driver.create_subscription(MarkerArray, io.GRAPH, graphs.append, io.latest_qos())
        driver.create_subscription(Path, io.PATH, paths.append, io.latest_qos())
        save = driver.create_client(Trigger, "/tem_localizer/save_map")
        load = driver.create_client(Trigger, "/tem_localizer/load_map")
        add_node(driver)
        nodes = NodeProcesses(["tem_localizer"], parameters, tmp_path)

        def call(client) -> Trigger.Response:
            wait_for(client.service_is_ready, 30, "the service", nodes.check_alive)
            future = client.call_async(Trigger.Request())
            wait_for(future.done, 30, "the answer", nodes.check_alive)
            return future.result()

        try:
            for step in range(12):   # turning: the path's orientations are the poses'
                driver.send(step, x=2.0 * step, smell=GOOD * (1 + step),
                            quaternion=(0.0, 0.0, math.sin(0.05 * step), math.cos(0.05 * step)))
            wait_for(lambda: len(driver.poses) == 12 and graphs, 60, "poses and a graph",
                     nodes.check_alive)
            saved = call(save)
            assert saved.success and map_file.stat().st_size > 0
            map_file.write_bytes(b"not a map at all")
            loaded = call(load)
            driver.send(12, x=24.0, smell=GOOD)
            wait_for(lambda: len(driver.poses) == 13, 30, "a pose after the refusal",
                     nodes.check_alive)
            # sent every 10 steps, and once the input pauses; the path and the graph come
            # from different writers
            wait_for(lambda: paths and len(paths[-1].poses) == 13 and
                     len(next(m for m in graphs[-1].markers if m.ns == "keyframes").points)
                     == 13, 30, "the whole path and graph", nodes.check_alive)
            # a pose and its report come from different writers: wait for the report
            wait_for(lambda: driver.counters().get("map_errors") == "1", 30,
                     "the refusal counted", nodes.check_alive)
            refused, path, graph, poses = driver.counters(), paths[-1], graphs[-1], \
                list(driver.poses)
            assert call(save).success and call(load).success
            driver.send(13, x=26.0, smell=GOOD)
            wait_for(lambda: "relocalized_after_steps" in driver.counters(), 30,
                     "a report from the loaded map", nodes.check_alive)
            searching = driver.diagnostics[-1].status[0]
        finally:
            nodes.stop()
    # a good map is searched for where the agent is, and /diagnostics says so
    assert "relocalized_after_steps" not in refused
    assert searching.message == "searching the loaded map"
    assert driver.counters()["relocalized_after_steps"] == ""
    assert driver.counters()["relocalization_unexplained"] == "0"
    # the path (written from arrays) holds every pose as /tem/pose sent it
    assert [(p.header.stamp, p.header.frame_id, p.pose.position, p.pose.orientation)
            for p in path.poses] == \
        [(p.header.stamp, p.header.frame_id, p.pose.pose.position, p.pose.pose.orientation)
         for p in poses]
    assert path.header.stamp == poses[-1].header.stamp
    keyframes = next(m for m in graph.markers if m.ns == "keyframes")
    assert [(p.x, p.y) for p in keyframes.points] == \
        [(p.pose.pose.position.x, p.pose.pose.position.y) for p in poses]
    assert not loaded.success and str(map_file) in loaded.message
    assert "not a readable map file" in loaded.message
    assert refused["map_errors"] == "1"
    assert poses[-1].pose.pose.position.x == pytest.approx(24.0, abs=0.5)   # kept going
    assert {m.ns for m in graph.markers} == {"keyframes", "loop_closures"}


@pytest.fixture(scope="module")
def row_map(tmp_path_factory):
    """A map of a row of landmarks 2,000 units long, mapped there and back 25 units apart,
    4 units a step from x = -50: its file, the smell along it, the localizer's settings
    (made once: a thousand slam steps)."""
    from tem_localizer import Localizer, LocalizerConfig

    row = np.column_stack([np.arange(0.0, 2001.0, 100.0), np.tile([-35.0, 35.0], 11)[:21]])
    kinds = np.random.default_rng(11).standard_normal((len(row), 64)) * 5.6
    spread = 2 * 100.0**2 / (2 * math.log(10))          # a landmark weighs 0.1 at 100 units

    def smell(position):
        return np.exp(-np.sum((row - position) ** 2, axis=1) / spread) @ kinds

    defaults = LocalizerConfig()
    settings = {"method": "slam", "sensory_embedding_dim": 64, "odometry_sigma": 0.2,
                "grid_size": defaults.grid_size, "extent": defaults.extent}
    mapper = Localizer(LocalizerConfig(**settings, device="cpu"))
    map_file = tmp_path_factory.mktemp("row") / "map.npz"
    mapped = [(x, 0.0) for x in np.arange(-50.0, 2051.0, 4.0)] + \
        [(x, 25.0) for x in np.arange(2050.0, -51.0, -4.0)]
    for step, position in enumerate(mapped):
        mapper.step(np.subtract(position, mapped[step - 1]) if step else np.zeros(2),
                    smell(np.array(position)))
    mapper.save_map(map_file)
    return map_file, smell, settings


def test_a_slam_node_takes_back_a_fix_no_loop_closure_confirms(tmp_path, row_map):
    """A robot finds itself in a loaded map (a row of landmarks 2,000 units long), then is
    carried 800 units on unseen: no loop closes to the map and its smells do not fit it, so
    the fix is taken back and the search starts over. Through the node, pose for pose as
    in-process, with the retraction in /diagnostics and the path as the poses were sent."""
    from nav_msgs.msg import Path

    from tem_localizer import Localizer, LocalizerConfig

    map_file, smell, settings = row_map
    config = LocalizerConfig(**settings, device="cpu")
    steps, carried_from = 140, 15
    truth = [np.array([300.0 + 4 * step + (800.0 if step >= carried_from else 0.0), 0.0])
             for step in range(steps)]
    robot = Localizer(config)
    robot.load_map(map_file)
    expected, searching = [], []
    for step in range(steps):
        expected.append(robot.step(np.array([4.0 if step else 0.0, 0.0]),
                                   smell(truth[step])).mean)
        searching.append(robot.relocalizing)
    # found before it was carried off, then taken back, then found again
    assert not all(searching[:carried_from]) and robot.relocalization_retracted == 1
    assert not robot.relocalizing and robot.fix_trial is None
    parameters = localizer_parameters(tmp_path, **settings, map_file=str(map_file),
                                      start_in_map=True)
    paths = []
    with ros_context(private_domain()) as (context, add_node):
        driver = Driver(context)
        driver.create_subscription(Path, io.PATH, paths.append, io.latest_qos())
        add_node(driver)
        nodes = NodeProcesses(["tem_localizer"], parameters, tmp_path)
        try:
            for step in range(steps):        # fewer than the topics' history holds
                driver.send(step, x=4.0 * step, smell=smell(truth[step]))
            wait_for(lambda: len(driver.poses) == steps, 60, "every pose", nodes.check_alive)
            wait_for(lambda: paths and len(paths[-1].poses) == steps and
                     driver.counters().get("relocalization_retracted") == "1", 30,
                     "the whole path and the retraction reported", nodes.check_alive)
        finally:
            nodes.stop()
    sent = np.array([(p.pose.pose.position.x, p.pose.pose.position.y) for p in driver.poses])
    np.testing.assert_allclose(sent, expected, atol=1e-6)
    np.testing.assert_allclose([(p.pose.position.x, p.pose.position.y) for p in paths[-1].poses],
                               sent, atol=1e-9)
    assert (tmp_path / "tem_localizer.log").read_text().count("that fix was wrong") == 1
    # /diagnostics said so: searching, the fix on trial, searching again, and on
    states = [state for state in (a.status[0].message for a in driver.diagnostics)
              if not state.endswith("late steps")]
    changes = [state for i, state in enumerate(states) if i == 0 or state != states[i - 1]]
    assert changes[:4] == ["searching the loaded map",
                           "localizing, the fix in the loaded map on trial",
                           "searching the loaded map",
                           "localizing, the fix in the loaded map on trial"], changes
    assert changes[4:] == ["localizing"]     # the map explained the smells there: it stands


def test_a_map_loaded_mid_run_leaves_the_path_before_it_where_it_was(tmp_path, row_map):
    """~/load_map after a few steps of mapping from scratch: those steps named places of the
    map it replaced. The robot finds itself in the loaded map (a row of landmarks) and loops
    close there, so /tem/path is corrected from the map: the poses from before the load stay
    where they were estimated (they once took the positions of the loaded map's places with
    their indices)."""
    from nav_msgs.msg import Path
    from std_srvs.srv import Trigger

    map_file, smell, settings = row_map
    parameters = localizer_parameters(tmp_path, **settings, map_file=str(map_file))
    before, steps, paths = 12, 90, []
    with ros_context(private_domain()) as (context, add_node):
        driver = Driver(context)
        driver.create_subscription(Path, io.PATH, paths.append, io.latest_qos())
        load = driver.create_client(Trigger, "/tem_localizer/load_map")
        add_node(driver)
        nodes = NodeProcesses(["tem_localizer"], parameters, tmp_path)
        try:
            for step in range(steps):
                if step == before:
                    wait_for(lambda: len(driver.poses) == before, 60, "the poses before",
                             nodes.check_alive)
                    wait_for(load.service_is_ready, 30, "the service", nodes.check_alive)
                    answer = load.call_async(Trigger.Request())
                    wait_for(answer.done, 30, "the answer", nodes.check_alive)
                    assert answer.result().success
                # on the row, in step with the map's own steps from the load on
                where = (0.0, 300.0) if step < before else (302.0 + 4 * (step - before), 0.0)
                # 2 units a step before the load, so the poses are not where the loaded
                # map's first places happen to be
                odometry = 2.0 * min(step, before) + 4.0 * max(step - before, 0)
                driver.send(step, x=odometry, smell=smell(np.array(where)))
            wait_for(lambda: len(driver.poses) == steps, 60, "every pose", nodes.check_alive)
            wait_for(lambda: paths and len(paths[-1].poses) == steps, 30, "the whole path",
                     nodes.check_alive)
        finally:
            nodes.stop()
    assert int(driver.counters()[keys.CLOSURES_ACCEPTED]) > 0        # the path was corrected
    assert driver.counters()[keys.RELOCALIZED_AFTER_STEPS] != ""
    np.testing.assert_allclose(
        [(p.pose.position.x, p.pose.position.y) for p in paths[-1].poses[:before]],
        [(p.pose.pose.position.x, p.pose.pose.position.y) for p in driver.poses[:before]])


def test_a_node_stopped_before_its_first_step_leaves_the_map_file_as_it_was(tmp_path):
    """save_map_on_exit with nothing localized: an empty map would overwrite a real one."""
    from std_srvs.srv import Trigger

    map_file = tmp_path / "map.npz"
    map_file.write_bytes(b"a map from an earlier run")
    parameters = localizer_parameters(tmp_path, method="slam", map_file=str(map_file),
                                      save_map_on_exit=True)
    with ros_context(private_domain()) as (context, add_node):
        driver = Driver(context)
        reset = driver.create_client(Trigger, "/tem_localizer/reset")
        add_node(driver)
        nodes = NodeProcesses(["tem_localizer"], parameters, tmp_path)
        try:
            # an answer, not only the service: the node is built and spinning (a Ctrl-C
            # while it is still being built stops it before there is a node to save from)
            wait_for(reset.service_is_ready, 30, "the node", nodes.check_alive)
            answer = reset.call_async(Trigger.Request())
            wait_for(answer.done, 30, "the node to answer", nodes.check_alive)
        finally:
            nodes.stop()
    assert nodes.processes["tem_localizer"].returncode == 0
    assert map_file.read_bytes() == b"a map from an earlier run"
    assert f"no step was localized: {map_file} is left as it was" in \
        (tmp_path / "tem_localizer.log").read_text()


def test_reset_service_restarts_the_belief_at_the_next_odometry(tmp_path):
    from std_srvs.srv import Trigger

    with ros_context(private_domain()) as (context, add_node):
        driver = Driver(context)
        client = driver.create_client(Trigger, "/tem_localizer/reset")
        add_node(driver)
        nodes = NodeProcesses(["tem_localizer"], localizer_parameters(tmp_path), tmp_path)
        try:
            for step in range(3):
                driver.send(step, x=5.0 * step, smell=GOOD)
            wait_for(lambda: len(driver.poses) == 3, 60, "three poses", nodes.check_alive)
            assert driver.poses[-1].pose.pose.position.x == pytest.approx(10.0, abs=0.5)
            wait_for(client.service_is_ready, 30, "the reset service", nodes.check_alive)
            future = client.call_async(Trigger.Request())
            wait_for(future.done, 30, "the reset answer", nodes.check_alive)
            assert future.result().success
            driver.send(3, x=15.0, smell=GOOD)
            driver.send(4, x=20.0, smell=GOOD)
            wait_for(lambda: len(driver.poses) == 5, 30, "poses after the reset",
                     nodes.check_alive)
        finally:
            nodes.stop()
    # step 3's odometry is the new origin: step 4 is 5 units from it, not 20
    assert driver.poses[3].pose.pose.position.x == pytest.approx(0.0, abs=0.5)
    assert driver.poses[4].pose.pose.position.x == pytest.approx(5.0, abs=0.5)


def test_a_recording_played_twice_starts_the_localizer_over(tmp_path):
    """The same steps again, stamped from the start (a bag played twice, or looped): every
    step of the second pass was once skipped as stale; now the node starts over with them and
    localizes them as it did the first time."""
    smells = np.random.default_rng(0).normal(size=(30, SMELL_DIM)) + 3.0
    with ros_context(private_domain()) as (context, add_node):
        driver = Driver(context)
        add_node(driver)
        nodes = NodeProcesses(["tem_localizer"], localizer_parameters(tmp_path), tmp_path)
        try:
            for again in (0, 1):
                for step, smell in enumerate(smells):
                    driver.send(step, x=5.0 * step + 100.0 * again, smell=smell)
                wait_for(lambda: len(driver.poses) == 30 * (again + 1), 60,
                         f"pass {again + 1}'s poses", nodes.check_alive)
            wait_for(lambda: driver.counters().get(keys.STEPS) == "60", 30,
                     "the last step's report", nodes.check_alive)
        finally:
            nodes.stop()
    first, second = ([pose.pose.pose.position.x for pose in driver.poses[half:half + 30]]
                     for half in (0, 30))
    assert second == pytest.approx(first) and first[-1] == pytest.approx(145.0, abs=0.5)
    counters = driver.counters()
    assert counters[keys.TIME_RESTARTS] == "1" and counters[keys.SKIPPED_TOTAL] == "0"
    assert (tmp_path / "tem_localizer.log").read_text().count("time went back 2.9 s") == 1


def test_real_time_mode_steps_at_rate_hz_without_commands(tmp_path):
    parameters = tmp_path / "parameters.yaml"
    # no reader to wait for; and the simulator stays up when done, so that this listener,
    # however late it joins (two tests at a time slow discovery), gets the run from its history
    parameters.write_text(yaml.safe_dump({"treeworld_sim": {"ros__parameters": {
        "lockstep": False, "rate_hz": 50.0, "steps": 40, "sensory_embedding_dim": SMELL_DIM,
        "progress_topics": [], "exit_when_done": False}}}))
    truth = []
    with ros_context(private_domain()) as (context, add_node):
        listener = Node("test_truth_listener", context=context)
        listener.create_subscription(Odometry, io.GROUND_TRUTH, truth.append, io.step_qos())
        add_node(listener)
        nodes = NodeProcesses(["treeworld_sim"], parameters, tmp_path)
        try:
            wait_for(lambda: len(truth) == 41, 60, "40 steps and the final pose",
                     nodes.check_alive)
        finally:
            nodes.stop()
    stamps = [io.stamp_nanoseconds(m.header.stamp) for m in truth]
    assert stamps == sorted(stamps) and len(set(stamps)) == 41
    # no controller: the agent rests where it started
    assert all(m.pose.pose.position.x == 0.0 and m.pose.pose.position.y == 0.0 for m in truth)



def test_in_real_time_the_simulator_ends_without_a_reader_that_never_gets_the_last_step(
        tmp_path):
    """In real time a reader's input of the last steps may come late or be lost, so it never
    reports the last step: the simulator once waited for it for ever. It waits while the
    reader reports progress, then ends anyway, saying who was behind."""
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text(yaml.safe_dump({"treeworld_sim": {"ros__parameters": {
        "lockstep": False, "rate_hz": 50.0, "steps": 40, "sensory_embedding_dim": SMELL_DIM,
        "progress_topics": ["/test_reader/progress"], "exit_when_done": True}}}))
    with ros_context(private_domain()) as (context, add_node):
        reader = Node("test_reader", context=context)
        progress = reader.create_publisher(Clock, "/test_reader/progress", io.latest_qos())
        add_node(reader)
        nodes = NodeProcesses(["treeworld_sim"], parameters, tmp_path)
        simulator = nodes.processes["treeworld_sim"]
        try:
            progress.publish(Clock(clock=io.step_stamp(5, PERIOD)))     # and never again
            simulator.wait(timeout=60)
        finally:
            nodes.stop()
    log = (tmp_path / "treeworld_sim.log").read_text()
    assert simulator.returncode == 0, log
    assert "run complete after 40 steps" in log
    assert "real time: readers never got the last steps: {'/test_reader/progress': 5}" in log


def test_in_real_time_the_forager_keeps_up_with_the_clock_without_its_inputs(tmp_path):
    """No localizer runs, so the forager's pose never comes. It used to wait forage_wait (2 s)
    for each step in turn, falling further behind a clock that does not wait, and never reach
    the end of the run; a step the clock has passed is now decided at once."""
    steps = 100
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text(yaml.safe_dump({
        "treeworld_sim": {"ros__parameters": {
            "lockstep": False, "rate_hz": 50.0, "steps": steps, "progress_topics": [],
            "exit_when_done": False}},
        "spiral_controller": {"ros__parameters": {"controller": "forage"}}}))
    commanded = []
    with ros_context(private_domain()) as (context, add_node):
        listener = Node("test_command_listener", context=context)
        listener.create_subscription(
            TwistStamped, io.CMD_VEL,
            lambda m: commanded.append(io.step_of(m.header.stamp, PERIOD)), io.step_qos())
        add_node(listener)
        nodes = NodeProcesses(["treeworld_sim", "spiral_controller"], parameters, tmp_path)
        try:
            # the run takes 2 s; waiting 2 s a step, the forager would be at step 10 or so
            wait_for(lambda: max(commanded, default=-1) >= steps - 1, 30,
                     f"commands up to step {steps - 1}", nodes.check_alive,
                     lambda: f"newest command {max(commanded, default=None)}")
        finally:
            nodes.stop()
    assert commanded[:steps] == list(range(steps))          # each step once, in order


def test_the_simulator_waits_5_s_in_all_for_a_subscriber_that_died(tmp_path):
    """A subscriber killed outright stays in the graph until DDS notices, and never
    acknowledges: at exit the simulator waited 5 s for it on each topic in turn (17 s here).
    The recorder is killed mid-run; the simulator stops waiting for its progress once it has
    gone quiet, then for its acknowledgements after 5 s in all."""
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text(yaml.safe_dump({"treeworld_sim": {"ros__parameters": {
        "lockstep": False, "rate_hz": 50.0, "steps": 150,
        "progress_topics": [io.RECORDER_PROGRESS], "exit_when_done": True}}}))
    truth = []
    with ros_context(private_domain()) as (context, add_node):
        listener = Node("test_truth_listener", context=context)
        listener.create_subscription(Odometry, io.GROUND_TRUTH, truth.append, io.step_qos())
        add_node(listener)
        nodes = NodeProcesses(["treeworld_sim"], parameters, tmp_path, bag=tmp_path / "bag")
        simulator = nodes.processes["treeworld_sim"]
        try:
            wait_for(lambda: len(truth) >= 20, 60, "20 steps", nodes.check_alive)
            nodes.processes["bag_recorder"].kill()
            simulator.wait(timeout=60)
        finally:
            nodes.stop()
    log = (tmp_path / "treeworld_sim.log").read_text()
    assert simulator.returncode == 0, log

    def logged_at(text: str) -> float:
        line = next(line for line in log.splitlines() if text in line)
        return float(line.split("] [")[1])

    gave_up = logged_at("not every subscriber acknowledged /clock, /smell, /odom")
    assert 4.5 < gave_up - logged_at("readers never got the last steps") < 7.0, log


def test_the_simulator_starts_only_once_the_recorder_has_matched_every_awaited_writer(
        tmp_path):
    """The recorder reported progress from its first /clock, so a simulator waiting for it
    started although the recorder had not yet met the localizer's writer; on a loaded machine
    it met it 200+ steps late and the first /tem/pose were gone from that writer's history.
    Here the recorder awaits a /tem/pose writer: the simulator must hold still until the test
    creates one, and the bag must then hold every step of it."""
    steps = 100
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text(yaml.safe_dump({"treeworld_sim": {"ros__parameters": {
        "lockstep": False, "rate_hz": 50.0, "steps": steps,
        "progress_topics": [io.RECORDER_PROGRESS], "exit_when_done": True}}}))
    truth = []
    with ros_context(private_domain()) as (context, add_node):
        writer = Node("test_pose_writer", context=context)
        writer.create_subscription(Odometry, io.GROUND_TRUTH, truth.append, io.step_qos())
        add_node(writer)
        nodes = NodeProcesses(["treeworld_sim"], parameters, tmp_path, bag=tmp_path / "bag",
                              awaited_writers={io.POSE: 1})
        simulator = nodes.processes["treeworld_sim"]
        recorder_log = tmp_path / "bag_recorder.log"
        try:
            wait_for(lambda: "waiting for writers: /tem/pose (0 of 1)" in
                     recorder_log.read_text(), 60, "the recorder to wait", nodes.check_alive)
            time.sleep(2.0)
            assert truth == [], "the simulator started before the recorder met /tem/pose"
            poses = writer.create_publisher(PoseWithCovarianceStamped, io.POSE, io.step_qos())
            wait_for(lambda: len(truth) > 0, 60, "the simulator to start", nodes.check_alive)
            for step in range(1, steps + 1):
                message = PoseWithCovarianceStamped()
                message.header.stamp, message.header.frame_id = io.step_stamp(step, 0.1), "map"
                poses.publish(message)
            simulator.wait(timeout=60)
        finally:
            nodes.stop()
    assert simulator.returncode == 0
    assert f"{io.POSE} {steps}" in recorder_log.read_text()


@pytest.mark.exclusive
def test_real_time_a_slow_localizer_drops_late_frames_visibly_and_keeps_the_motion(tmp_path):
    """Real time at 20 Hz (2 simulated seconds per second): for 2 s the localizer is stopped
    0.45 s (0.9 simulated seconds) at a time and let run 0.05 s between. Steps more than
    max_input_age (0.5 s) behind its clock are late frames: counted, their motion integrated;
    none is lost silently and the estimate is current again at the end."""
    steps = 160
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text(yaml.safe_dump({
        "treeworld_sim": {"ros__parameters": {"lockstep": False, "rate_hz": 20.0,
                                              "steps": steps, "exit_when_done": False}},
        "spiral_controller": {"ros__parameters": {"controller": "circle"}},
        "tem_localizer": {"ros__parameters": {"use_memory_to_localize": False,
                                              "device": "cpu", "max_input_age": 0.5}}}))
    poses, truth, reports = {}, {}, []
    with ros_context(private_domain()) as (context, add_node):
        listener = Node("test_listener", context=context)
        qos = io.step_qos()
        listener.create_subscription(
            PoseWithCovarianceStamped, io.POSE,
            lambda m: poses.__setitem__(io.step_of(m.header.stamp, PERIOD), m), qos)
        listener.create_subscription(
            Odometry, io.GROUND_TRUTH,
            lambda m: truth.__setitem__(io.step_of(m.header.stamp, PERIOD), m), qos)
        listener.create_subscription(DiagnosticArray, io.DIAGNOSTICS, reports.append, qos)
        add_node(listener)
        nodes = NodeProcesses(["treeworld_sim", "spiral_controller", "tem_localizer"],
                              parameters, tmp_path)
        try:
            def handled() -> dict[str, str]:
                values = [io.status_values(m, keys.LOCALIZER) for m in reports]
                return next((v for v in reversed(values) if v), {})

            wait_for(lambda: int(handled().get(keys.STEPS, 0))
                     + int(handled().get(keys.LATE_FRAMES, 0)) >= 30, 60, "30 steps handled",
                     nodes.check_alive)
            localizer = nodes.pids["tem_localizer"]
            with throttled(localizer, stop_for=0.45, run_for=0.05):
                time.sleep(2.0)

            wait_for(lambda: int(handled().get(keys.STEPS, 0))
                     + int(handled().get(keys.LATE_FRAMES, 0)) == steps, 60,
                     "every step handled", nodes.check_alive)
        finally:
            nodes.stop()
    counters = handled()
    assert int(counters[keys.LATE_FRAMES]) > 0
    assert int(counters[keys.STEPS]) == len(poses) < steps       # late frames have no pose
    assert int(counters[keys.SKIPPED_TOTAL]) == 0
    last = max(poses)
    estimate, actual = poses[last].pose.pose.position, truth[last].pose.pose.position
    assert math.hypot(estimate.x - actual.x, estimate.y - actual.y) < 10.0   # motion kept


def start_node(module: str, *parameters: str) -> subprocess.CompletedProcess:
    arguments = [a for p in parameters for a in ("-p", p)]
    return subprocess.run([sys.executable, "-m", module, "--ros-args", *arguments],
                          capture_output=True, text=True, timeout=60,
                          env=ros_environment() | {"ROS_DOMAIN_ID": private_domain()})


@pytest.mark.parametrize("module, parameter, message", [
    ("tem_localizer.node", "grid_size:=100", "tem_localizer.grid_size: must be odd, got 100"),
    ("tem_localizer.node", "extent:=-5.0", "tem_localizer.extent: must be > 0.0, got -5.0"),
    ("tem_localizer.node", "device:=tpu", "tem_localizer.device: 'tpu' is not one of"),
    ("treeworld_sim.node", "num_trees:=0", "treeworld_sim.num_trees: must be >= 1, got 0"),
    ("spiral_controller.node", "controller:=path",
     "spiral_controller.path_file: controller=path needs a path file"),
    ("spiral_controller.node", "path_file:=/nonexistent.tum",
     None),
])
def test_a_bad_parameter_stops_the_node_with_one_line(module, parameter, message):
    extra = ("controller:=path",) if parameter.startswith("path_file") else ()
    result = start_node(module, parameter, *extra)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert (message or "cannot read path file") in lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without CUDA")
def test_cuda_asked_for_but_absent_is_a_clear_error():
    result = start_node("tem_localizer.node", "device:=cuda")
    assert result.returncode == 2
    assert "device: cuda was asked for but no CUDA device is available" in result.stderr
