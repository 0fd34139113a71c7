"""The contract between the Tree World nodes, as ROS messages: QoS, step stamps, progress and
diagnostics.

Every per-step topic is reliable and transient-local with a deep history, so a node (or a
recorder, or RViz) that joins late still receives every step; lockstep flow control (the
simulator waits for its readers' progress) keeps any reader from falling further behind than
that history holds.
"""
from __future__ import annotations

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from treeworld_schema.topics import (  # noqa: F401  (re-exported for the nodes)
    BASE_FRAME,
    BELIEF,
    CAMERA,
    CAMERA_COMPRESSED,
    CLOCK,
    CMD_VEL,
    DIAGNOSTICS,
    EDIBLE_TREES,
    FORAGER_ANCHORS,
    GRAPH,
    GROUND_TRUTH,
    HEALTH,
    HISTORY_DEPTH,
    LAUNCHER_PROGRESS,
    LOCALIZER_PROGRESS,
    MAP_FRAME,
    ODOM,
    ODOM_FRAME,
    PATH,
    POISONOUS_TREES,
    POSE,
    RECALLED,
    RECORDER_PROGRESS,
    SMELL,
    SMELL_ENCODING,
    TREE_LABELS,
    TREES,
)


def step_qos() -> QoSProfile:
    """Per-step topics: reliable, transient-local, the last HISTORY_DEPTH steps kept."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=HISTORY_DEPTH,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def latest_qos() -> QoSProfile:
    """State where only the latest message matters (trees, the path, progress): latched."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def step_stamp(step: int, step_period: float) -> Time:
    """The simulated time of ``step``: step * step_period seconds."""
    return nanoseconds_stamp(round(step * step_period * 1e9))


def nanoseconds_stamp(nanoseconds: int) -> Time:
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def stamp_nanoseconds(stamp: Time) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def step_of(stamp: Time, step_period: float) -> int:
    """The step a stamp belongs to (inverse of step_stamp)."""
    return round(stamp_nanoseconds(stamp) / (step_period * 1e9))


def diagnostics(name: str, values: dict, stamp: Time, message: str = "",
                level: bytes = DiagnosticStatus.OK, hardware_id: str = "") -> DiagnosticArray:
    """A DiagnosticArray with one status; ``values`` become KeyValues (str of each value)."""
    status = DiagnosticStatus(name=name, level=level, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array


def status_values(message, name: str) -> dict[str, str] | None:
    """The key-values of the status called ``name`` in a DiagnosticArray (rclpy or rosbags
    message), or None when it has none."""
    for status in message.status:
        if status.name == name:
            return {kv.key: kv.value for kv in status.values}
    return None
