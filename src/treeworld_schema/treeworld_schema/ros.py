"""Declare a configuration section as read-only ROS 2 parameters with honest descriptors,
the standard main of a Tree World node, and its /tf broadcaster."""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import rclpy
from geometry_msgs.msg import TransformStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from treeworld_schema.frames import quaternion_of
from treeworld_schema.schema import ConfigError, Section, section_from_mapping
from treeworld_schema.topics import TF

_INT_BOUND = 2**62
# Fast DDS settings every Tree World process starts with (why: the file's comment).
FASTDDS_PROFILE = Path(__file__).with_name("fastdds_profile.xml")
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def init_ros(args: list[str] | None = None, **options) -> None:
    """``rclpy.init`` with Fast DDS reading FASTDDS_PROFILE, unless the user has named a
    profile file of their own (then theirs alone applies)."""
    if not any(os.environ.get(variable) for variable in PROFILE_VARIABLES):
        os.environ[PROFILE_VARIABLES[0]] = str(FASTDDS_PROFILE)
    rclpy.init(args=args, **options)


class RunComplete(Exception):
    """Raised from a callback when the node's work is done: ``run_node`` exits with status 0."""


def _descriptor(field: dataclasses.Field) -> ParameterDescriptor:
    meta = field.metadata
    # dynamic typing lets a YAML "1000" reach a float setting; the schema checks the type
    descriptor = ParameterDescriptor(description=meta["description"], read_only=True,
                                     dynamic_typing=True)
    constraints = []
    if meta["choices"]:
        constraints.append("one of: " + ", ".join(meta["choices"]))
    if meta["odd"]:
        constraints.append("odd")
    if meta["low_exclusive"]:
        constraints.append(f"> {meta['low']}")
    descriptor.additional_constraints = "; ".join(constraints)
    low, high = meta["low"], meta["high"]
    if low is None and high is None:
        return descriptor
    if isinstance(field.default, bool):
        return descriptor
    if isinstance(field.default, int):
        descriptor.integer_range = [IntegerRange(
            from_value=int(low) if low is not None else -_INT_BOUND,
            to_value=int(high) if high is not None else _INT_BOUND, step=0)]
    else:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(low) if low is not None else -float("inf"),
            to_value=float(high) if high is not None else float("inf"), step=0.0)]
    return descriptor


def declare_section(node: Node, cls: type[Section]) -> Section:
    """Declare every field of ``cls`` on ``node`` and return the validated section.

    Raises ConfigError (one line naming the parameter) for a wrong type or value.
    """
    values = {}
    for field in dataclasses.fields(cls):
        descriptor = _descriptor(field)
        default = list(field.default) if isinstance(field.default, tuple) else field.default
        try:
            parameter = node.declare_parameter(field.name, default, descriptor)
        except ParameterException:
            # rclpy refused the value against the declared range: declare it without the
            # range so the schema can name what is wrong in the project's own words
            descriptor.integer_range, descriptor.floating_point_range = [], []
            parameter = node.declare_parameter(field.name, default, descriptor)
        values[field.name] = parameter.value
    return section_from_mapping(cls, values, node.get_name())


def run_node(make_node: Callable[[], Node], name: str,
             startup_errors: tuple[type[Exception], ...] = (),
             args: list[str] | None = None) -> int:
    """The standard node main: init, build, spin until Ctrl-C or shutdown, clean up.

    A bad parameter (ConfigError or one of ``startup_errors`` raised while building the node)
    is one line on stderr and exit status 2.
    """
    init_ros(args)
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except (ConfigError, *startup_errors) as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException, RunComplete):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def transform_stamped(stamp, parent: str, child: str, pose: np.ndarray) -> TransformStamped:
    """``child``'s planar pose (x, y, yaw) in ``parent`` as a TransformStamped."""
    message = TransformStamped()
    message.header.stamp, message.header.frame_id = stamp, parent
    message.child_frame_id = child
    message.transform.translation.x, message.transform.translation.y = \
        float(pose[0]), float(pose[1])
    rotation = message.transform.rotation
    rotation.x, rotation.y, rotation.z, rotation.w = quaternion_of(float(pose[2]))
    return message


class FrameBroadcaster:
    """Publishes transforms on /tf (what tf2_ros's TransformBroadcaster does). Every ROS 2
    install has tf2_msgs; the PyPI wheels do not, and there it says so once and sends
    nothing."""

    def __init__(self, node: Node):
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError:
            node.get_logger().info("tf2_msgs is not installed (a pip install of ROS 2): "
                                   "not publishing /tf")
            self.publisher = None
            return
        self.message_type = TFMessage
        self.publisher = node.create_publisher(TFMessage, TF, 100)

    def send(self, stamp, parent: str, child: str, pose: np.ndarray) -> None:
        if self.publisher is not None:
            self.publisher.publish(self.message_type(
                transforms=[transform_stamped(stamp, parent, child, pose)]))
