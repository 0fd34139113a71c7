"""rosbag2 bags of the Tree World stack, read and written with the ``rosbags`` library.

Bags are real rosbag2 (MCAP by default, SQLite3 on request) with ROS 2 Kilted message types,
so ``ros2 bag play`` plays them and bags recorded on a real ROS 2 install read here. Every
problem with a bag (missing, truncated, corrupted, lacking a topic, a type that does not match
or differs from Kilted's definition) is a BagError naming the file and the topic.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from treeworld_schema import topics

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
STORAGE = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}

# Every topic of the stack and its type: what `treeworld bag record` records by default.
STACK_TOPICS = {
    topics.CLOCK: "rosgraph_msgs/msg/Clock",
    topics.SMELL: "sensor_msgs/msg/Image",
    topics.ODOM: "nav_msgs/msg/Odometry",
    topics.GROUND_TRUTH: "nav_msgs/msg/Odometry",
    topics.CMD_VEL: "geometry_msgs/msg/TwistStamped",
    topics.TREES: "visualization_msgs/msg/MarkerArray",
    topics.HEALTH: "std_msgs/msg/Float32",
    topics.BELIEF: "nav_msgs/msg/OccupancyGrid",
    topics.POSE: "geometry_msgs/msg/PoseWithCovarianceStamped",
    topics.PATH: "nav_msgs/msg/Path",
    topics.DIAGNOSTICS: "diagnostic_msgs/msg/DiagnosticArray",
}
POSE_TYPES = ("nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseStamped",
              "geometry_msgs/msg/PoseWithCovarianceStamped")


class BagError(Exception):
    """A bag cannot be used; the message names the file (and topic)."""


def message_class(msgtype: str):
    """The rclpy message class for 'pkg/msg/Name'."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def stamp_nanoseconds(message) -> int:
    """The header stamp of a deserialized message (rosbags or rclpy), in nanoseconds."""
    stamp = message.header.stamp
    return stamp.sec * 1_000_000_000 + stamp.nanosec


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    timestamp: int        # receive time, ns
    rawdata: bytes

    def decode(self):
        return TYPESTORE.deserialize_cdr(self.rawdata, self.msgtype)


class BagReader:
    """Opens a bag and checks the topics it is asked for; use as a context manager."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag")
        try:
            self.reader = Reader(self.path)
            self.reader.open()
        except Exception as error:   # rosbags raises many kinds for damaged files
            raise BagError(f"{self.path}: not a readable rosbag2 bag ({error})") from None
        self.connections = {c.topic: c for c in self.reader.connections}

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc) -> None:
        self.reader.close()

    @property
    def topics(self) -> dict[str, tuple[str, int]]:
        """topic -> (type, message count)."""
        return {t: (c.msgtype, c.msgcount) for t, c in self.connections.items()}

    @property
    def duration_seconds(self) -> float:
        return self.reader.duration * 1e-9

    def has(self, topic: str) -> bool:
        return topic in self.connections

    def require(self, topic: str, msgtypes: str | tuple[str, ...]) -> None:
        """Raise BagError unless ``topic`` is in the bag with one of ``msgtypes`` whose
        definition matches ROS 2 Kilted's."""
        msgtypes = (msgtypes,) if isinstance(msgtypes, str) else msgtypes
        connection = self.connections.get(topic)
        if connection is None:
            raise BagError(f"{self.path}: topic {topic} not in the bag (it has: "
                           f"{', '.join(sorted(self.connections)) or 'no topics'})")
        if connection.msgtype not in msgtypes:
            raise BagError(f"{self.path}: topic {topic} is {connection.msgtype}, expected "
                           f"{' or '.join(msgtypes)}")
        expected = TYPESTORE.hash_rihs01(connection.msgtype)
        if connection.digest.startswith("RIHS01_") and connection.digest != expected:
            raise BagError(f"{self.path}: topic {topic}: {connection.msgtype} in this bag "
                           f"differs from ROS 2 Kilted's definition (type hash "
                           f"{connection.digest[:20]}... vs {expected[:20]}...)")

    def messages(self, topics_wanted: list[str] | None = None) -> Iterator[BagMessage]:
        """Messages in recorded order; a damaged bag raises BagError naming the topic."""
        connections = [c for t, c in self.connections.items()
                       if topics_wanted is None or t in topics_wanted]
        topic = None
        try:
            for connection, timestamp, rawdata in self.reader.messages(connections=connections):
                topic = connection.topic
                yield BagMessage(topic, connection.msgtype, timestamp, bytes(rawdata))
        except BagError:
            raise
        except Exception as error:
            where = f"after a {topic} message" if topic else "its messages"
            raise BagError(f"{self.path}: cannot read {where}: the bag is damaged ({error})") \
                from None

    def decoded(self, topics_wanted: list[str]) -> Iterator[tuple[BagMessage, object]]:
        for message in self.messages(topics_wanted):
            try:
                yield message, message.decode()
            except Exception as error:
                raise BagError(f"{self.path}: topic {message.topic}: cannot decode a "
                               f"{message.msgtype} ({error})") from None


class BagWriter:
    """Writes raw CDR messages of the stack's types into a new rosbag2 bag."""

    def __init__(self, path: str | Path, storage: str = "mcap"):
        self.path = Path(path)
        self.writer = Writer(self.path, version=9, storage_plugin=STORAGE[storage])
        self.writer.open()
        self.connections = {}
        self.counts: dict[str, int] = {}

    def write(self, topic: str, msgtype: str, timestamp: int, rawdata: bytes) -> None:
        if topic not in self.connections:
            self.connections[topic] = self.writer.add_connection(topic, msgtype,
                                                                 typestore=TYPESTORE)
            self.counts[topic] = 0
        self.writer.write(self.connections[topic], timestamp, rawdata)
        self.counts[topic] += 1

    def close(self) -> None:
        self.writer.close()


def pose_xy(message) -> np.ndarray:
    """(x, y) of an Odometry, PoseStamped or PoseWithCovarianceStamped."""
    pose = message.pose
    pose = getattr(pose, "pose", pose)          # Odometry / PoseWithCovarianceStamped nest
    return np.array([pose.position.x, pose.position.y])


def pose_tum_row(message) -> list[float]:
    """t x y z qx qy qz qw of a pose message, t from its header stamp (seconds)."""
    pose = message.pose
    pose = getattr(pose, "pose", pose)
    p, q = pose.position, pose.orientation
    return [stamp_nanoseconds(message) * 1e-9, p.x, p.y, p.z, q.x, q.y, q.z, q.w]
