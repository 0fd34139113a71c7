"""rosbag2 bags of the Tree World stack: written with checksums, verified before they are read.

Bags are real rosbag2 folders (``metadata.yaml`` + one storage file) with ROS 2 Kilted message
types, so ``ros2 bag play`` plays them and bags recorded on a real ROS 2 install read here.
MCAP (the default) is written with the official ``mcap`` library: zstd-compressed chunks, each
with a CRC of its content, plus CRCs of the whole data section and of the summary, the
``ros2msg`` schemas and each topic's offered QoS, as rosbag2 writes them. ``rosbags`` supplies
the type definitions and ``metadata.yaml``. SQLite3 bags (``--storage sqlite3``) carry no
checksums.

Reading an MCAP bag first checks every CRC, every record and the message counts that
``metadata.yaml`` promises; any damage is a BagError naming the file and the damaged chunk, so
a damaged bag is refused before one message is used. ``salvage=True`` instead skips damaged
chunks and stops at the first unreadable record, keeping what is intact (and saying what was
lost).
"""
from __future__ import annotations

import dataclasses
import importlib
import logging
import zlib
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Iterator

import numpy as np
import yaml
from mcap.exceptions import EndOfFile, InvalidMagic, RecordLengthLimitExceeded
from mcap.reader import make_reader
from mcap.records import Channel, Chunk, DataEnd, Footer, Message, Schema
from mcap.stream_reader import CRCValidationError, StreamReader, breakup_chunk
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from rosbags.interfaces import Qos
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from treeworld_schema import topics

log = logging.getLogger(__name__)
TYPESTORE = get_typestore(Stores.ROS2_KILTED)
STORAGE = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
CHUNK_BYTES = 256 << 10   # uncompressed bytes per MCAP chunk: what a crash can lose at most
MAGIC_BYTES = 8
FOOTER_BYTES = 1 + 8 + 8 + 8 + 4    # opcode, length, summary start, offsets start, CRC

# Every topic of the stack and its type: what `treeworld bag record` records by default.
STACK_TOPICS = {
    topics.CLOCK: "rosgraph_msgs/msg/Clock",
    topics.SMELL: "sensor_msgs/msg/Image",
    topics.CAMERA: "sensor_msgs/msg/Image",
    topics.CAMERA_COMPRESSED: "sensor_msgs/msg/CompressedImage",
    topics.ODOM: "nav_msgs/msg/Odometry",
    topics.GROUND_TRUTH: "nav_msgs/msg/Odometry",
    topics.CMD_VEL: "geometry_msgs/msg/TwistStamped",
    topics.TREES: "visualization_msgs/msg/MarkerArray",
    topics.HEALTH: "std_msgs/msg/Float32",
    topics.BELIEF: "nav_msgs/msg/OccupancyGrid",
    topics.POSE: "geometry_msgs/msg/PoseWithCovarianceStamped",
    topics.PATH: "nav_msgs/msg/Path",
    topics.GRAPH: "visualization_msgs/msg/MarkerArray",
    topics.DIAGNOSTICS: "diagnostic_msgs/msg/DiagnosticArray",
}
POSE_TYPES = ("nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseStamped",
              "geometry_msgs/msg/PoseWithCovarianceStamped")


class BagError(Exception):
    """A bag cannot be used; the message names the file (and topic, or damaged chunk)."""


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


@dataclass(frozen=True)
class TopicInfo:
    msgtype: str
    count: int
    digest: str           # RIHS01 type hash, "" when the bag does not say


# -- writing --------------------------------------------------------------------------------

class ChecksummedMcapStorage:
    """A rosbags storage plugin that writes MCAP with the official library: zstd chunks with
    CRCs, data-section and summary CRCs, rosbag2's channel metadata and its 'rosbag2'
    metadata record."""

    def __init__(self, path: Path, compression) -> None:
        self.path = path / f"{path.name}.mcap"
        self.file = self.path.open("xb")
        self.writer = McapWriter(self.file, chunk_size=CHUNK_BYTES,
                                 compression=CompressionType.ZSTD, enable_crcs=True,
                                 enable_data_crcs=True)
        self.writer.start(profile="ros2", library=f"treeworld_bringup, mcap {version('mcap')}")
        self.schemas: dict[str, int] = {}
        self.channels: dict[int, int] = {}

    def add_msgtype(self, connection) -> None:
        encoding = "ros2idl" if connection.msgdef.data.startswith("=" * 80 + "\nIDL: ") \
            else "ros2msg"
        self.schemas[connection.msgtype] = self.writer.register_schema(
            connection.msgtype, encoding, connection.msgdef.data.encode())

    def add_connection(self, connection, offered_qos_profiles: str) -> None:
        self.channels[connection.id] = self.writer.register_channel(
            connection.topic, connection.ext.serialization_format,
            self.schemas[connection.msgtype],
            {"offered_qos_profiles": offered_qos_profiles, "topic_type_hash": connection.digest})

    def write(self, connection, timestamp: int, data) -> None:
        self.writer.add_message(self.channels[connection.id], log_time=timestamp,
                                data=bytes(data), publish_time=timestamp)

    def close(self, version: int, metadata: str) -> None:
        self.writer.add_metadata("rosbag2", {"serialized_metadata": metadata})
        self.writer.finish()
        self.file.close()

    def abort(self) -> None:
        self.file.close()


