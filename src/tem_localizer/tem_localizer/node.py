"""ROS 2 node ``tem_localizer``: odometry + smell (or camera) in, belief grid and pose out.

Pairs /odom and /smell (with ``observation: camera``, /camera/image_raw or its compressed form)
by stamp, feeds the displacement since the last used step and the observation to the localizer
(on CUDA when present), and publishes /tem/belief (OccupancyGrid), /tem/pose, map -> odom on
/tf (where tf2_msgs is installed), /diagnostics and, at a bounded rate and size, /tem/path;
with method slam /tem/path is the corrected trajectory (re-read from the map after a loop
closure) and /tem/graph shows keyframes and closures. After each step it handles it reports
the step's stamp on its progress topic, which the simulator's lockstep waits for.
Bad messages are warned about once per kind, counted in /diagnostics, and never reach the
belief.
"""
from __future__ import annotations

import array
import time
from typing import Callable

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped, TwistStamped
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

from tem_localizer.camera import CompressedFrame, RawImage
from tem_localizer.config import DeviceUnavailable, LocalizerConfig
from tem_localizer.localizer import Localizer, LocalizerStep
from tem_localizer.map_file import MapFileError
from tem_localizer.place_map import GrowingArray
from tem_localizer.stream import SensorStream, StreamEvent
from tem_localizer.trajectory import NO_PLACE, BoundedTrajectory, TrajectoryRows
from treeworld_schema import diagnostics as keys
from treeworld_schema import interface as io
from treeworld_schema import serialized
from treeworld_schema.frames import map_to_odom, quaternion_of, quaternions_of
from treeworld_schema.ros import FrameBroadcaster, declare_section, run_node

UNKNOWN_VARIANCE = 1e6   # z, roll, pitch, yaw: not estimated
PATH_IDLE_SECONDS = 0.5  # input paused this long: publish the path's newest poses
SHOWN_CLOSURES = 500     # /tem/graph draws the newest this many loop closures


def graph_markers() -> MarkerArray:
    """/tem/graph without its points: keyframes along the path (points) and the newest
    loop closures (lines)."""
    keyframes = Marker(ns="keyframes", id=0, type=Marker.POINTS, action=Marker.ADD)
    keyframes.scale.x = keyframes.scale.y = 3.0
    keyframes.color.r, keyframes.color.g, keyframes.color.b, keyframes.color.a = \
        0.2, 0.6, 1.0, 1.0
    closures = Marker(ns="loop_closures", id=1, type=Marker.LINE_LIST, action=Marker.ADD)
    closures.scale.x = 0.8
    closures.color.r, closures.color.g, closures.color.b, closures.color.a = 1.0, 0.3, 0.8, 0.8
    for marker in (keyframes, closures):
        marker.header.frame_id = io.MAP_FRAME
        marker.pose.orientation.w = 1.0
    return MarkerArray(markers=[keyframes, closures])


