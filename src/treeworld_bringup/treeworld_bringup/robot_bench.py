"""``treeworld bench robot``: the paths a real robot takes, against the simulator's own.

A camera instead of the smell, a differential drive whose odometry integrates a noisy heading
instead of holonomic moves: each localizer's ATE on the same paths and seeds, and what the
camera encoder costs per step.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spiral_controller import make_controller
from tem_localizer.camera import CameraEncoder, RawImage, decode_raw
from treeworld_bringup import plots
from treeworld_bringup.benchmarks import SLAM_MIN_SIGMA, one_thread_each
from treeworld_bringup.runner import run, scene_of
from treeworld_bringup.settings import Settings
from treeworld_sim import TreeWorld

SCENARIOS = ("circle", "random")
# (motion, heading noise in radians per moving step)
MOTIONS = (("holonomic", 0.0), ("diff_drive", 0.0), ("diff_drive", 0.002),
           ("diff_drive", 0.01))
OBSERVATIONS = ("smell", "camera")
# slam-heading: slam fitting odometry's heading (heading_window_steps = HEADING_WINDOW)
LOCALIZERS = ("deadreckoning", "tem2d", "slam", "slam-heading")
HEADING_WINDOW = 100
SEEDS = (0, 1, 2)
NOISE = 1.0
STEPS = 2000
ENCODERS = ("pixels", "mobilenet")


def robot_settings(scenario: str, motion: str, heading_noise: float, observation: str,
                   localizer: str, seed: int, steps: int) -> Settings:
    defaults = Settings()
    world = dataclasses.replace(defaults.world, seed=seed, steps=steps, odometry_noise=NOISE,
                                motion=motion, heading_noise=heading_noise,
                                camera=observation == "camera")
    controller = dataclasses.replace(defaults.controller, controller=scenario, seed=seed,
                                     motion=motion)
    locator = dataclasses.replace(
        defaults.localizer, method=localizer.split("-")[0], device="cpu", seed=seed,
        observation=observation, odometry_sigma=max(NOISE, SLAM_MIN_SIGMA),
        heading_window_steps=HEADING_WINDOW if localizer == "slam-heading" else 0)
    return Settings(world, controller, locator)


def robot_case(case: tuple) -> dict:
    scenario, (motion, heading_noise), observation, localizer, seed, steps = case
    recording, _ = run(robot_settings(scenario, motion, heading_noise, observation, localizer,
                                      seed, steps), progress=False)
    error = np.linalg.norm(recording.estimates - recording.true_positions, axis=1)
    return {"scenario": scenario, "motion": motion, "heading_noise": heading_noise,
            "observation": observation, "localizer": localizer, "seed": seed,
            "ate": float(np.sqrt(np.mean(error**2)))}


def encoder_cost(repeats: int = 300) -> dict:
    """Milliseconds per step to decode a 16 x 128 rgb8 frame and encode it (D = 1024), with
    PyTorch's own threads on every core: median and p99 of ``repeats`` single frames."""
    world = TreeWorld(dataclasses.replace(Settings().world, camera=True))
    view = world.observe().camera
    frame = RawImage("rgb8", *view.shape[:2], 3 * view.shape[1], False, view.tobytes())
    costs = {}
    for backbone in ENCODERS:
        encoder = CameraEncoder(Settings().localizer.sensory_embedding_dim, backbone)
        times = []
        for repeat in range(repeats + 10):
            started = time.perf_counter()
            encoder(decode_raw(frame)[None], np.array([0.01 * repeat]))
            times.append(time.perf_counter() - started)
        times = 1e3 * np.array(times[10:])          # the first calls warm the caches up
        costs[backbone] = {"median_ms": float(np.median(times)),
                           "p99_ms": float(np.percentile(times, 99))}
    return costs


def camera_views(path: Path, seed: int = 0, steps=(0, 25, 50, 75)) -> None:
    """The differential-drive circle's first lap: where the agent was and what it saw."""
    settings = robot_settings("circle", "diff_drive", 0.0, "camera", "deadreckoning", seed,
                              max(steps) + 1)
    world, controller = TreeWorld(settings.world), make_controller(settings.controller)
    views = []
    for step in range(max(steps) + 1):
        record = world.observe()
        if step in steps:
            views.append((step, record.position, record.heading, record.camera))
        world.drive(*controller(step))
    plots.plot_camera_views(path, scene_of(world), views,
                            f"the circle on a differential drive, seed {seed}")


def robot(out: Path, steps: int = STEPS, seeds=SEEDS, scenarios=SCENARIOS,
          workers: int | None = None) -> dict:
    """The encoder's cost, then every case; OUT/robot.json, robot.md and camera.png (what
    the camera sees along the circle)."""
    out.mkdir(parents=True, exist_ok=True)
    costs = encoder_cost()           # first, alone: the cases would share its cores
    camera_views(out / "camera.png")
    cases = list(itertools.product(scenarios, MOTIONS, OBSERVATIONS, LOCALIZERS, seeds,
                                   [steps]))
    workers = workers or max(1, min(len(os.sched_getaffinity(0)), len(cases)))
    with ProcessPoolExecutor(max_workers=workers, initializer=one_thread_each) as pool:
        results = list(tqdm(pool.map(robot_case, cases), total=len(cases), desc="robot",
                            unit="run"))
    report = {"encoder_ms": costs, "cases": results}
    (out / "robot.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "robot.md").write_text(robot_tables(report) + "\n")
    return report


def robot_tables(report: dict) -> str:
    """Mean ATE over the seeds per (scenario, motion, heading noise) row and (observation,
    localizer) column; then the encoder's cost."""
    groups: dict[tuple, list[float]] = {}
    for r in report["cases"]:
        key = (r["scenario"], r["motion"], r["heading_noise"], r["observation"], r["localizer"])
        groups.setdefault(key, []).append(r["ate"])
    columns = [(o, loc) for o in OBSERVATIONS for loc in LOCALIZERS
               if any(k[3:] == (o, loc) for k in groups)]
    lines = ["| path | motion | heading noise | " +
             " | ".join(f"{loc} ({o})" for o, loc in columns) + " |",
             "|" + " --- |" * (len(columns) + 3)]
    for scenario, motion, heading_noise in sorted(
            {k[:3] for k in groups}, key=lambda k: (SCENARIOS.index(k[0]), MOTIONS.index(k[1:]))):
        cells = [f"{np.mean(groups[(scenario, motion, heading_noise, o, loc)]):.1f}"
                 if (scenario, motion, heading_noise, o, loc) in groups else "-"
                 for o, loc in columns]
        lines.append(f"| {scenario} | {motion} | {heading_noise:g} | " + " | ".join(cells) +
                     " |")
    lines += ["", "| camera encoder (16 x 128 x 3 -> 1024) | median ms/step | p99 ms/step |",
              "| --- | --- | --- |"]
    lines += [f"| {name} | {cost['median_ms']:.2f} | {cost['p99_ms']:.2f} |"
              for name, cost in report["encoder_ms"].items()]
    return "\n".join(lines)
