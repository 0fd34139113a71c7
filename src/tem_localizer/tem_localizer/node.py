"""ROS 2 node ``tem_localizer``: odometry + smell in, belief grid and pose out.

Pairs /odom and /smell by stamp, feeds the displacement since the last used step and the smell
to the TEM core (on CUDA when present), and publishes /tem/belief (OccupancyGrid), /tem/pose,
/diagnostics and, at a bounded rate and size, /tem/path. After each step it handles it reports
the step's stamp on its progress topic, which the simulator's lockstep waits for. Bad messages
are warned about once per kind, counted in /diagnostics, and never reach the belief.
"""
from __future__ import annotations

import array
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped, TwistStamped
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from tem_localizer.config import LocalizerConfig
from tem_localizer.localizer import DeviceUnavailable, Localizer, LocalizerStep
from tem_localizer.stream import SensorStream, StreamEvent
from tem_localizer.trajectory import BoundedTrajectory
from treeworld_schema import diagnostics as keys
from treeworld_schema import interface as io
from treeworld_schema.ros import declare_section, run_node

UNKNOWN_VARIANCE = 1e6   # z, roll, pitch, yaw: not estimated
PATH_IDLE_SECONDS = 0.5  # input paused this long: publish the path's newest poses


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
        self.diagnostics_publisher = self.create_publisher(DiagnosticArray, io.DIAGNOSTICS, qos)
        self.create_subscription(Odometry, io.ODOM, self.on_odom, qos)
        self.create_subscription(Image, io.SMELL, self.on_smell, qos)
        if self.config.action_source == "cmd_vel":
            self.create_subscription(TwistStamped, io.CMD_VEL, self.on_command, qos)
        self.create_service(Trigger, "~/reset", self.on_reset)
        self.stream = SensorStream(self.localizer, self.config.action_source,
                                   self.config.odom_frame, self.config.smell_frame,
                                   max_input_age=round(self.config.max_input_age * 1e9),
                                   now=lambda: self.get_clock().now().nanoseconds)
        self.trajectory: BoundedTrajectory[PoseStamped] = BoundedTrajectory(
            self.config.path_max_poses)
        self.path_stamp = None              # stamp of the newest pose, None when published
        self.last_input = time.monotonic()
        self.create_timer(PATH_IDLE_SECONDS / 2, self.on_idle,
                          clock=RosClock(clock_type=ClockType.STEADY_TIME))
        # the simulator starts once this exists, so it comes last: the node is ready
        self.progress_publisher = self.create_publisher(Clock, io.LOCALIZER_PROGRESS,
                                                        io.latest_qos())
        self.get_logger().info(f"{self.config.method} on {self.localizer.device}, "
                               f"S={self.config.grid_size}, actions from "
                               f"/{self.config.action_source}")

    # -- input: messages to plain values for the stream -----------------------------------
    def on_odom(self, message: Odometry) -> None:
        started = time.perf_counter()
        position = message.pose.pose.position
        self.on_event(self.stream.odometry(io.stamp_nanoseconds(message.header.stamp),
                                           message.header.frame_id, [position.x, position.y]),
                      started)

    def on_smell(self, message: Image) -> None:
        started = time.perf_counter()
        self.on_event(self.stream.smell(io.stamp_nanoseconds(message.header.stamp),
                                        message.header.frame_id, message.encoding,
                                        message.height, np.frombuffer(message.data, np.float32)),
                      started)

    def on_command(self, message: TwistStamped) -> None:
        started = time.perf_counter()
        linear = message.twist.linear
        self.on_event(self.stream.command(io.stamp_nanoseconds(message.header.stamp),
                                          [linear.x, linear.y]), started)

    def on_event(self, event: StreamEvent | None, started: float) -> None:
        """Publish a step's estimate (unless it was late), diagnostics for every step handled,
        then the progress the simulator waits for."""
        if event is None:
            return
        self.last_input = time.monotonic()
        stamp = io.nanoseconds_stamp(event.stamp)
        localized = event.step.skipped is None and not event.late
        if localized:
            self.publish_estimate(stamp, event.step)
        self.publish_diagnostics(stamp, event.step if localized else None,
                                 time.perf_counter() - started)
        self.progress_publisher.publish(Clock(clock=stamp))

    # -- output --------------------------------------------------------------------------
    def publish_estimate(self, stamp, result: LocalizerStep) -> None:
        if result.belief is not None:
            grid = OccupancyGrid()
            grid.header.stamp, grid.header.frame_id = stamp, io.MAP_FRAME
            grid.info.map_load_time = stamp
            grid.info.resolution = float(self.grid.cell_size)
            grid.info.width = grid.info.height = self.grid.size
            grid.info.origin.position.x, grid.info.origin.position.y = self.grid.occupancy_origin
            grid.info.origin.orientation.w = 1.0
            data = self.grid.to_occupancy(result.belief[None])[0].cpu().numpy()
            grid.data = array.array("b", data.tobytes())
            self.belief_publisher.publish(grid)
        pose = PoseWithCovarianceStamped()
        pose.header.stamp, pose.header.frame_id = stamp, io.MAP_FRAME
        pose.pose.pose.position.x, pose.pose.pose.position.y = map(float, result.mean)
        pose.pose.pose.orientation.w = 1.0
        covariance = np.diag([0.0, 0.0, UNKNOWN_VARIANCE, UNKNOWN_VARIANCE, UNKNOWN_VARIANCE,
                              UNKNOWN_VARIANCE])
        covariance[:2, :2] = result.covariance
        pose.pose.covariance = covariance.reshape(-1).tolist()
        self.pose_publisher.publish(pose)
        self.trajectory.append(PoseStamped(header=pose.header, pose=pose.pose.pose))
        self.path_stamp = stamp
        if self.trajectory.appended % self.config.path_publish_every == 0:
            self.publish_path()

    def publish_path(self) -> None:
        path = Path(poses=self.trajectory.poses())
        path.header.frame_id = io.MAP_FRAME
        path.header.stamp = self.path_stamp
        self.path_publisher.publish(path)
        self.path_stamp = None

    def on_idle(self) -> None:
        """The end of a run (or a pause in the input): publish the path's newest poses."""
        if self.path_stamp is not None and \
                time.monotonic() - self.last_input > PATH_IDLE_SECONDS:
            self.publish_path()

    def publish_diagnostics(self, stamp, result: LocalizerStep | None, latency: float) -> None:
        counters = self.localizer.counters
        memory = self.localizer.model.memory if self.localizer.model is not None else None
        skipped_total = sum(counters.skipped.values())
        values = {
            keys.STEP_LATENCY_MS: f"{latency * 1000:.3f}",
            keys.STEPS: counters.steps,
            keys.MEMORY_ENTRIES: len(memory) if memory is not None else 0,
            keys.MEMORY_BYTES: memory.nbytes if memory is not None else 0,
            keys.LOSS: repr(result.loss) if result is not None else "nan",
            keys.SKIPPED_TOTAL: skipped_total,
            keys.LOST: counters.lost,
            keys.CLIPPED_ACTIONS: counters.clipped_actions,
            keys.LATE_FRAMES: counters.late_frames,
            keys.DEVICE: str(self.localizer.device),
        } | {keys.SKIPPED_PREFIX + kind: count for kind, count in counters.skipped.items()}
        problems = skipped_total + counters.lost + counters.late_frames
        self.diagnostics_publisher.publish(io.diagnostics(
            keys.LOCALIZER, values, stamp,
            f"{problems} skipped, lost or late steps" if problems else "localizing",
            DiagnosticStatus.WARN if problems else DiagnosticStatus.OK,
            hardware_id=str(self.localizer.device)))

    def on_reset(self, request, response):
        self.localizer.reset()
        self.stream.reset()
        self.trajectory.clear()
        self.path_stamp = None
        response.success, response.message = True, "belief and memory reset"
        return response


def main(args: list[str] | None = None) -> int:
    return run_node(TemLocalizerNode, "tem_localizer", (DeviceUnavailable,), args=args)


if __name__ == "__main__":
    raise SystemExit(main())