class TemLocalizerNode(Node):
    def __init__(self):
        super().__init__("tem_localizer")
        self.config = declare_section(self, LocalizerConfig)
        self.localizer = Localizer(self.config)
        self.grid = self.localizer.grid
        qos = io.step_qos()
        self.belief_publisher = self.create_publisher(OccupancyGrid, io.BELIEF, qos)
        self.pose_publisher = self.create_publisher(PoseWithCovarianceStamped, io.POSE, qos)
        self.path_publisher = self.create_publisher(Path, io.PATH, io.latest_qos())
        self.graph_publisher = self.create_publisher(MarkerArray, io.GRAPH, io.latest_qos()) \
            if self.localizer.slam is not None else None
        self.graph_markers = graph_markers()
        self.diagnostics_publisher = self.create_publisher(DiagnosticArray, io.DIAGNOSTICS, qos)
        self.frames = FrameBroadcaster(self)
        self.create_subscription(Odometry, io.ODOM, self.hold(self.on_odom), qos)
        if self.config.observation == "smell":
            self.create_subscription(Image, io.SMELL, self.hold(self.on_smell), qos)
        elif self.config.camera_transport == "raw":
            self.create_subscription(Image, io.CAMERA, self.hold(self.on_camera), qos)
        else:
            self.create_subscription(CompressedImage, io.CAMERA_COMPRESSED,
                                     self.hold(self.on_camera), qos)
        if self.config.action_source == "cmd_vel":
            self.create_subscription(TwistStamped, io.CMD_VEL, self.on_command, qos)
        self.recall = Recall(self, qos) if self.config.answer_recalls else None
        self.create_service(Trigger, "~/reset", self.on_reset)
        if self.localizer.slam is not None:
            self.create_service(Trigger, "~/save_map", self.on_save_map)
            self.create_service(Trigger, "~/load_map", self.on_load_map)
            if self.config.start_in_map:
                self.localizer.load_map(self.config.map_file)   # a bad file stops start-up
        self.stream = SensorStream(self.localizer, self.config.action_source,
                                   self.config.odom_frame, self.config.smell_frame,
                                   max_input_age=round(self.config.max_input_age * 1e9),
                                   now=lambda: self.get_clock().now().nanoseconds,
                                   max_odometry_jump=self.config.max_odometry_jump,
                                   camera_frame=self.config.camera_frame)
        # with slam, a pose's position moves with its place in the map
        self.trajectory = BoundedTrajectory(self.config.path_max_poses)
        self.path_stamp = None              # stamp of the newest pose, None when published
        self.corrected_since_published = False
        self.closures: list[tuple[int, int]] = []     # (old place, new place), the newest
        self.map_errors = 0
        self.last_input = time.monotonic()
        self.create_timer(PATH_IDLE_SECONDS / 2, self.on_idle,
                          clock=RosClock(clock_type=ClockType.STEADY_TIME))
        # the simulator starts once this exists, so it comes last: the node is ready
        self.progress_publisher = self.create_publisher(Clock, io.LOCALIZER_PROGRESS,
                                                        io.latest_qos())
        self.get_logger().info(f"{self.config.method} on {self.localizer.device}, "
                               f"S={self.config.grid_size}, actions from "
                               f"/{self.config.action_source}")

    def hold(self, callback):
        """``callback``, or, answering a forager's recalls, ``callback`` once the step may be
        handled (see Recall)."""
        if not self.config.answer_recalls:
            return callback
        return lambda message: self.recall.when_ready(
            io.stamp_nanoseconds(message.header.stamp), lambda: callback(message))

    # -- input: messages to plain values for the stream -----------------------------------
    def on_odom(self, message: Odometry) -> None:
        started = time.perf_counter()
        position, q = message.pose.pose.position, message.pose.pose.orientation
        self.on_event(self.stream.odometry(io.stamp_nanoseconds(message.header.stamp),
                                           message.header.frame_id, [position.x, position.y],
                                           (q.x, q.y, q.z, q.w)), started)

    def on_smell(self, message: Image) -> None:
        started = time.perf_counter()
        self.on_event(self.stream.smell(io.stamp_nanoseconds(message.header.stamp),
                                        message.header.frame_id, RawImage.of(message)),
                      started)

    def on_camera(self, message: Image | CompressedImage) -> None:
        started = time.perf_counter()
        frame = RawImage.of(message) if isinstance(message, Image) else \
            CompressedFrame.of(message)
        self.on_event(self.stream.camera(io.stamp_nanoseconds(message.header.stamp),
                                         message.header.frame_id, frame), started)

    def on_command(self, message: TwistStamped) -> None:
        started = time.perf_counter()
        linear = message.twist.linear
        self.on_event(self.stream.command(io.stamp_nanoseconds(message.header.stamp),
                                          [linear.x, linear.y]), started)

    def on_event(self, events: list[StreamEvent], started: float) -> None:
        """For each step a message completed: publish its estimate (unless it was late),
        diagnostics for every step handled, then the progress the simulator waits for."""
        for event in events:
            if event.restarted:             # the localizer has started over: so does the rest
                self.forget_run()
            self.on_step(event, started)

    def on_step(self, event: StreamEvent, started: float) -> None:
        self.last_input = time.monotonic()
        stamp = io.nanoseconds_stamp(event.stamp)
        localized = event.step.skipped is None and not event.late
        if event.step.retracted:         # a wrong fix: what was mapped on it is gone
            self.forget_places_from(self.localizer.slam.session_start)
        if self.recall is not None:
            self.recall.handled(event.stamp, event.step.place if localized else None)
        if localized:
            # the localizer's heading is odometry's, turned by the fitted heading correction
            # (0 unless heading_window_steps is set)
            heading = None if event.odometry_pose is None else \
                event.odometry_pose[2] + self.localizer.heading_correction
            self.publish_estimate(stamp, event.step, heading)
            if heading is not None:
                self.frames.send(stamp, io.MAP_FRAME, self.config.odom_frame,
                                 map_to_odom(np.append(event.step.mean, heading),
                                             event.odometry_pose))
        self.publish_diagnostics(stamp, event.step if localized else None,
                                 time.perf_counter() - started)
        self.progress_publisher.publish(Clock(clock=stamp))

    # -- output --------------------------------------------------------------------------
    def publish_estimate(self, stamp, result: LocalizerStep, heading: float | None) -> None:
        """The belief grid and the pose; the pose faces ``heading`` (radians in the map
        frame) when odometry gives one, its yaw variance stays unknown."""
        if result.belief is not None:
            grid = OccupancyGrid()
            grid.header.stamp, grid.header.frame_id = stamp, io.MAP_FRAME
            grid.info.map_load_time = stamp
            grid.info.resolution = float(self.grid.cell_size)
            grid.info.width = grid.info.height = self.grid.size
            grid.info.origin.position.x, grid.info.origin.position.y = result.origin
            grid.info.origin.orientation.w = 1.0
            data = self.grid.to_occupancy(result.belief[None])[0].cpu().numpy()
            grid.data = array.array("b", data.tobytes())
            self.belief_publisher.publish(grid)
        pose = PoseWithCovarianceStamped()
        pose.header.stamp, pose.header.frame_id = stamp, io.MAP_FRAME
        pose.pose.pose.position.x, pose.pose.pose.position.y = map(float, result.mean)
        orientation = pose.pose.pose.orientation
        orientation.x, orientation.y, orientation.z, orientation.w = \
            quaternion_of(0.0 if heading is None else heading)
        covariance = np.diag([0.0, 0.0, UNKNOWN_VARIANCE, UNKNOWN_VARIANCE, UNKNOWN_VARIANCE,
                              UNKNOWN_VARIANCE])
        covariance[:2, :2] = result.covariance
        pose.pose.covariance = covariance.reshape(-1).tolist()
        self.pose_publisher.publish(pose)
        self.trajectory.append(io.stamp_nanoseconds(stamp), result.place, result.mean,
                               0.0 if heading is None else heading)
        self.path_stamp = stamp
        if result.corrected:
            self.corrected_since_published = True
            closure = self.localizer.slam.last_closure_places
            self.closures = (self.closures + [closure])[-SHOWN_CLOSURES:]
        if self.trajectory.appended % self.config.path_publish_every == 0:
            self.publish_path()

    def publish_path(self) -> None:
        """/tem/path and, with slam, /tem/graph: serialized from arrays (see
        treeworld_schema.serialized), as rclpy would take milliseconds for their objects."""
        kept = self.trajectory.rows()
        if self.corrected_since_published:
            self.correct(kept)
        self.path_publisher.publish(serialized.path(
            io.stamp_nanoseconds(self.path_stamp), io.MAP_FRAME, kept.stamps, kept.positions,
            quaternions_of(kept.yaws)))
        if self.graph_publisher is not None:
            for marker in self.graph_markers.markers:
                marker.header.stamp = self.path_stamp
            closure_ends = self.localizer.corrected_positions(
                [place for pair in self.closures for place in pair])
            self.graph_publisher.publish(serialized.marker_array(
                self.graph_markers, [kept.positions, closure_ends]))
        self.path_stamp = None

    def correct(self, kept: TrajectoryRows) -> None:
        """Move the path's poses to where the map now has their places."""
        placed = kept.places != NO_PLACE
        if placed.any():
            kept.positions[placed] = self.localizer.corrected_positions(kept.places[placed])
        self.corrected_since_published = False

    def on_idle(self) -> None:
        """The end of a run (or a pause in the input): publish the path's newest poses."""
        if self.path_stamp is not None and \
                time.monotonic() - self.last_input > PATH_IDLE_SECONDS:
            self.publish_path()

    def publish_diagnostics(self, stamp, result: LocalizerStep | None, latency: float) -> None:
        counters = self.localizer.counters
        entries, stored = self.localizer.memory_size()
        skipped_total = sum(counters.skipped.values())
        values = {
            keys.STEP_LATENCY_MS: f"{latency * 1000:.3f}",
            keys.STEPS: counters.steps,
            keys.MEMORY_ENTRIES: entries,
            keys.MEMORY_BYTES: stored,
            keys.LOSS: repr(result.loss) if result is not None else "nan",
            keys.SKIPPED_TOTAL: skipped_total,
            keys.LOST: counters.lost,
            keys.CLIPPED_ACTIONS: counters.clipped_actions,
            keys.LATE_FRAMES: counters.late_frames,
            keys.ODOMETRY_RESETS: counters.odometry_resets,
            keys.TIME_RESTARTS: counters.time_restarts,
            keys.DEVICE: str(self.localizer.device),
        } | {keys.SKIPPED_PREFIX + kind: count for kind, count in counters.skipped.items()}
        if self.localizer.slam is not None:
            values |= slam_values(self.localizer.slam) | {keys.MAP_ERRORS: self.map_errors}
        if self.localizer.started_in_a_loaded_map:
            found = self.localizer.relocalized_after
            values |= {keys.RELOCALIZED_AFTER_STEPS: "" if found is None else found,
                       keys.RELOCALIZATION_UNEXPLAINED: self.localizer.relocalization_unexplained,
                       keys.RELOCALIZATION_RETRACTED: self.localizer.relocalization_retracted}
        problems = skipped_total + counters.lost + counters.late_frames
        state = "searching the loaded map" if self.localizer.relocalizing else \
            "localizing, the fix in the loaded map on trial" if self.localizer.fix_on_trial else \
            "localizing"
        self.diagnostics_publisher.publish(io.diagnostics(
            keys.LOCALIZER, values, stamp,
            f"{problems} skipped, lost or late steps" if problems else state,
            DiagnosticStatus.WARN if problems else DiagnosticStatus.OK,
            hardware_id=str(self.localizer.device)))

    def destroy_node(self) -> None:
        if self.config.save_map_on_exit and self.localizer.slam is not None:
            self.save_map_as_it_stops()
        super().destroy_node()

    def save_map_as_it_stops(self) -> None:
        if not len(self.localizer.slam.places):
            # stopped before its first step: an empty map would only overwrite a real one
            self.get_logger().warning(f"no step was localized: {self.config.map_file} is "
                                      "left as it was")
            return
        try:
            self.localizer.save_map(self.config.map_file)
            self.get_logger().info(f"saved the map to {self.config.map_file}")
        except OSError as error:
            self.get_logger().error(f"could not save the map on exit: {error}")

    def on_save_map(self, request, response):
        return map_service(self.localizer.save_map, "saved the map to", self, response)

    def on_load_map(self, request, response):
        response = map_service(self.localizer.load_map, "loaded the map from", self, response)
        if response.success:       # the steps so far named places of the map it replaced
            self.forget_places_from(0)
        return response

    def on_reset(self, request, response):
        self.localizer.reset()
        self.stream.reset()
        self.forget_run()
        response.success, response.message = True, "belief and memory reset"
        return response

    def forget_places_from(self, first: int) -> None:
        """The map's places from ``first`` on are gone (a wrong fix taken back, or the map
        replaced): the path's poses on them keep where they were estimated, the closures to
        them go, and the forager's anchors with them."""
        places = self.trajectory.rows().places
        places[places >= first] = NO_PLACE
        self.closures = [pair for pair in self.closures if max(pair) < first]
        if self.recall is not None:
            self.recall.forget()

    def forget_run(self) -> None:
        """The localizer started over: its steps, path and closures so far are gone."""
        if self.recall is not None:
            self.recall.forget()
        self.trajectory.clear()
        self.path_stamp = None
        self.closures = []