class _ChecksummedWriter(Writer):
    STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: ChecksummedMcapStorage}


class BagWriter:
    """Writes raw CDR messages of the stack's types into a new rosbag2 bag; each topic's
    offered QoS (``qos[topic]``) is stored with it."""

    def __init__(self, path: str | Path, storage: str = "mcap",
                 qos: dict[str, Qos] | None = None):
        self.path = Path(path)
        self.qos = qos or {}
        self.writer = _ChecksummedWriter(self.path, version=9, storage_plugin=STORAGE[storage])
        self.writer.open()
        self.connections = {}
        self.counts: dict[str, int] = {}

    def write(self, topic: str, msgtype: str, timestamp: int, rawdata: bytes) -> None:
        if topic not in self.connections:
            offered = [self.qos[topic]] if topic in self.qos else []
            self.connections[topic] = self.writer.add_connection(
                topic, msgtype, typestore=TYPESTORE, offered_qos_profiles=offered)
            self.counts[topic] = 0
        self.writer.write(self.connections[topic], timestamp, rawdata)
        self.counts[topic] += 1

    def close(self) -> None:
        self.writer.close()


# -- reading --------------------------------------------------------------------------------

@dataclass
class _McapContents:
    """What a scan of an MCAP file found."""

    topics: dict[str, TopicInfo] = field(default_factory=dict)
    damage: list[str] = field(default_factory=list)    # what salvage skipped or lost
    start: int | None = None
    end: int | None = None


class _McapFile:
    """One MCAP file, read record by record (no index is trusted)."""

    def __init__(self, path: Path, salvage: bool):
        self.path, self.salvage = path, salvage
        self.size = path.stat().st_size

    def _records(self, handle, verify: bool, damage: list[str]):
        """(offset, record) in file order, chunks broken up; damaged chunks and an unreadable
        tail raise BagError, or with salvage are skipped and noted in ``damage``."""
        reader = StreamReader(handle, emit_chunks=True, validate_crcs=verify,
                              record_size_limit=self.size)
        offset, chunk_index = 0, 0
        records = reader.records
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except Exception as error:     # damaged bytes fail in many ways inside the parser
                message = f"{self.path}: {_describe(error, offset)}"
                if not self.salvage:
                    raise BagError(message) from None
                damage.append(f"{message}; the rest of the file is lost")
                return
            start, offset = offset, handle.tell()
            if isinstance(record, Chunk):
                try:
                    inner = breakup_chunk(record, validate_crc=True)
                except Exception as error:     # a CRC or decompression failure
                    message = (f"{self.path}: chunk {chunk_index} (bytes {start}-{offset}) is "
                               f"damaged ({type(error).__name__}: {error})")
                    chunk_index += 1
                    if not self.salvage:
                        raise BagError(message) from None
                    damage.append(f"{message}; its messages are skipped")
                    continue
                chunk_index += 1
                for item in inner:
                    yield start, item
            else:
                yield start, record

    def _summary_channels(self) -> dict[int, tuple[str, str, str]]:
        """channel id -> (topic, type, type hash) from the summary section, which repeats
        what the chunks declared: salvage needs it when the chunk declaring a channel is the
        damaged one. Empty when the summary cannot be read."""
        try:
            with self.path.open("rb") as handle:
                summary = make_reader(handle).get_summary()
        except Exception:                  # no summary to lean on (truncated, damaged)
            return {}
        if summary is None:
            return {}
        return {channel.id: (channel.topic, summary.schemas[channel.schema_id].name
                             if channel.schema_id in summary.schemas else "",
                             channel.metadata.get("topic_type_hash", ""))
                for channel in summary.channels.values()}

    def _declared(self, record, schemas: dict[int, str],
                  channels: dict[int, tuple[str, str, str]]) -> None:
        if isinstance(record, Schema):
            schemas[record.id] = record.name
        elif isinstance(record, Channel):
            channels[record.id] = (record.topic, schemas.get(record.schema_id, ""),
                                   record.metadata.get("topic_type_hash", ""))

    def scan(self) -> _McapContents:
        """Check everything: CRCs, record structure, the summary CRC; count messages."""
        contents = _McapContents()
        schemas: dict[int, str] = {}
        channels = self._summary_channels() if self.salvage else {}
        counts: dict[int, int] = {}
        footer = None
        with self.path.open("rb") as handle:
            for _, record in self._records(handle, verify=True, damage=contents.damage):
                self._declared(record, schemas, channels)
                if isinstance(record, Message):
                    if record.channel_id not in channels:
                        self._damaged(contents, f"a message on unknown channel "
                                      f"{record.channel_id}")
                        continue
                    counts[record.channel_id] = counts.get(record.channel_id, 0) + 1
                    first = record.log_time if contents.start is None else contents.start
                    contents.start = min(first, record.log_time)
                    contents.end = max(contents.end or 0, record.log_time)
                elif isinstance(record, Footer):
                    footer = record
            if footer is not None and footer.summary_crc:
                self._check_summary_crc(handle, footer, contents)
        for channel_id, (topic, msgtype, digest) in channels.items():
            earlier = contents.topics[topic].count if topic in contents.topics else 0
            contents.topics[topic] = TopicInfo(msgtype, earlier + counts.get(channel_id, 0),
                                               digest)
        return contents

    def _check_summary_crc(self, handle, footer: Footer, contents: _McapContents) -> None:
        footer_start = self.size - MAGIC_BYTES - FOOTER_BYTES
        start = footer.summary_start or footer_start
        if not 0 < start <= footer_start:
            self._damaged(contents, "the footer's summary offset is out of range")
            return
        handle.seek(start)
        covered = handle.read(footer_start + FOOTER_BYTES - 4 - start)
        if zlib.crc32(covered) != footer.summary_crc:
            self._damaged(contents, f"the summary section (bytes {start}-{self.size}) fails its "
                          "CRC")

    def _damaged(self, contents: _McapContents, what: str) -> None:
        if not self.salvage:
            raise BagError(f"{self.path}: {what}")
        contents.damage.append(f"{self.path}: {what}; ignored")

    def messages(self, wanted: set[str] | None) -> Iterator[BagMessage]:
        schemas: dict[int, str] = {}
        channels = self._summary_channels() if self.salvage else {}
        with self.path.open("rb") as handle:
            for _, record in self._records(handle, verify=True, damage=[]):
                self._declared(record, schemas, channels)
                if isinstance(record, Message) and record.channel_id in channels:
                    topic, msgtype, _ = channels[record.channel_id]
                    if wanted is None or topic in wanted:
                        yield BagMessage(topic, msgtype, record.log_time, bytes(record.data))
                if isinstance(record, DataEnd):
                    return


