"""ROS 2 node ``spiral_controller``: one /cmd_vel per simulated step.

For the step a /clock message names (stamp / step_period) it publishes a TwistStamped stamped
with that step: holonomic, linear = displacement / step_period (map frame), angular.z =
heading change / step_period; diff_drive, linear.x = forward distance / step_period (base_link),
angular.z = turn / step_period. The traced and random paths need nothing but the clock. The forager
(``controller: forage``) also listens to what the agent knows: its position (/tem/pose, the
localizer's estimate, or /odom for dead reckoning), /smell and /treeworld/health. Its command
for step t uses the estimate of step t - 1 and the smell and health of step t; it waits up to
``forage_wait`` seconds for them, then decides without what is missing (counted); in real time
it does not wait for a step the clock has already passed. With slam
(``forage_recall``) it also asks, after each decision, where the steps its memory is anchored
to are now, and uses the answer (the map after step t - 1) before deciding step t. It never
reads the true pose.
"""
from __future__ import annotations

import math
import time

import numpy as np
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped, TwistStamped
from nav_msgs.msg import Odometry, Path
from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import Float32

from spiral_controller.config import ControllerConfig
from spiral_controller.paths import PathFileError, make_controller, senses
from treeworld_schema import interface as io
from treeworld_schema.ros import declare_section, run_node
from treeworld_schema.topics import START_YAW