class Recall:
    """Answers the forager: where the steps its memory is anchored to are in the map now.

    The answer to the request stamped t must be the map after step t, as in-process, however
    the messages interleave: so a request is answered once step t is handled, and a step
    after t is held until the request of step t has come (the forager sends one every step).
    """

    def __init__(self, node: TemLocalizerNode, qos):
        self.node = node
        self.publisher = node.create_publisher(Path, io.RECALLED, qos)
        node.create_subscription(Path, io.FORAGER_ANCHORS, self.on_request, qos)
        self.forget()      # stamps of the localized steps (increasing) and their places
        self.requests: dict[int, Path] = {}          # stamp -> request not yet answered
        self.requested = -1                          # the newest request's stamp
        self.last_handled = -1                       # the newest step's stamp
        self.held: list[tuple[int, Callable[[], None]]] = []   # (stamp, deliver): later steps

    def forget(self) -> None:
        """The map was reset or replaced: its places are not the ones the steps named."""
        self.stamps, self.places = GrowingArray((), np.int64), GrowingArray((), np.int64)

    def handled(self, stamp: int, place: int | None) -> None:
        self.last_handled = max(self.last_handled, stamp)
        if place is not None:
            self.stamps.append(stamp)
            self.places.append(place)
        for request in sorted(s for s in self.requests if s <= self.last_handled):
            self.answer(self.requests.pop(request))

    def when_ready(self, stamp: int, deliver) -> None:
        if stamp <= self.last_handled or self.requested >= self.last_handled:
            deliver()
        else:
            self.held.append((stamp, deliver))

    def on_request(self, request: Path) -> None:
        stamp = io.stamp_nanoseconds(request.header.stamp)
        self.requested = max(self.requested, stamp)
        if stamp <= self.last_handled:
            self.answer(request)
        else:
            self.requests[stamp] = request
        released, self.held = self.held, []
        for held_stamp, deliver in released:
            self.when_ready(held_stamp, deliver)

    def answer(self, request: Path) -> None:
        """The request's anchors that are localized steps, at their places' positions now."""
        wanted = np.array([io.stamp_nanoseconds(p.header.stamp) for p in request.poses],
                          dtype=np.int64)
        stamps = self.stamps.view()
        index = np.searchsorted(stamps, wanted)
        known = (index < len(stamps)) & (stamps[np.minimum(index, len(stamps) - 1)] == wanted) \
            if len(stamps) else np.zeros(len(wanted), bool)
        answer = Path()
        answer.header = request.header
        if known.any():
            positions = self.node.localizer.corrected_positions(self.places.view()[index[known]])
            for pose, (x, y) in zip((p for p, k in zip(request.poses, known) if k), positions):
                answered = PoseStamped(header=pose.header)
                answered.pose.position.x, answered.pose.position.y = float(x), float(y)
                answered.pose.orientation.w = 1.0
                answer.poses.append(answered)
        self.publisher.publish(answer)


