"""Finished runs read back for ``treeworld eval``: a run folder (TUM files) or a bag."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from treeworld_bringup.bags import BagReader, pose_xy, stamp_nanoseconds
from treeworld_bringup.evaluation import associate, read_tum
from treeworld_bringup.recording import (
    NO_TREES,
    Recording,
    RunFolderError,
    Scene,
    belief_from_occupancy,
    gif_stride,
    scene_from_json,
    scene_from_markers,
)
from treeworld_schema import diagnostics as keys
from treeworld_schema import topics
from treeworld_schema.interface import status_values


def load_run_folder(folder: Path) -> tuple[Recording, Scene, dict]:
    """ground_truth.tum + estimate.tum (associated by timestamp), scene.json and metrics.json
    when present."""
    paths = {name: folder / f"{name}.tum" for name in ("ground_truth", "estimate")}
    for path in paths.values():
        if not path.is_file():
            raise RunFolderError(f"{path}: missing (a run folder needs ground_truth.tum and "
                                 "estimate.tum)")
    try:
        truth, estimate = read_tum(paths["ground_truth"]), read_tum(paths["estimate"])
        timestamps, truth_xy, estimate_xy = associate(truth, estimate)
    except Exception as error:          # evo raises its own kinds for unreadable files
        raise RunFolderError(f"{folder}: cannot read its TUM files ({error})") from None
    if len(timestamps) == 0:
        raise RunFolderError(f"{folder}: no estimate shares a timestamp with the ground truth")
    scene_file, metrics_file = folder / "scene.json", folder / "metrics.json"
    scene = scene_from_json(json.loads(scene_file.read_text())) if scene_file.is_file() \
        else NO_TREES
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    recording = Recording(timestamps=timestamps, true_positions=truth_xy, estimates=estimate_xy)
    return recording, scene, metrics


def load_run_bag(path: Path, gif: bool = False, salvage: bool = False
                 ) -> tuple[Recording, Scene, dict]:
    """Ground truth and the localizer's poses (and trees, losses, and with ``gif`` belief
    frames for belief.gif) from a bag; with ``salvage``, from its intact part."""
    truth, estimates, beliefs, losses = {}, {}, {}, {}
    scene, grid_info = NO_TREES, None
    with BagReader(path, salvage) as bag:
        damage = bag.damage
        bag.require(topics.GROUND_TRUTH, "nav_msgs/msg/Odometry")
        bag.require(topics.POSE, "geometry_msgs/msg/PoseWithCovarianceStamped")
        optional = [t for t in (topics.BELIEF, topics.TREES, topics.DIAGNOSTICS) if bag.has(t)]
        for topic in optional:
            bag.require(topic, bag.topics[topic][0])
        belief_stride = gif_stride(bag.topics[topics.POSE][1]) if gif else 0
        read = 0                         # the beliefs read so far: one a step, in order
        for message, decoded in bag.decoded([topics.GROUND_TRUTH, topics.POSE, *optional]):
            if message.topic == topics.GROUND_TRUTH:
                truth[stamp_nanoseconds(decoded)] = pose_xy(decoded)
            elif message.topic == topics.POSE:
                estimates[stamp_nanoseconds(decoded)] = pose_xy(decoded)
            elif message.topic == topics.BELIEF:
                grid_info = decoded.info
                if belief_stride and read % belief_stride == 0:
                    beliefs[stamp_nanoseconds(decoded)] = (
                        np.array(decoded.data, np.int8),
                        (grid_info.origin.position.x, grid_info.origin.position.y))
                read += 1
            elif message.topic == topics.TREES:
                scene = scene_from_markers(decoded)
            else:
                values = status_values(decoded, keys.LOCALIZER)
                if values is not None and values.get(keys.LOSS, "nan") != "nan":
                    losses[stamp_nanoseconds(decoded)] = float(values[keys.LOSS])
    stamps = sorted(set(truth) & set(estimates))
    if not stamps:
        raise RunFolderError(f"{path}: no /tem/pose shares a stamp with /ground_truth/odom")
    recording = Recording(
        timestamps=np.array(stamps) * 1e-9, true_positions=np.stack([truth[s] for s in stamps]),
        estimates=np.stack([estimates[s] for s in stamps]),
        losses=np.array([losses.get(s, np.nan) for s in stamps]), belief_stride=belief_stride)
    # each kept belief at its own row: a real-time run's steps have gaps, a salvaged bag's too
    rows = [row for row, stamp in enumerate(stamps) if stamp in beliefs]
    if grid_info is not None and rows:
        shown = [beliefs[stamps[row]] for row in rows]
        recording.belief_frames = np.stack([belief_from_occupancy(data, grid_info.width)
                                            for data, _ in shown])
        recording.belief_origins = np.array([origin for _, origin in shown])
        recording.belief_rows = np.array(rows)
        recording.grid_extent = grid_info.resolution * (grid_info.width - 1)
    return recording, scene, {"salvaged": damage} if damage else {}
