"""``treeworld replay``: a recorded /odom + /smell (or camera) stream through a localizer,
in-process.

The same SensorStream as the ROS node pairs the messages, so replaying a bag of a live run
with the run's parameters reproduces its beliefs exactly. Any bag with /odom and the
observation's topic works, e.g. one recorded on a real robot with a remap.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from tem_localizer import Localizer, LocalizerConfig
from tem_localizer.camera import CompressedFrame, RawImage
from tem_localizer.stream import SensorStream, StreamEvent
from treeworld_bringup.bags import (
    STACK_TOPICS,
    BagError,
    BagReader,
    pose_xy,
    stamp_nanoseconds,
)
from treeworld_bringup.recording import (
    NO_TREES,
    Recording,
    Scene,
    gif_stride,
    scene_from_markers,
)
from treeworld_bringup.runner import (
    corrected_estimates,
    forget_retracted_places,
    localizer_summary,
    save_map_at_end,
)
from treeworld_bringup.settings import Settings
from treeworld_schema import topics

ODOMETRY = "nav_msgs/msg/Odometry"


def observation_topic(config: LocalizerConfig) -> str:
    if config.observation == "smell":
        return topics.SMELL
    return topics.CAMERA if config.camera_transport == "raw" else topics.CAMERA_COMPRESSED


def replay_events(bag: BagReader, localizer: Localizer, config: LocalizerConfig,
                  on_other=None) -> Iterator[StreamEvent]:
    """Every step and rejection the bag's /odom and observations (/smell, or the camera's
    topic) produce, in recorded order. ``on_other(topic, message)`` sees the bag's ground
    truth and trees."""
    observation = observation_topic(config)
    bag.require(topics.ODOM, ODOMETRY)
    bag.require(observation, STACK_TOPICS[observation])
    extra = [t for t, kind in ((topics.GROUND_TRUTH, ODOMETRY),
                               (topics.TREES, "visualization_msgs/msg/MarkerArray"))
             if bag.has(t)]
    for topic in extra:
        bag.require(topic, bag.topics[topic][0])
    stream = SensorStream(localizer, "odom", config.odom_frame, config.smell_frame,
                          max_odometry_jump=config.max_odometry_jump,
                          camera_frame=config.camera_frame)
    for message, decoded in bag.decoded([topics.ODOM, observation, *extra]):
        events = []
        if message.topic == topics.ODOM:
            q = decoded.pose.pose.orientation
            events = stream.odometry(stamp_nanoseconds(decoded), decoded.header.frame_id,
                                     pose_xy(decoded), (q.x, q.y, q.z, q.w))
        elif message.topic == topics.SMELL:
            events = stream.smell(stamp_nanoseconds(decoded), decoded.header.frame_id,
                                  RawImage.of(decoded))
        elif message.topic == topics.CAMERA:
            events = stream.camera(stamp_nanoseconds(decoded), decoded.header.frame_id,
                                   RawImage.of(decoded))
        elif message.topic == topics.CAMERA_COMPRESSED:
            events = stream.camera(stamp_nanoseconds(decoded), decoded.header.frame_id,
                                   CompressedFrame.of(decoded))
        elif on_other is not None:
            on_other(message.topic, decoded)
        yield from events


def replay(path: Path, settings: Settings, gif: bool = False, salvage: bool = False,
           load_map: Path | None = None, save_map: Path | None = None
           ) -> tuple[Recording, Scene]:
    """Replay ``path`` through a localizer with ``settings.localizer``, keeping belief frames
    for belief.gif with ``gif``; with ``salvage``, a damaged bag's intact part (what was lost
    is listed in the summary). slam: ``load_map`` starts in a saved map (the agent first finds
    itself in it), ``save_map`` writes the map at the end: a map made offline from a
    recording."""
    config = settings.localizer
    localizer = Localizer(config)
    if load_map is not None:
        localizer.load_map(load_map)
    truth: dict[int, np.ndarray] = {}
    scene = [NO_TREES]

    def on_other(topic: str, message) -> None:
        if topic == topics.GROUND_TRUTH:
            truth[stamp_nanoseconds(message)] = pose_xy(message)
        else:
            scene[0] = scene_from_markers(message)

    stamps, estimates, losses, frames, origins, places = [], [], [], [], [], []
    with BagReader(path, salvage) as bag:
        damage = bag.damage
        belief_stride = gif_stride(bag.topics.get(topics.ODOM, ("", 0))[1]) if gif else 0
        for event in replay_events(bag, localizer, config, on_other):
            if event.step.skipped is not None:
                continue
            if event.step.retracted:
                forget_retracted_places(localizer, places)
            if belief_stride and event.step.belief is not None and \
                    len(stamps) % belief_stride == 0:
                frames.append(event.step.belief.float().cpu().numpy())
                origins.append(event.step.origin)
            stamps.append(event.stamp)
            estimates.append(event.step.mean)
            losses.append(event.step.loss)
            places.append(event.step.place)
    if not stamps:
        skipped = ", ".join(f"{k}: {n}" for k, n in localizer.counters.skipped.items())
        raise BagError(f"{path}: no step could be used ({skipped or 'no /odom + /smell pairs'})")
    summary = localizer_summary(localizer) | ({"salvaged": damage} if damage else {})
    if save_map is not None:
        summary |= save_map_at_end(localizer, save_map)
    have_truth = all(s in truth for s in stamps)
    estimates = np.stack(estimates)
    recording = Recording(
        timestamps=np.array(stamps) * 1e-9,
        true_positions=np.stack([truth[s] for s in stamps]) if have_truth else None,
        estimates=estimates, losses=np.array(losses),
        corrected=corrected_estimates(localizer, estimates, places),
        belief_frames=np.stack(frames) if frames else None,
        belief_origins=np.array(origins) if frames else None,
        belief_stride=belief_stride, grid_extent=config.extent,
        summary=summary)
    return recording, scene[0]
