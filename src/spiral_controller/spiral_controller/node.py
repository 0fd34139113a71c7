"""ROS 2 node ``spiral_controller``: one /cmd_vel per simulated step, from the /clock alone.

For the step a /clock message names (stamp / step_period) it publishes a TwistStamped stamped
with that step: linear = displacement / step_period (map frame), angular.z = heading change /
step_period. It never reads the true pose.
"""
from __future__ import annotations

import math

from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from rosgraph_msgs.msg import Clock

from spiral_controller.config import ControllerConfig
from spiral_controller.paths import PathFileError, make_controller
from treeworld_schema import interface as io
from treeworld_schema.ros import declare_section, run_node

# The agent starts heading (1, 1) / sqrt(2) (docs/design.md §2); turn rates are relative to it.
START_HEADING_ANGLE = math.pi / 4


class SpiralControllerNode(Node):
    def __init__(self):
        super().__init__("spiral_controller")
        self.config = declare_section(self, ControllerConfig)
        self.controller = make_controller(self.config)
        self.heading_angle = START_HEADING_ANGLE
        self.next_step = 0
        qos = io.step_qos()
        self.publisher = self.create_publisher(TwistStamped, io.CMD_VEL, qos)
        self.create_subscription(Clock, io.CLOCK, self.on_clock, qos)
        self.get_logger().info(f"controller {self.config.controller}")

    def command(self, step: int) -> TwistStamped:
        displacement, heading = self.controller(step)
        turn_rate = 0.0
        if heading[0] or heading[1]:
            angle = math.atan2(heading[1], heading[0])
            change = math.atan2(math.sin(angle - self.heading_angle),
                                math.cos(angle - self.heading_angle))
            turn_rate = change / self.config.step_period
            self.heading_angle += change
        message = TwistStamped()
        message.header.stamp = io.step_stamp(step, self.config.step_period)
        message.header.frame_id = io.MAP_FRAME
        message.twist.linear.x = float(displacement[0]) / self.config.step_period
        message.twist.linear.y = float(displacement[1]) / self.config.step_period
        message.twist.angular.z = turn_rate
        return message

    def on_clock(self, message: Clock) -> None:
        step = io.step_of(message.clock, self.config.step_period)
        # Controllers are asked in order, so a skipped clock still advances their state.
        while self.next_step <= step:
            self.publisher.publish(self.command(self.next_step))
            self.next_step += 1


def main(args: list[str] | None = None) -> int:
    return run_node(SpiralControllerNode, "spiral_controller", (PathFileError,), args=args)


if __name__ == "__main__":
    raise SystemExit(main())
