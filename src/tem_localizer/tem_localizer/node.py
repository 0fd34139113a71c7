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
        self.pending: dict[int, dict] = {}       # stamp (ns) -> {"odom": ..., "smell": ...}
        self.commands: dict[int, TwistStamped] = {}   # stamp (ns) -> command from that step
        self.path = Path()
        self.path.header.frame_id = io.MAP_FRAME
        self.restart_reference()
        self.get_logger().info(f"{self.config.method} on {self.localizer.device}, "
                               f"S={self.config.grid_size}, actions from "
                               f"/{self.config.action_source}")

    def restart_reference(self) -> None:
        self.last_stamp = -1                     # ns of the last used step
        self.last_position: np.ndarray | None = None

    # -- input ---------------------------------------------------------------------------
    def accept(self, kind: str, header, expected_frame: str) -> int | None:
        """The stamp (ns) of a message worth pairing, or None (rejected and counted)."""
        stamp = io.stamp_nanoseconds(header.stamp)
        if header.frame_id != expected_frame:
            self.reject("unknown_frame", f"{kind} in frame '{header.frame_id}', expected "
                        f"'{expected_frame}'")
        elif stamp <= self.last_stamp:
            self.reject("stale_stamp", f"{kind} stamped {stamp} ns, not after the last used "
                        f"step at {self.last_stamp} ns")
        elif kind in self.pending.get(stamp, {}):
            self.reject("repeated_stamp", f"a second {kind} stamped {stamp} ns")
        else:
            return stamp
        return None

    def on_odom(self, message: Odometry) -> None:
        stamp = self.accept("odom", message.header, self.config.odom_frame)
        if stamp is not None:
            self.pending.setdefault(stamp, {})["odom"] = message
            self.try_step(stamp)

    def on_smell(self, message: Image) -> None:
        stamp = self.accept("smell", message.header, self.config.smell_frame)
        if stamp is None:
            return
        if message.encoding != io.SMELL_ENCODING or message.height != 1:
            self.reject("bad_encoding", f"smell image is {message.encoding} "
                        f"{message.height}x{message.width}, expected {io.SMELL_ENCODING} 1xD")
            return
        self.pending.setdefault(stamp, {})["smell"] = message
        self.try_step(stamp)

    def on_command(self, message: TwistStamped) -> None:
        self.commands[io.stamp_nanoseconds(message.header.stamp)] = message
        if self.pending:
            self.try_step(min(self.pending))

    def reject(self, kind: str, message: str) -> None:
        self.localizer.reject(kind, message)
        self.publish_diagnostics(None, 0.0)

    # -- one step ------------------------------------------------------------------------
    def action(self, stamp: int, odom: Odometry | None) -> tuple[np.ndarray, np.ndarray | None]:
        """(displacement since the last used step, the odometry position to remember)."""
        if self.config.action_source == "cmd_vel":
            if self.last_stamp < 0:
                return np.zeros(2), None
            linear = self.commands[self.last_stamp].twist.linear
            return np.array([linear.x, linear.y]) * (stamp - self.last_stamp) * 1e-9, None
        position = np.array([odom.pose.pose.position.x, odom.pose.pose.position.y])
        # the first step (and the first after a reset) defines the belief's origin
        reference = self.last_position if self.last_position is not None else position
        return position - reference, position

    def ready(self, entry: dict) -> bool:
        """A step needs its smell and its odometry, or (action_source cmd_vel) the command
        stamped with the previous step, which moved the agent since then."""
        if "smell" not in entry:
            return False
        if self.config.action_source == "odom":
            return "odom" in entry
        return self.last_stamp < 0 or self.last_stamp in self.commands

    def try_step(self, stamp: int) -> None:
        if not self.ready(self.pending[stamp]):
            return
        entry = self.pending[stamp]
        for older in [s for s in self.pending if s < stamp]:
            del self.pending[older]              # never completed: its partner was rejected
        del self.pending[stamp]
        started = time.perf_counter()
        action, position = self.action(stamp, entry.get("odom"))
        smell = np.frombuffer(entry["smell"].data, dtype=np.float32)
        result = self.localizer.step(action, smell)
        latency = time.perf_counter() - started
        # A skipped step keeps the old odometry reference, so no displacement is lost. A
        # commanded velocity is only good for its own interval: that step is used up either way.
        if result.skipped is None or self.config.action_source == "cmd_vel":
            self.last_stamp = stamp
            self.commands = {s: c for s, c in self.commands.items() if s >= stamp}
            if position is not None:
                self.last_position = position
        if result.skipped is None:
            self.publish_estimate(entry["smell"].header.stamp, result)
        self.publish_diagnostics(result, latency)

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
        stamped = PoseStamped(header=pose.header, pose=pose.pose.pose)
        self.path.poses = (self.path.poses + [stamped])[-MAX_PATH_POSES:]
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
        self.restart_reference()
        self.pending.clear()
        self.commands.clear()
        self.path.poses = []
        response.success, response.message = True, "belief and memory reset"
        return response


def main(args: list[str] | None = None) -> int:
    return run_node(TemLocalizerNode, "tem_localizer", (DeviceUnavailable,), args=args)


if __name__ == "__main__":
    raise SystemExit(main())
