"""ROS 2 node ``treeworld_sim``: owns the world, is the clock, publishes what the agent senses.

Per step t (stamp t * step_period): /clock, /smell, /odom (noisy, integrated), /ground_truth/odom,
/treeworld/health, with ``camera`` /camera/image_raw (and .../compressed), odom -> base_link on
/tf (where tf2_msgs is installed); then it moves the agent by the /cmd_vel stamped t (lockstep)
or by the latest command at rate_hz (real time), holonomic or as a differential drive
(``motion``).

Flow control: it starts once every reader named in ``progress_topics`` is up, and in lockstep it
publishes step t only when each of them has reported handling step t - max_lead_steps, so no
reader ever has more unread steps than its history holds. When the run is complete and every
reader has its last step, it exits (``exit_when_done``).
"""
from __future__ import annotations

import array
import io as bytes_io
import math
import time
from functools import partial

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry
from PIL import Image as PillowImage
from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.duration import Duration
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float32
from visualization_msgs.msg import Marker, MarkerArray

from treeworld_schema import diagnostics as keys
from treeworld_schema import interface as io
from treeworld_schema.frames import compose, quaternion_of
from treeworld_schema.ros import FrameBroadcaster, RunComplete, declare_section, run_node
from treeworld_sim.config import WorldConfig
from treeworld_sim.world import StepRecord, TreeWorld


def yaw(heading: np.ndarray) -> float:
    return math.atan2(heading[1], heading[0])


def smell_message(stamp, smell: np.ndarray) -> Image:
    """/smell: the (D,) smell as a one-row float32 image in the map frame."""
    message = Image(height=1, width=smell.size, encoding=io.SMELL_ENCODING, is_bigendian=0,
                    step=4 * smell.size)
    message.header.stamp, message.header.frame_id = stamp, io.MAP_FRAME
    message.data = array.array("B", smell.astype(np.float32).tobytes())
    return message


def odometry_message(stamp, frame: str, position: np.ndarray, heading_yaw: float,
                     velocity: np.ndarray, position_variance: float = 0.0,
                     velocity_variance: float = 0.0, yaw_variance: float = 0.0,
                     turn_rate_variance: float = 0.0) -> Odometry:
    """Pose in ``frame``; twist in base_link, as REP 105 has it (``velocity`` is in ``frame``
    and is turned into the body frame by ``heading_yaw``). Covariances: x and y as given (the
    error is isotropic), yaw and turn rate as given (0: exact); z, roll and pitch are exact
    in a planar world."""
    message = Odometry()
    message.header.stamp, message.header.frame_id = stamp, frame
    message.child_frame_id = io.BASE_FRAME
    message.pose.pose.position.x, message.pose.pose.position.y = map(float, position)
    orientation = message.pose.pose.orientation
    orientation.x, orientation.y, orientation.z, orientation.w = quaternion_of(heading_yaw)
    forward, left, _ = compose(np.array([0.0, 0.0, -heading_yaw]), np.append(velocity, 0.0))
    message.twist.twist.linear.x, message.twist.twist.linear.y = float(forward), float(left)
    message.pose.covariance[0] = message.pose.covariance[7] = float(position_variance)
    message.pose.covariance[35] = float(yaw_variance)
    message.twist.covariance[0] = message.twist.covariance[7] = float(velocity_variance)
    message.twist.covariance[35] = float(turn_rate_variance)
    return message