def _describe(error: Exception, offset: int) -> str:
    """What a parse failure after byte ``offset`` means for the reader of a bag."""
    if isinstance(error, CRCValidationError) and isinstance(error.record, DataEnd):
        return ("the data section fails its CRC: bytes outside the chunks' own checks (a "
                "record header or a message index) are damaged")
    if isinstance(error, InvalidMagic):
        return "not an MCAP file, or its first or last bytes are damaged (bad magic)"
    if isinstance(error, (EndOfFile, RecordLengthLimitExceeded)):
        return (f"the record after byte {offset} runs past the end of the file (the file is "
                "truncated or a record length is damaged)")
    return f"unreadable record after byte {offset} ({type(error).__name__}: {error})"


def _load_metadata(path: Path) -> dict:
    try:
        document = yaml.safe_load((path / "metadata.yaml").read_text())
        info = document["rosbag2_bagfile_information"]
        files = info["relative_file_paths"]
        if not isinstance(files, list) or len(files) != 1:
            raise BagError(f"{path}: metadata.yaml names {len(files)} storage files; this "
                           "reader takes bags of one file")
        topics_listed = {entry["topic_metadata"]["name"]: entry
                         for entry in info.get("topics_with_message_count") or []}
        return {"storage": info["storage_identifier"], "file": path / files[0],
                "topics": topics_listed}
    except BagError:
        raise
    except (OSError, UnicodeDecodeError) as error:
        raise BagError(f"{path}: cannot read metadata.yaml ({error})") from None
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as error:
        raise BagError(f"{path / 'metadata.yaml'}: not rosbag2 metadata ({error!r})") from None


