"""``treeworld bag record``: a node that writes the stack's topics into a rosbag2 bag.

It subscribes with each topic's own QoS (transient-local, so it also gets what was published
before it joined), stores the CDR bytes as received, and publishes its per-topic counts on
/diagnostics (status "bag_recorder") twice a second. Ctrl-C or SIGTERM close the bag cleanly;
a write error (disk full, unwritable folder) stops the recorder with one clear line, and
leaves the rest of the graph running.

    python -m treeworld_bringup.recorder OUT [--topics ...] [--storage mcap|sqlite3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from treeworld_bringup.bags import STACK_TOPICS, BagWriter, message_class
from treeworld_bringup.interrupts import StopRequests
from treeworld_schema import interface as io

LATCHED = {io.TREES, io.PATH}
STATUS_NAME = "bag_recorder"


class RecordingFailed(Exception):
    """Writing the bag failed; the message says why."""


class Recorder(Node):
    def __init__(self, bag: BagWriter, topic_names: list[str]):
        super().__init__("treeworld_bag_recorder")
        self.bag = bag
        for topic in topic_names:
            msgtype = STACK_TOPICS[topic]
            qos = io.latest_qos() if topic in LATCHED else io.step_qos()
            self.create_subscription(message_class(msgtype), topic,
                                     self.writer_for(topic, msgtype), qos, raw=True)
        self.status = self.create_publisher(DiagnosticArray, io.DIAGNOSTICS, io.step_qos())
        self.create_timer(0.5, self.publish_status)

    def writer_for(self, topic: str, msgtype: str):
        def write(rawdata: bytes) -> None:
            try:
                self.bag.write(topic, msgtype, time.time_ns(), rawdata)
            except OSError as error:
                raise RecordingFailed(f"cannot write {self.bag.path}: {error.strerror or error}"
                                      ) from None
        return write

    def publish_status(self) -> None:
        values = [KeyValue(key=topic, value=str(count)) for topic, count in
                  self.bag.counts.items()]
        status = DiagnosticStatus(name=STATUS_NAME, level=DiagnosticStatus.OK,
                                  message=f"recording to {self.bag.path}", values=values)
        message = DiagnosticArray(status=[status])
        message.header.stamp = self.get_clock().now().to_msg()
        self.status.publish(message)


def record(out: Path, topic_names: list[str], storage: str) -> int:
    """Record until Ctrl-C / SIGTERM. Exit status 0, or 2 when OUT cannot be created, 1 when
    writing fails later."""
    unknown = [t for t in topic_names if t not in STACK_TOPICS]
    if unknown:
        print(f"treeworld bag record: error: unknown topic {unknown[0]} (known: "
              f"{', '.join(STACK_TOPICS)})", file=sys.stderr)
        return 2
    try:
        bag = BagWriter(out, storage)
    except Exception as error:
        print(f"treeworld bag record: error: cannot create bag {out}: {error}", file=sys.stderr)
        return 2
    rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)   # Ctrl-C is ours
    node = Recorder(bag, topic_names)
    code = 0
    try:
        with StopRequests() as stop:
            while True:
                rclpy.spin_once(node, timeout_sec=0.1)
                stop.check()
    except KeyboardInterrupt:
        pass
    except RecordingFailed as error:
        print(f"treeworld bag record: error: {error}; recording stopped", file=sys.stderr)
        code = 1
    finally:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="treeworld bag record", description=__doc__)
    add_record_options(parser)
    args = parser.parse_args(argv)
    return record(args.out, args.topics, args.storage)


if __name__ == "__main__":
    raise SystemExit(main())