def tree_markers(world: TreeWorld, stamp) -> MarkerArray:
    """A cylinder per tree in the namespace of its kind (edible green, poisonous red) and a
    label per tree."""
    markers = MarkerArray()
    for index, (position, poisonous) in enumerate(zip(world.tree_positions,
                                                      world.tree_poisonous)):
        for kind in (Marker.CYLINDER, Marker.TEXT_VIEW_FACING):
            marker = Marker()
            marker.header.stamp, marker.header.frame_id = stamp, io.MAP_FRAME
            marker.ns = (io.POISONOUS_TREES if poisonous else io.EDIBLE_TREES) \
                if kind == Marker.CYLINDER else io.TREE_LABELS
            marker.id, marker.type, marker.action = index, kind, Marker.ADD
            marker.pose.position.x, marker.pose.position.y = map(float, position)
            marker.pose.orientation.w = 1.0
            marker.scale.x = marker.scale.y = marker.scale.z = 12.0
            marker.color.r, marker.color.g = (0.9, 0.1) if poisonous else (0.1, 0.8)
            marker.color.b, marker.color.a = 0.1, 1.0
            if kind == Marker.TEXT_VIEW_FACING:
                marker.pose.position.z = 15.0
                marker.text = f"{world.tree_names[index]} ({world.tree_types[index]})"
                marker.color.r = marker.color.g = marker.color.b = 1.0
            markers.markers.append(marker)
    return markers


BLOCKED_WARNING_SECONDS = 5.0
# Real time: a reader that has reported nothing new for this long after the last step will
# never have it (its input of the last steps came late or was lost), so it is not waited for.
READERS_QUIET_SECONDS = 3.0
ACK_SECONDS = 5.0


