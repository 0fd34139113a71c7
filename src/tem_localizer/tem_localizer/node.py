"""ROS 2 node ``tem_localizer``: odometry + smell in, belief grid and pose out.

Pairs /odom and /smell by stamp, feeds the displacement since the last used step and the smell
to the TEM core (on CUDA when present), and publishes /tem/belief (OccupancyGrid), /tem/pose,
/tem/path and /diagnostics. Bad messages are warned about once per kind, counted in
/diagnostics, and never reach the belief.
"""
from __future__ import annotations

import array
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped, TwistStamped
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from tem_localizer.config import LocalizerConfig
from tem_localizer.localizer import DeviceUnavailable, Localizer, LocalizerStep
from tem_localizer.stream import SensorStream, StreamEvent
from treeworld_schema import interface as io
from treeworld_schema.ros import declare_section, run_node

UNKNOWN_VARIANCE = 1e6   # z, roll, pitch, yaw: not estimated
MAX_PATH_POSES = 10_000


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
                                   self.config.odom_frame, self.config.smell_frame)
        self.path = Path()
        self.path.header.frame_id = io.MAP_FRAME
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
        """Publish a step's estimate, and diagnostics for steps and rejections alike."""
        if event is None:
            return
        used = event.step.skipped is None
        if used:
            self.publish_estimate(io.nanoseconds_stamp(event.stamp), event.step)
        self.publish_diagnostics(event.step if used else None, time.perf_counter() - started)

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
        self.path.poses.append(PoseStamped(header=pose.header, pose=pose.pose.pose))
        if len(self.path.poses) > MAX_PATH_POSES:
            del self.path.poses[0]
        self.path.header.stamp = stamp
        self.path_publisher.publish(self.path)

    def publish_diagnostics(self, result: LocalizerStep | None, latency: float) -> None:
        counters = self.localizer.counters
        memory = self.localizer.model.memory if self.localizer.model is not None else None
        values = {
            "step_latency_ms": f"{latency * 1000:.3f}",
            "steps": counters.steps,
            "memory_entries": len(memory) if memory is not None else 0,
            "memory_bytes": memory.nbytes if memory is not None else 0,
            "loss": repr(result.loss) if result is not None else "nan",
            "skipped_total": sum(counters.skipped.values()),
            "lost": counters.lost,
            "clipped_actions": counters.clipped_actions,
            "device": str(self.localizer.device),
        } | {f"skipped_{kind}": count for kind, count in counters.skipped.items()}
        problems = sum(counters.skipped.values()) + counters.lost
        status = DiagnosticStatus(
            name="tem_localizer", hardware_id=str(self.localizer.device),
            level=DiagnosticStatus.WARN if problems else DiagnosticStatus.OK,
            message=f"{problems} skipped or lost steps" if problems else "localizing",
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array_message = DiagnosticArray(status=[status])
        array_message.header.stamp = self.path.header.stamp
        self.diagnostics_publisher.publish(array_message)

    def on_reset(self, request, response):
        self.localizer.reset()
        self.stream.reset()
        self.path.poses = []
        response.success, response.message = True, "belief and memory reset"
        return response


def main(args: list[str] | None = None) -> int:
    return run_node(TemLocalizerNode, "tem_localizer", (DeviceUnavailable,), args=args)


if __name__ == "__main__":
    raise SystemExit(main())