def map_service(action, what: str, node: TemLocalizerNode, response):
    """Run ``action(map_file)``; a failure is the service's answer, logged, never a crash."""
    if not node.config.map_file:
        response.success, response.message = False, "no map_file parameter set"
    else:
        try:
            action(node.config.map_file)
            response.success, response.message = True, f"{what} {node.config.map_file}"
        except (MapFileError, OSError) as error:
            node.map_errors += 1
            response.success, response.message = False, str(error)
            node.get_logger().warning(f"{what} failed, the current map is kept: {error}")
    return response


def slam_values(slam) -> dict:
    """The slam method's figures for /diagnostics."""
    counters = slam.counters
    return {keys.CLOSURES_ACCEPTED: sum(counters.accepted.values()),
            keys.CLOSURES_REJECTED: sum(counters.rejected.values()),
            keys.OPTIMIZER_MS: f"{counters.optimizer_seconds * 1000:.3f}",
            keys.OPTIMIZER_FAILURES: counters.optimizer_failures,
            keys.CLOSURES_OUTWEIGHED: counters.outweighed,
            keys.CLOSURE_SEARCHES: counters.searched,
            keys.KEYFRAMES: slam.places.keyframes, keys.MAP_BYTES: slam.places.nbytes} | {
        f"{keys.CLOSURE_PREFIX}accepted_{kind}": n for kind, n in counters.accepted.items()} | {
        f"{keys.CLOSURE_PREFIX}rejected_{reason}": n for reason, n in counters.rejected.items()}


def main(args: list[str] | None = None) -> int:
    return run_node(TemLocalizerNode, "tem_localizer", (DeviceUnavailable, MapFileError),
                    args=args)


if __name__ == "__main__":
    raise SystemExit(main())
