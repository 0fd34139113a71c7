"""``treeworld bag play``: publish a bag's messages as they were recorded.

At the recorded pace (``rate`` times it), or in lockstep: each step's /odom and /smell are
published only once the localizer has reported handling the previous step on its progress
topic, as fast as it goes. Messages keep their original stamps; when the bag has no /clock, one is
published from the message stamps so nodes with use_sim_time follow the bag.
"""
from __future__ import annotations

import time
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock
from tqdm import tqdm

from treeworld_bringup.bags import (
    STACK_TOPICS,
    BagError,
    BagReader,
    message_class,
    stamp_nanoseconds,
)
from treeworld_bringup.interrupts import StopRequests
from treeworld_bringup.recorder import topic_qos
from treeworld_schema import interface as io
from treeworld_schema.ros import init_ros


class PlaybackStalled(RuntimeError):
    """In lockstep, the localizer stopped consuming steps."""


class Player(Node):
    def __init__(self, connections: dict[str, str], context: Context | None = None):
        super().__init__("treeworld_bag_player", context=context)
        self.publishers_by_topic = {
            topic: self.create_publisher(message_class(msgtype), topic, topic_qos(topic))
            for topic, msgtype in connections.items()}
        self.clock = self.create_publisher(Clock, io.CLOCK, io.step_qos()) \
            if io.CLOCK not in connections else None
        self.handled = -1      # the stamp of the newest step the localizer has handled
        self.sent = -1         # the stamp of the newest message published
        self.create_subscription(Clock, io.LOCALIZER_PROGRESS, self.on_progress,
                                 io.latest_qos())

    def on_progress(self, message: Clock) -> None:
        stamp = io.stamp_nanoseconds(message.clock)
        # beyond anything sent: the localizer's report from before this playback (the same
        # bag played before, kept for late joiners), which would wave every step through
        if stamp <= self.sent:
            self.handled = max(self.handled, stamp)


def play(path: Path, rate: float = 1.0, lockstep: bool = False,
         topics_wanted: list[str] | None = None, stall_seconds: float = 60.0,
         progress: bool = True, salvage: bool = False) -> int:
    """Publish the bag (with ``salvage``, its intact part); returns the number of messages
    published."""
    with BagReader(path, salvage) as bag:
        selected = topics_wanted or list(bag.topics)
        for topic in selected:
            bag.require(topic, STACK_TOPICS.get(topic, bag.topics.get(topic, ("?",))[0]))
        if lockstep:
            for topic in (io.ODOM, io.SMELL):
                if topic not in selected:
                    raise BagError(f"{path}: lockstep needs topic {topic} to be played")
        init_ros([], signal_handler_options=SignalHandlerOptions.NO)   # Ctrl-C is ours
        player = Player({t: bag.topics[t][0] for t in selected})
        try:
            with StopRequests() as stop:
                return _publish(player, bag, selected, rate, lockstep, stall_seconds, progress,
                                stop)
        finally:
            player.destroy_node()
            rclpy.shutdown()


def _publish(player: Player, bag: BagReader, selected: list[str], rate: float, lockstep: bool,
             stall_seconds: float, progress: bool, stop: StopRequests) -> int:
    published, last_clock, started, first = 0, -1, time.monotonic(), None
    stamps_seen: dict[int, set[str]] = {}        # stamp -> which of /odom, /smell went out
    total = sum(bag.topics[t][1] for t in selected)
    for message in tqdm(bag.messages(selected), total=total, desc="playing", unit="msg",
                        disable=not progress, mininterval=0.5):
        first = message.timestamp if first is None else first
        if not lockstep:
            delay = started + (message.timestamp - first) * 1e-9 / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        stamp = None
        if player.clock is not None or lockstep:
            decoded = message.decode()
            stamp = stamp_nanoseconds(decoded) if hasattr(decoded, "header") else None
        if stamp is not None:
            player.sent = max(player.sent, stamp)
        if player.clock is not None and stamp is not None and stamp > last_clock:
            player.clock.publish(Clock(clock=io.nanoseconds_stamp(stamp)))
            last_clock = stamp
        player.publishers_by_topic[message.topic].publish(message.rawdata)
        published += 1
        if lockstep and message.topic in (io.ODOM, io.SMELL):
            seen = stamps_seen.setdefault(stamp, set())
            seen.add(message.topic)
            if len(seen) == 2:
                del stamps_seen[stamp]
                _wait_handled(player, stamp, stall_seconds, stop)
        rclpy.spin_once(player, timeout_sec=0)
        stop.check()
    return published


def _wait_handled(player: Player, stamp: int, stall_seconds: float,
                  stop: StopRequests) -> None:
    deadline = time.monotonic() + stall_seconds
    while player.handled < stamp:
        rclpy.spin_once(player, timeout_sec=0.05)
        stop.check()
        if time.monotonic() > deadline:
            raise PlaybackStalled(f"the localizer has not reported the step stamped "
                                  f"{stamp * 1e-9:.3f} s within {stall_seconds:.0f} s; is "
                                  "tem_localizer running?")