class TreeWorldSimNode(Node):
    def __init__(self):
        super().__init__("treeworld_sim")
        self.config = declare_section(self, WorldConfig)
        self.world = TreeWorld(self.config)
        self.period = self.config.step_period
        self.heading_angle = math.atan2(self.world.heading[1], self.world.heading[0])
        self.rejected_commands = 0
        qos = io.step_qos()
        self.clock_publisher = self.create_publisher(Clock, io.CLOCK, qos)
        self.smell_publisher = self.create_publisher(Image, io.SMELL, qos)
        self.odom_publisher = self.create_publisher(Odometry, io.ODOM, qos)
        self.truth_publisher = self.create_publisher(Odometry, io.GROUND_TRUTH, qos)
        self.health_publisher = self.create_publisher(Float32, io.HEALTH, qos)
        self.diagnostics_publisher = self.create_publisher(DiagnosticArray, io.DIAGNOSTICS, qos)
        self.camera_publisher = self.create_publisher(Image, io.CAMERA, qos) \
            if self.config.camera else None
        self.compressed_publisher = self.create_publisher(
            CompressedImage, io.CAMERA_COMPRESSED, qos) \
            if self.config.camera and self.config.camera_compressed else None
        self.frames = FrameBroadcaster(self)
        self.trees_publisher = self.create_publisher(MarkerArray, io.TREES, io.latest_qos())
        self.trees_publisher.publish(tree_markers(self.world, io.step_stamp(0, self.period)))
        self.create_subscription(TwistStamped, io.CMD_VEL, self.on_command, qos)
        self.commands: dict[int, TwistStamped] = {}     # lockstep: by the step they are for
        self.latest_command: TwistStamped | None = None  # real time
        # the newest step each required reader has handled
        self.handled = {topic: -1 for topic in self.config.progress_topics}
        self.last_reader_progress = time.monotonic()
        for topic in self.config.progress_topics:
            self.create_subscription(Clock, topic, partial(self.on_progress, topic),
                                     io.latest_qos())
        self.last_measured = np.zeros(2)      # the last move, as odometry measured it
        self.last_moved = np.zeros(2)         # ... and as it was
        self.started = self.finished = False
        self.blocked_since: float | None = None
        self.get_logger().info(
            f"{self.config.num_trees} trees, seed {self.config.seed}, {self.config.steps} steps, "
            f"{'lockstep' if self.config.lockstep else f'{self.config.rate_hz} Hz'}")
        # wall-clock timers: this node is the clock, so it must not wait on /clock itself
        wall = RosClock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(0.05, self.on_housekeeping, clock=wall)
        if not self.config.lockstep:
            self.create_timer(1.0 / self.config.rate_hz, self.on_timer, clock=wall)

    # -- inputs ----------------------------------------------------------------------------
    def on_command(self, message: TwistStamped) -> None:
        if self.finished:
            return
        if self.config.lockstep:
            step = io.step_of(message.header.stamp, self.period)
            if step >= self.world.step_index:
                self.commands[step] = message
                self.advance_while_allowed()
        else:
            self.latest_command = message

    def on_progress(self, topic: str, message: Clock) -> None:
        step = io.step_of(message.clock, self.period)
        if step > self.handled[topic]:
            self.handled[topic] = step
            self.last_reader_progress = time.monotonic()
        if self.finished:
            self.exit_if_done()
        else:
            self.advance_while_allowed()

    def on_timer(self) -> None:
        if self.started and not self.finished:
            self.advance(self.latest_command)

    def on_housekeeping(self) -> None:
        if not self.started:
            missing = [t for t in self.handled if self.count_publishers(t) == 0]
            if missing:
                self.get_logger().info(f"waiting for readers: {', '.join(missing)}", once=True)
                return
            self.started = True
            self.publish_observation()
        elif self.finished:
            self.exit_if_done()
        elif self.blocked_since is not None and \
                time.monotonic() - self.blocked_since > BLOCKED_WARNING_SECONDS:
            behind = {t: s for t, s in self.handled.items()
                      if self.world.step_index + 1 - s > self.config.max_lead_steps}
            self.get_logger().warning(
                f"holding step {self.world.step_index + 1} for {behind} "
                f"(max_lead_steps {self.config.max_lead_steps})", throttle_duration_sec=10.0)

    # -- stepping --------------------------------------------------------------------------
    def may_publish(self, step: int) -> bool:
        """Lockstep: no required reader would be more than max_lead_steps behind."""
        return all(step - handled <= self.config.max_lead_steps
                   for handled in self.handled.values())

    def advance_while_allowed(self) -> None:
        while self.started and not self.finished and self.world.step_index in self.commands:
            if not self.may_publish(self.world.step_index + 1):
                self.blocked_since = self.blocked_since or time.monotonic()
                return
            self.blocked_since = None
            self.advance(self.commands.pop(self.world.step_index))

    def publish_observation(self) -> StepRecord:
        record = self.world.observe()
        stamp = io.step_stamp(record.step, self.period)
        self.clock_publisher.publish(Clock(clock=stamp))
        self.smell_publisher.publish(smell_message(stamp, record.smell))
        config, world = self.config, self.world
        self.odom_publisher.publish(odometry_message(
            stamp, io.ODOM_FRAME, record.odometry_position, record.odometry_yaw,
            self.last_measured / self.period, world.odometry_variance,
            (config.odometry_noise / self.period) ** 2, world.odometry_yaw_variance,
            (config.heading_noise / self.period) ** 2 if config.motion == "diff_drive" else 0.0))
        self.truth_publisher.publish(odometry_message(
            stamp, io.MAP_FRAME, record.position, yaw(record.heading),
            self.last_moved / self.period))
        self.frames.send(stamp, io.ODOM_FRAME, io.BASE_FRAME,
                         np.append(record.odometry_position, record.odometry_yaw))
        self.health_publisher.publish(Float32(data=float(record.health)))
        if record.camera is not None:
            self.publish_camera(stamp, record.camera)
        return record

    def publish_camera(self, stamp, view: np.ndarray) -> None:
        height, width, _ = view.shape
        image = Image(height=height, width=width, encoding="rgb8", is_bigendian=0,
                      step=3 * width)
        image.header.stamp, image.header.frame_id = stamp, io.BASE_FRAME
        image.data = array.array("B", view.tobytes())
        self.camera_publisher.publish(image)
        if self.compressed_publisher is not None:
            jpeg = bytes_io.BytesIO()
            PillowImage.fromarray(view).save(jpeg, format="JPEG", quality=90)
            compressed = CompressedImage(format="rgb8; jpeg compressed rgb8")
            compressed.header = image.header
            compressed.data = array.array("B", jpeg.getvalue())
            self.compressed_publisher.publish(compressed)

    def advance(self, command: TwistStamped | None) -> None:
        """Move by ``command`` (rest when None or not finite), then sense the next step."""
        velocity, turn_rate = np.zeros(2), 0.0
        if command is not None:
            twist = command.twist
            values = np.array([twist.linear.x, twist.linear.y, twist.angular.z])
            if np.isfinite(values).all():
                velocity, turn_rate = values[:2], float(values[2])
            else:
                self.rejected_commands += 1
                self.get_logger().warning(
                    "ignoring a /cmd_vel with NaN or inf; resting this step "
                    f"({self.rejected_commands} so far)", throttle_duration_sec=5.0)
        before = self.world.position
        if self.config.motion == "diff_drive":
            self.last_measured = self.world.drive(velocity[0] * self.period,
                                                  turn_rate * self.period)
        else:
            self.heading_angle += turn_rate * self.period
            heading = np.array([math.cos(self.heading_angle), math.sin(self.heading_angle)])
            self.last_measured = self.world.move(velocity * self.period, heading)
        self.last_moved = self.world.position - before
        if self.world.step_index >= self.config.steps or not self.world.alive:
            self.finish()
            return
        self.publish_observation()

    def finish(self) -> None:
        """Publish where the agent ended (stamped one step after the last observation) and the
        run's totals on /diagnostics; then stop stepping."""
        self.finished = True
        world = self.world
        stamp = io.step_stamp(world.step_index, self.period)
        self.clock_publisher.publish(Clock(clock=stamp))
        self.truth_publisher.publish(odometry_message(
            stamp, io.MAP_FRAME, world.position, yaw(world.heading), self.last_moved / self.period))
        totals = {keys.STEPS: world.step_index, keys.TOTAL_MOVEMENT: repr(world.total_movement),
                  keys.HEALTH: repr(world.health), keys.FRUIT_EATEN: world.fruit_eaten,
                  keys.POISONOUS_FRUIT_EATEN: world.poisonous_fruit_eaten,
                  keys.REJECTED_COMMANDS: self.rejected_commands}
        self.diagnostics_publisher.publish(
            io.diagnostics(keys.SIMULATOR, totals, stamp, "run complete"))
        self.get_logger().info(f"run complete after {world.step_index} steps: total movement "
                               f"{world.total_movement:.2f}")
        self.exit_if_done()

    def exit_if_done(self) -> None:
        """With exit_when_done: once every required reader has handled the last step (in real
        time: or has gone quiet) and every subscriber has received what was published, end the
        node (status 0)."""
        if not self.config.exit_when_done:
            return
        last = self.world.step_index - 1
        behind = {t: h for t, h in self.handled.items() if h < last}
        if behind:
            quiet = time.monotonic() - self.last_reader_progress > READERS_QUIET_SECONDS
            if self.config.lockstep or not quiet:
                return
            self.get_logger().warning(f"real time: readers never got the last steps: {behind} "
                                      f"(the newest step each handled); not waiting for them")
        # one deadline for all: a subscriber that died without leaving the graph never
        # acknowledges, and waiting for it topic by topic took 5 s a topic
        deadline = time.monotonic() + ACK_SECONDS
        unacknowledged = []
        for publisher in (self.clock_publisher, self.smell_publisher, self.odom_publisher,
                          self.truth_publisher, self.health_publisher,
                          self.diagnostics_publisher, self.trees_publisher,
                          self.camera_publisher, self.compressed_publisher):
            left = Duration(nanoseconds=max(0, int((deadline - time.monotonic()) * 1e9)))
            if publisher is not None and not publisher.wait_for_all_acked(left):
                unacknowledged.append(publisher.topic_name)
        if unacknowledged:      # what it sent last may be lost with this process
            self.get_logger().warning(
                f"not every subscriber acknowledged {', '.join(unacknowledged)} within "
                f"{ACK_SECONDS:.0f} s (one that died?); exiting anyway")
        self.get_logger().info("exiting" if behind else "every reader has the whole run; exiting")
        raise RunComplete


def main(args: list[str] | None = None) -> int:
    return run_node(TreeWorldSimNode, "treeworld_sim", args=args)


if __name__ == "__main__":
    raise SystemExit(main())