class BagReader:
    """Opens a bag (a rosbag2 folder or a bare .mcap file), verifies it and checks the topics
    it is asked for; use as a context manager."""

    def __init__(self, path: str | Path, salvage: bool = False):
        self.path = Path(path)
        self.salvage = salvage
        self.damage: list[str] = []
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag")
        self.sqlite = None
        self.mcap = None
        if self.path.is_file() and self.path.suffix == ".mcap":
            self._open_mcap(self.path, listed={})
            return
        if self.path.is_file():
            raise BagError(f"{self.path}: not a bag (a rosbag2 folder or an .mcap file)")
        metadata = _load_metadata(self.path)
        if metadata["storage"] == "mcap":
            self._open_mcap(metadata["file"], metadata["topics"])
        elif metadata["storage"] == "sqlite3":
            self._open_sqlite(metadata["topics"])
        else:
            raise BagError(f"{self.path}: storage {metadata['storage']!r} is not mcap or sqlite3")

    def _open_mcap(self, file: Path, listed: dict) -> None:
        if not file.is_file():
            raise BagError(f"{file}: missing (named by {self.path / 'metadata.yaml'})")
        self.mcap = _McapFile(file, self.salvage)
        contents = self.mcap.scan()
        self.damage = contents.damage
        for line in self.damage:
            log.warning("salvaging: %s", line)
        self.topics_found = contents.topics
        self.start, self.end = contents.start or 0, contents.end or 0
        for topic, entry in listed.items():
            promised = entry.get("message_count")
            found = contents.topics.get(topic, TopicInfo("", 0, "")).count
            listed_digest = entry["topic_metadata"].get("type_description_hash") or ""
            if topic in contents.topics and not contents.topics[topic].digest:
                self.topics_found[topic] = dataclasses.replace(contents.topics[topic],
                                                               digest=listed_digest)
            if promised != found:
                message = (f"{file}: metadata.yaml promises {promised} messages on {topic}, "
                           f"the file holds {found}")
                if not self.salvage:
                    raise BagError(f"{message} (the bag is damaged or incomplete)")
                self.damage.append(message)
                log.warning("salvaging: %s", message)

    def _open_sqlite(self, listed: dict) -> None:
        try:
            self.sqlite = Reader(self.path)
            self.sqlite.open()
        except Exception as error:   # rosbags raises many kinds for damaged files
            raise BagError(f"{self.path}: not a readable rosbag2 bag ({error})") from None
        self.topics_found = {c.topic: TopicInfo(c.msgtype, c.msgcount, c.digest)
                             for c in self.sqlite.connections}
        self.start, self.end = self.sqlite.start_time, self.sqlite.end_time

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc) -> None:
        if self.sqlite is not None:
            self.sqlite.close()

    @property
    def topics(self) -> dict[str, tuple[str, int]]:
        """topic -> (type, message count)."""
        return {t: (info.msgtype, info.count) for t, info in self.topics_found.items()}

    @property
    def duration_seconds(self) -> float:
        return max(0, self.end - self.start) * 1e-9

    def has(self, topic: str) -> bool:
        return topic in self.topics_found

    def require(self, topic: str, msgtypes: str | tuple[str, ...]) -> None:
        """Raise BagError unless ``topic`` is in the bag with one of ``msgtypes`` whose
        definition matches ROS 2 Kilted's."""
        msgtypes = (msgtypes,) if isinstance(msgtypes, str) else msgtypes
        info = self.topics_found.get(topic)
        if info is None:
            raise BagError(f"{self.path}: topic {topic} not in the bag (it has: "
                           f"{', '.join(sorted(self.topics_found)) or 'no topics'})")
        if info.msgtype not in msgtypes:
            raise BagError(f"{self.path}: topic {topic} is {info.msgtype}, expected "
                           f"{' or '.join(msgtypes)}")
        if info.digest.startswith("RIHS01_"):
            expected = TYPESTORE.hash_rihs01(info.msgtype)
            if info.digest != expected:
                raise BagError(f"{self.path}: topic {topic}: {info.msgtype} in this bag "
                               f"differs from ROS 2 Kilted's definition (type hash "
                               f"{info.digest[:20]}... vs {expected[:20]}...)")

    def messages(self, topics_wanted: list[str] | None = None) -> Iterator[BagMessage]:
        """Messages in recorded order."""
        wanted = None if topics_wanted is None else set(topics_wanted)
        if self.mcap is not None:
            yield from self.mcap.messages(wanted)
            return
        connections = [c for c in self.sqlite.connections if wanted is None or c.topic in wanted]
        try:
            for connection, timestamp, rawdata in self.sqlite.messages(connections=connections):
                yield BagMessage(connection.topic, connection.msgtype, timestamp, bytes(rawdata))
        except Exception as error:
            raise BagError(f"{self.path}: cannot read its messages: the bag is damaged "
                           f"({error})") from None

    def decoded(self, topics_wanted: list[str]) -> Iterator[tuple[BagMessage, object]]:
        for message in self.messages(topics_wanted):
            try:
                yield message, message.decode()
            except Exception as error:
                raise BagError(f"{self.path}: topic {message.topic}: cannot decode a "
                               f"{message.msgtype} ({error})") from None


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
