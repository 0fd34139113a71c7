"""Run Tree World in-process, no ROS: world, controller and an optional localizer in a loop.

The loop is the contract the ROS graph reproduces: at each step the world senses (and may
eat), the localizer is told the odometry displacement since the last step and the smell (or
the camera's view), then the controller's command moves the agent.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spiral_controller import make_controller, senses
from tem_localizer import Localizer
from tem_localizer.camera import RawImage, decode_raw
from tem_localizer.stream import odometry_motion
from treeworld_bringup.recording import Recording, Scene
from treeworld_bringup.settings import Settings, forager_recalls
from treeworld_sim import TreeWorld


def camera_pixels(view: np.ndarray) -> np.ndarray:
    """The simulator's rgb8 view as the localizer node decodes it from its message."""
    height, width, _ = view.shape
    return decode_raw(RawImage("rgb8", height, width, 3 * width, False, view.tobytes()))


def scene_of(world: TreeWorld) -> Scene:
    labels = [f"{name} ({kind})" for name, kind in zip(world.tree_names, world.tree_types)]
    return Scene(world.tree_positions.copy(), world.tree_poisonous.copy(), labels)


def world_summary(world: TreeWorld) -> dict:
    return {
        "total_movement": world.total_movement,
        "final_distance_from_origin": float(np.hypot(*world.position)),
        "health": world.health,
        "fruit_eaten": world.fruit_eaten,
        "poisonous_fruit_eaten": world.poisonous_fruit_eaten,
    }


def localizer_summary(localizer: Localizer) -> dict:
    counters = localizer.counters
    summary = {"skipped": dict(counters.skipped),
               "skipped_total": sum(counters.skipped.values()),
               "lost_count": counters.lost, "clipped_actions": counters.clipped_actions,
               "odometry_resets": counters.odometry_resets}
    if localizer.slam is not None:
        summary["slam"] = slam_summary(localizer.slam)
        if localizer.started_in_a_loaded_map:
            # None: the map never explained where the agent was
            summary["slam"]["relocalized_after_steps"] = localizer.relocalized_after
            summary["slam"]["relocalization_unexplained"] = localizer.relocalization_unexplained
            summary["slam"]["relocalization_retracted"] = localizer.relocalization_retracted
    return summary


def save_map_at_end(localizer: Localizer, file: Path) -> dict:
    """Write the map; what went wrong, for the summary (the run's report is still written)."""
    try:
        localizer.save_map(file)
    except OSError as error:        # a full disk
        return {"map_error": f"could not save the map: {error}"}
    return {}


def slam_summary(slam) -> dict:
    """Loop closures, optimizer and map figures of a slam localizer."""
    counters = slam.counters
    return {"closures_accepted": dict(counters.accepted),
            "closures_rejected": dict(counters.rejected),
            "closures_outweighed": counters.outweighed,
            "closure_searches": counters.searched,
            "optimizer_failures": counters.optimizer_failures,
            "optimizer_seconds_total": counters.optimizer_seconds_total,
            "keyframes": slam.places.keyframes, "places": len(slam.places),
            "map_bytes": slam.places.nbytes}


def forget_retracted_places(localizer: Localizer, places: list[int | None]) -> None:
    """A fix in the loaded map was taken back, and the places mapped since with it: the steps
    that named them name none (their indices are the next session's)."""
    first = localizer.slam.session_start
    places[:] = [None if place is not None and place >= first else place for place in places]


def corrected_estimates(localizer: Localizer, estimates: np.ndarray,
                        places: list[int | None]) -> np.ndarray | None:
    """slam: each step's estimate as the corrected map has it now (a step without a place,
    e.g. a skipped one, keeps its online estimate); None for the other methods."""
    if localizer.slam is None:
        return None
    corrected = estimates.copy()
    rows = [row for row, place in enumerate(places) if place is not None]
    if rows:
        corrected[rows] = localizer.corrected_positions([places[row] for row in rows])
    return corrected