class SpiralControllerNode(Node):
    def __init__(self):
        super().__init__("spiral_controller")
        self.config = declare_section(self, ControllerConfig)
        self.controller = make_controller(self.config)
        self.heading_angle = START_YAW   # turn rates are relative to it
        self.next_step = 0
        self.clock_step = -1                # the newest step /clock named
        self.waiting_since: float | None = None
        qos = io.step_qos()
        self.publisher = self.create_publisher(TwistStamped, io.CMD_VEL, qos)
        self.create_subscription(Clock, io.CLOCK, self.on_clock, qos)
        self.sensing = senses(self.controller)
        if self.sensing:
            self.poses: dict[int, np.ndarray] = {}     # step -> estimated (x, y)
            self.smells: dict[int, np.ndarray] = {}
            self.healths: dict[int, float] = {}
            self.health_count = 0
            self.stale_poses = 0
            if self.config.forage_pose_source == "pose":
                self.create_subscription(PoseWithCovarianceStamped, io.POSE, self.on_pose, qos)
            else:
                self.create_subscription(Odometry, io.ODOM, self.on_pose, qos)
            self.create_subscription(Image, io.SMELL, self.on_smell, qos)
            self.create_subscription(Float32, io.HEALTH, self.on_health, qos)
            if self.config.forage_recall:
                # where its anchor steps are now: asked after each decision, answered by slam
                self.recalled: dict[int, tuple[list[int], np.ndarray]] = {}
                self.anchor_publisher = self.create_publisher(Path, io.FORAGER_ANCHORS, qos)
                self.create_subscription(Path, io.RECALLED, self.on_recalled, qos)
            self.create_timer(0.05, self.command_when_ready,
                              clock=RosClock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f"controller {self.config.controller}")

    def command(self, step: int) -> TwistStamped:
        message = TwistStamped()
        message.header.stamp = io.step_stamp(step, self.config.step_period)
        if self.config.motion == "diff_drive":
            forward, turn = self.controller(step)
            message.header.frame_id = io.BASE_FRAME
            message.twist.linear.x = forward / self.config.step_period
            message.twist.angular.z = turn / self.config.step_period
            return message
        displacement, heading = self.controller(step)
        turn_rate = 0.0
        if heading[0] or heading[1]:
            angle = math.atan2(heading[1], heading[0])
            change = math.atan2(math.sin(angle - self.heading_angle),
                                math.cos(angle - self.heading_angle))
            turn_rate = change / self.config.step_period
            self.heading_angle += change
        message.header.frame_id = io.MAP_FRAME
        message.twist.linear.x = float(displacement[0]) / self.config.step_period
        message.twist.linear.y = float(displacement[1]) / self.config.step_period
        message.twist.angular.z = turn_rate
        return message

    def on_clock(self, message: Clock) -> None:
        self.clock_step = max(self.clock_step, io.step_of(message.clock, self.config.step_period))
        if self.sensing:
            self.command_when_ready()
            return
        # Controllers are asked in order, so a skipped clock still advances their state.
        while self.next_step <= self.clock_step:
            self.publisher.publish(self.command(self.next_step))
            self.next_step += 1

    # -- the forager: what the agent knows, by step -----------------------------------------
    def step_of(self, header) -> int:
        return io.step_of(header.stamp, self.config.step_period)

    def on_pose(self, message) -> None:
        position = message.pose.pose.position
        self.poses[self.step_of(message.header)] = np.array([position.x, position.y])
        self.command_when_ready()

    def on_smell(self, message: Image) -> None:
        self.smells[self.step_of(message.header)] = np.frombuffer(message.data, np.float32)
        self.command_when_ready()

    def on_recalled(self, message: Path) -> None:
        anchors = [self.step_of(pose.header) for pose in message.poses]
        positions = np.array([[p.pose.position.x, p.pose.position.y] for p in message.poses])
        self.recalled[self.step_of(message.header)] = (anchors, positions.reshape(-1, 2))
        self.command_when_ready()

    def ask_where_anchors_are(self, step: int) -> None:
        request = Path()
        request.header.stamp = io.step_stamp(step, self.config.step_period)
        request.header.frame_id = io.MAP_FRAME
        for anchor in self.controller.anchors():
            pose = PoseStamped()
            pose.header.stamp = io.step_stamp(anchor, self.config.step_period)
            request.poses.append(pose)
        self.anchor_publisher.publish(request)

    def on_health(self, message: Float32) -> None:
        # Float32 has no stamp: health arrives in step order, one per observed step (reliable,
        # transient-local: none is missed)
        self.healths[self.health_count] = float(message.data)
        self.health_count += 1
        self.command_when_ready()

    def command_when_ready(self) -> None:
        while self.next_step <= self.clock_step:
            step = self.next_step
            recall = self.config.forage_recall and step > 0
            complete = (step == 0 or step - 1 in self.poses) and step in self.smells and \
                step in self.healths and (not recall or step - 1 in self.recalled)
            # in real time the clock moves on whether or not this step was decided: a step it
            # has passed is decided at once, or the forager would fall further behind each time
            passed = step < self.clock_step
            if not complete:
                if not passed:
                    self.waiting_since = self.waiting_since or time.monotonic()
                    if time.monotonic() - self.waiting_since < self.config.forage_wait:
                        return
                missing = [name for name, absent in (
                    ("smell", step not in self.smells), ("health", step not in self.healths),
                    ("where its anchors are", recall and step - 1 not in self.recalled))
                           if absent]
                if missing:
                    after = "the clock has moved on" if passed else \
                        f"after {self.config.forage_wait} s"
                    self.get_logger().warning(
                        f"step {step}: deciding without {' and '.join(missing)}, {after} "
                        f"(counted: {self.controller.counters})", throttle_duration_sec=5.0)
            self.waiting_since = None
            if recall and step - 1 in self.recalled:
                self.controller.reanchor(*self.recalled.pop(step - 1))
            estimate = self.estimate_for(step)
            anchor = step - 1 if estimate is not None else None
            self.controller.observe(estimate, self.smells.pop(step, None),
                                    self.healths.pop(step, None), anchor)
            command = self.command(step)
            if self.config.forage_recall:
                self.ask_where_anchors_are(step)
            self.publisher.publish(command)
            self.next_step += 1
            for old in [s for s in self.poses if s < step - 1]:
                del self.poses[old]

    def estimate_for(self, step: int) -> np.ndarray | None:
        """The estimate of step - 1; a stale one (older) or none is None: the forager holds
        its last good estimate, moved by what it commanded since."""
        if step - 1 in self.poses:
            return self.poses[step - 1]
        if step > 0:
            self.stale_poses += 1
            self.get_logger().warning(f"no pose for step {step - 1}; holding the last good one "
                                      f"({self.stale_poses} so far)", throttle_duration_sec=5.0)
        return None


def main(args: list[str] | None = None) -> int:
    return run_node(SpiralControllerNode, "spiral_controller", (PathFileError,), args=args)


if __name__ == "__main__":
    raise SystemExit(main())
