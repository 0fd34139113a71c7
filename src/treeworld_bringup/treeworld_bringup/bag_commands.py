"""``treeworld bag record|play|info|export``: rosbag2 bags from the command line."""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from treeworld_bringup.bags import POSE_TYPES, BagError, BagReader, pose_tum_row
from treeworld_bringup.player import play
from treeworld_bringup.recorder import add_record_options, record_as_parsed


def command_bag_play(args: argparse.Namespace) -> int:
    count = play(args.bag, rate=args.rate, lockstep=args.lockstep, topics_wanted=args.topics,
                 salvage=args.salvage)
    print(f"played {count} messages from {args.bag}")
    return 0


def command_bag_info(args: argparse.Namespace) -> int:
    with BagReader(args.bag, args.salvage) as bag:
        intact = "intact part: " if bag.damage else "every CRC checked: "
        print(f"bag {args.bag}: {intact}{sum(n for _, n in bag.topics.values())} messages, "
              f"{bag.duration_seconds:.3f} s")
        for topic, (msgtype, count) in sorted(bag.topics.items()):
            print(f"  {topic:24s} {msgtype:45s} {count:8d}")
    return 0


def command_bag_export(args: argparse.Namespace) -> int:
    """One TUM file per pose topic (Odometry, PoseStamped, PoseWithCovarianceStamped)."""
    rows: dict[str, list] = {}
    with BagReader(args.bag, args.salvage) as bag:
        pose_topics = [t for t, (kind, _) in bag.topics.items() if kind in POSE_TYPES]
        if not pose_topics:
            raise BagError(f"{args.bag}: no pose topic ({', '.join(POSE_TYPES)}) to export")
        for topic in pose_topics:
            bag.require(topic, POSE_TYPES)
        for message, decoded in bag.decoded(pose_topics):
            rows.setdefault(message.topic, []).append(pose_tum_row(decoded))
    args.tum.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{args.tum.name}.partial-", dir=args.tum.parent))
    try:
        for topic, table in rows.items():
            name = topic.strip("/").replace("/", "_") + ".tum"
            np.savetxt(staging / name, np.asarray(table), fmt="%.9f",
                       header=f"{topic}: t x y z qx qy qz qw", comments="# ")
        args.tum.mkdir(exist_ok=True)
        for item in staging.iterdir():
            os.replace(item, args.tum / item.name)
            print(f"wrote {args.tum / item.name}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return 0


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_salvage_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--salvage", action="store_true",
                        help="read what is intact of a damaged bag (skip chunks that fail "
                        "their CRC, stop at an unreadable record) instead of refusing it")


def add_bag_commands(commands, parser_class: type[argparse.ArgumentParser]) -> None:
    """The ``bag`` command and its subcommands, on the ``treeworld`` subparsers."""
    bag = commands.add_parser("bag", help="record, play, inspect and export rosbag2 bags")
    bag_commands = bag.add_subparsers(dest="bag_command", required=True, parser_class=parser_class)
    bag_record = bag_commands.add_parser("record", help="record the stack's topics")
    add_record_options(bag_record)
    bag_record.set_defaults(handler=record_as_parsed)
    bag_play = bag_commands.add_parser("play", help="publish a bag's messages")
    bag_play.add_argument("bag", type=Path)
    pace = bag_play.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=_positive, default=1.0, help="times the recorded speed")
    pace.add_argument("--lockstep", action="store_true",
                      help="each step once the localizer has consumed the previous one")
    bag_play.add_argument("--topics", nargs="+", help="topics to play (default: all)")
    add_salvage_option(bag_play)
    bag_play.set_defaults(handler=command_bag_play)
    bag_info = bag_commands.add_parser("info", help="topics, types, counts, duration")
    bag_info.add_argument("bag", type=Path)
    add_salvage_option(bag_info)
    bag_info.set_defaults(handler=command_bag_info)
    bag_export = bag_commands.add_parser("export", help="TUM files of the pose topics")
    bag_export.add_argument("bag", type=Path)
    bag_export.add_argument("--tum", type=Path, required=True, help="output folder")
    add_salvage_option(bag_export)
    bag_export.set_defaults(handler=command_bag_export)