def run(settings: Settings, use_localizer: bool = True, belief_stride: int = 0,
        progress: bool = True, load_map: Path | None = None, save_map: Path | None = None,
        steer_by_truth: bool = False) -> tuple[Recording, Scene]:
    """Run ``settings.world.steps`` steps. ``belief_stride`` > 0 keeps every n-th belief.
    slam: ``load_map`` starts in a saved map (the agent first finds itself in it),
    ``save_map`` writes the map at the end (why it could not: ``summary["map_error"]``).
    ``steer_by_truth`` gives a sensing controller (the
    forager) the true position instead of the estimate: an upper bound for benchmarks only."""
    world = TreeWorld(settings.world)
    controller = make_controller(settings.controller)
    sensing = senses(controller)
    localizer = Localizer(settings.localizer) if use_localizer else None
    # slam corrects its past: the forager's memory follows. As on the ROS graph, the anchors
    # it names after deciding step t - 1 are placed with the map after step t - 1.
    recalls = sensing and use_localizer and forager_recalls(settings) and not steer_by_truth
    requested, recalled = [], None
    if load_map is not None:
        localizer.load_map(load_map)
    steps, period = settings.world.steps, settings.world.step_period
    true_positions, healths = np.zeros((steps, 2)), np.zeros(steps)
    estimates = np.zeros((steps, 2)) if localizer else None
    losses = np.full(steps, np.nan) if localizer else None
    frames, origins, places = [], [], []
    last_odometry = world.odometry_position.copy()
    started = time.perf_counter()
    done = 0
    for step in tqdm(range(steps), desc="steps", unit="step", disable=not progress,
                     mininterval=0.5):
        if not world.alive:
            break
        record = world.observe()
        true_positions[step], healths[step] = record.position, record.health
        if recalls and requested:
            known = [anchor for anchor in requested if places[anchor] is not None]
            recalled = known, localizer.corrected_positions([places[a] for a in known])
        if localizer is not None:
            observation = record.smell if localizer.camera is None else \
                localizer.encode_camera(camera_pixels(record.camera), record.odometry_yaw)
            motion = odometry_motion(localizer, record.odometry_position - last_odometry,
                                     settings.localizer.max_odometry_jump)
            estimate = localizer.step(motion, observation)
            if estimate.retracted:
                forget_retracted_places(localizer, places)
            if estimate.skipped is None:     # a skipped step's displacement is kept for later
                last_odometry = record.odometry_position
            estimates[step], losses[step] = estimate.mean, estimate.loss
            places.append(estimate.place)
            if belief_stride and estimate.belief is not None and step % belief_stride == 0:
                frames.append(estimate.belief.float().cpu().numpy())
                origins.append(estimate.origin)
        if sensing:
            # as on the ROS graph, the command for this step uses the estimate of the last
            # (the true pose of the last, for the upper bound)
            before = true_positions if steer_by_truth else estimates
            estimate_before = before[step - 1] if before is not None and step > 0 else None
            anchor = None
            if recalls and step > 0:
                if recalled is not None:
                    controller.reanchor(*recalled)
                anchor = step - 1 if places[step - 1] is not None else None
            # the smell as the graph carries it (float32), so both runs decide alike
            controller.observe(estimate_before, record.smell.astype(np.float32), record.health,
                               anchor)
        if settings.world.motion == "diff_drive":
            world.drive(*controller(step))
        else:
            world.move(*controller(step))
        if recalls:
            requested, recalled = controller.anchors(), None
        done += 1
    elapsed = time.perf_counter() - started
    summary = world_summary(world) | {"elapsed_seconds": elapsed,
                                      "steps_per_second": done / max(elapsed, 1e-9)}
    corrected = None
    if sensing:
        summary["forager"] = dataclasses.asdict(controller.counters)
    if localizer is not None:
        summary |= localizer_summary(localizer)
        corrected = corrected_estimates(localizer, estimates[:done], places)
    if save_map is not None:
        summary |= save_map_at_end(localizer, save_map)
    recording = Recording(
        timestamps=np.arange(done) * period, true_positions=true_positions[:done],
        estimates=None if estimates is None else estimates[:done], corrected=corrected,
        losses=None if losses is None else losses[:done],
        belief_frames=np.stack(frames) if frames else None,
        belief_origins=np.array(origins) if frames else None, belief_stride=belief_stride or 4,
        grid_extent=settings.localizer.extent, summary=summary, health=healths[:done])
    return recording, scene_of(world)
