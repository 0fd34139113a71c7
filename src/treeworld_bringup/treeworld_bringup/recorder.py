"""``treeworld bag record``: a node that writes the stack's topics into a rosbag2 bag.

It subscribes with each topic's own QoS (transient-local, so it also gets what was published
before it joined), stores the CDR bytes as received with that QoS in the bag, and publishes its
per-topic counts on /diagnostics (status "bag_recorder") twice a second. After recording each
/clock it reports that step on its progress topic, so a lockstep simulator told to wait for it
never outruns it. With ``--await-writers`` that topic appears only once the named topics' writers
have all matched: a simulator waiting for it then starts no earlier, so a writer discovered late
(on a loaded machine, seconds) cannot have published more than its history holds before the
recorder sees it; /clock only says the recorder kept up with the simulator. Ctrl-C or SIGTERM
close the bag cleanly; a write error (disk full, unwritable folder) stops the recorder with one
clear line, and leaves the rest of the graph running.

    python -m treeworld_bringup.recorder OUT [--topics ...] [--storage mcap|sqlite3]
                                             [--await-writers TOPIC[=COUNT] ...]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rclpy.signals import SignalHandlerOptions
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosgraph_msgs.msg import Clock

from treeworld_bringup.bags import STACK_TOPICS, BagWriter, message_class
from treeworld_bringup.interrupts import StopRequests
from treeworld_schema import diagnostics as keys
from treeworld_schema import interface as io
from treeworld_schema.ros import init_ros

LATCHED = {io.TREES, io.PATH, io.GRAPH}
INFINITE = QosTime(sec=9223372036, nsec=854775807)   # rosbag2's "no deadline / lifespan"


def topic_qos(topic: str) -> QoSProfile:
    """The QoS every node of the stack offers on ``topic``."""
    return io.latest_qos() if topic in LATCHED else io.step_qos()


def offered_qos(profile: QoSProfile) -> Qos:
    """An rclpy QoS profile as rosbag2 stores it with a topic."""
    return Qos(
        history=QosHistory.KEEP_LAST, depth=profile.depth,
        reliability=QosReliability.RELIABLE
        if profile.reliability == ReliabilityPolicy.RELIABLE else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL
        if profile.durability == DurabilityPolicy.TRANSIENT_LOCAL else QosDurability.VOLATILE,
        deadline=INFINITE, lifespan=INFINITE, liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=INFINITE, avoid_ros_namespace_conventions=False)


class RecordingFailed(Exception):
    """Writing the bag failed; the message says why."""


class Recorder(Node):
    def __init__(self, bag: BagWriter, topic_names: list[str],
                 awaited_writers: dict[str, int] | None = None):
        super().__init__("treeworld_bag_recorder")
        self.bag = bag
        self.readers = {
            topic: self.create_subscription(
                message_class(STACK_TOPICS[topic]), topic,
                self.writer_for(topic, STACK_TOPICS[topic]), topic_qos(topic), raw=True)
            for topic in topic_names}
        self.status = self.create_publisher(DiagnosticArray, io.DIAGNOSTICS, io.step_qos())
        self.create_timer(0.5, self.publish_status)
        self.awaited_writers = dict(awaited_writers or {})
        self.progress = None
        # only with /clock is there a step to report
        self.progress_gate = self.create_timer(0.1, self.report_progress_once_matched) \
            if io.CLOCK in topic_names else None

    def writers_missing(self) -> list[str]:
        """The awaited topics short of their writers, e.g. "/tem/pose (0 of 1)"."""
        missing = []
        for topic, wanted in self.awaited_writers.items():
            # this node's own status writer is matched on /diagnostics too
            matched = self.readers[topic].get_publisher_count() - (topic == io.DIAGNOSTICS)
            if matched < wanted:
                missing.append(f"{topic} ({matched} of {wanted})")
        return missing

    def report_progress_once_matched(self) -> None:
        missing = self.writers_missing()
        if missing:
            self.get_logger().info(f"waiting for writers: {', '.join(missing)}", once=True)
            return
        self.progress_gate.cancel()
        self.progress = self.create_publisher(Clock, io.RECORDER_PROGRESS, io.latest_qos())

    def writer_for(self, topic: str, msgtype: str):
        def write(rawdata: bytes) -> None:
            try:
                self.bag.write(topic, msgtype, time.time_ns(), rawdata)
            except OSError as error:
                raise RecordingFailed(f"cannot write {self.bag.path}: {error.strerror or error}"
                                      ) from None
            if topic == io.CLOCK and self.progress is not None:
                self.progress.publish(deserialize_message(rawdata, Clock))
        return write

    def publish_status(self) -> None:
        self.status.publish(io.diagnostics(keys.RECORDER, self.bag.counts,
                                           self.get_clock().now().to_msg(),
                                           f"recording to {self.bag.path}"))


def record(out: Path, topic_names: list[str], storage: str,
           awaited_writers: dict[str, int] | None = None) -> int:
    """Record until Ctrl-C / SIGTERM. Exit status 0, or 2 when OUT cannot be created or an
    argument is wrong, 1 when writing fails later. ``awaited_writers``: topic -> how many
    writers must have matched before progress is reported."""
    unknown = [t for t in topic_names if t not in STACK_TOPICS]
    if unknown:
        print(f"treeworld bag record: error: unknown topic {unknown[0]} (known: "
              f"{', '.join(STACK_TOPICS)})", file=sys.stderr)
        return 2
    not_recorded = [t for t in awaited_writers or {} if t not in topic_names]
    if not_recorded:
        print(f"treeworld bag record: error: --await-writers {not_recorded[0]} is not a "
              f"recorded topic", file=sys.stderr)
        return 2
    try:
        bag = BagWriter(out, storage, {t: offered_qos(topic_qos(t)) for t in topic_names})
    except Exception as error:
        print(f"treeworld bag record: error: cannot create bag {out}: {error}", file=sys.stderr)
        return 2
    init_ros([], signal_handler_options=SignalHandlerOptions.NO)   # Ctrl-C is ours
    node = Recorder(bag, topic_names, awaited_writers)
    # rclpy's default executor rebuilds its wait set for every message it takes, which was
    # half of this recorder's CPU time (2.5 ms a step against 1.25 with this one)
    executor = EventsExecutor()
    executor.add_node(node)
    code = 0
    try:
        with StopRequests() as stop:
            while True:
                executor.spin_once(timeout_sec=0.1)
                stop.check()
    except KeyboardInterrupt:
        pass
    except RecordingFailed as error:
        print(f"treeworld bag record: error: {error}; recording stopped", file=sys.stderr)
        code = 1
    finally:
        executor.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        try:
            bag.close()
        except Exception as error:
            if code == 0:
                print(f"treeworld bag record: error: cannot close {out}: {error}",
                      file=sys.stderr)
                code = 1
    if code == 0:
        counts = ", ".join(f"{t} {n}" for t, n in bag.counts.items()) or "no messages"
        print(f"bag {out}: {counts}", file=sys.stderr)
    return code


def add_record_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="bag folder to create")
    parser.add_argument("--topics", nargs="+", default=list(STACK_TOPICS),
                        help="topics to record (default: all of the stack's)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument("--await-writers", nargs="+", type=awaited_writer, default=[],
                        metavar="TOPIC[=COUNT]",
                        help="report progress (for a lockstep simulator) only once each TOPIC "
                        "has COUNT writers (default 1) besides this recorder")


def awaited_writer(text: str) -> tuple[str, int]:
    """``TOPIC`` or ``TOPIC=COUNT`` as (topic, count)."""
    topic, _, count = text.partition("=")
    try:
        wanted = int(count or 1)
    except ValueError:
        wanted = 0
    if wanted < 1:
        raise argparse.ArgumentTypeError(f"{text}: COUNT must be a whole number >= 1")
    return topic, wanted


def record_as_parsed(args: argparse.Namespace) -> int:
    """``record`` with the options of ``add_record_options``."""
    return record(args.out, args.topics, args.storage, dict(args.await_writers))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="treeworld bag record", description=__doc__)
    add_record_options(parser)
    return record_as_parsed(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
