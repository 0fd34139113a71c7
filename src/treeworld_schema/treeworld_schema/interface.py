"""The contract between the Tree World nodes: topic names, frames, QoS and step stamps.

Every per-step topic is reliable and transient-local with a deep history, so a node (or a
recorder, or RViz) that joins late still receives every step, and lockstep never drops one.
"""
from __future__ import annotations

from builtin_interfaces.msg import Time
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from treeworld_schema.topics import (  # noqa: F401  (re-exported for the nodes)
    BASE_FRAME,
    BELIEF,
    CLOCK,
    CMD_VEL,
    DIAGNOSTICS,
    GROUND_TRUTH,
    HEALTH,
    MAP_FRAME,
    ODOM,
    ODOM_FRAME,
    PATH,
    POSE,
    SMELL,
    SMELL_ENCODING,
    TREES,
)

HISTORY_DEPTH = 1000


def step_qos() -> QoSProfile:
    """Per-step topics: reliable, transient-local, the last HISTORY_DEPTH steps kept."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=HISTORY_DEPTH,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def latest_qos() -> QoSProfile:
    """State where only the latest message matters (trees, the estimated path): latched."""
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
