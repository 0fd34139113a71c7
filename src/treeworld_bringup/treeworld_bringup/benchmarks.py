"""``treeworld bench accuracy``: every localizer on every kind of path at every odometry noise.

Scenarios: circle, spiral, random (our controllers) and ``ou-walk``, a path from another
motion model (an Ornstein-Uhlenbeck velocity process kept inside a disc, as rat-motion
simulators use), written to a path file and followed by the path controller. Localizers:
dead reckoning, tem2d (the design document's average mixing), tem2d with affinity mixing, and
slam (told the odometry noise it runs with). ATE is unaligned: the estimate starts at the true
origin, so an offset is a real error. Runs in parallel processes; each run is deterministic.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from treeworld_bringup.runner import run
from treeworld_bringup.settings import Settings

SCENARIOS = ("circle", "spiral", "random", "ou-walk")
NOISES = (0.0, 0.5, 1.0, 2.0)
LOCALIZERS = ("deadreckoning", "tem2d", "tem2d-affinity", "slam")
SEEDS = (0, 1, 2)
STEPS = 2000
SLAM_MIN_SIGMA = 0.05        # what slam is told for exact odometry


def ou_walk(seed: int, steps: int, speed: float = 4.0, time_constant: float = 8.0,
            radius: float = 350.0) -> np.ndarray:
    """(steps + 1, 2) positions of an Ornstein-Uhlenbeck velocity walk from the origin: the
    velocity relaxes to zero with ``time_constant`` steps under random forcing of mean
    ``speed`` per step, and a wall force pushes back inside ``radius``."""
    generator = np.random.default_rng(10_000 + seed)
    decay = math.exp(-1.0 / time_constant)
    forcing = speed * math.sqrt(1 - decay**2)
    position, velocity = np.zeros(2), np.array([speed, 0.0])
    path = [position.copy()]
    for _ in range(steps):
        velocity = decay * velocity + forcing * generator.standard_normal(2)
        distance = float(np.hypot(*position))
        if distance > radius:
            velocity -= 0.2 * (distance - radius) * position / distance
        position = position + velocity
        path.append(position.copy())
    return np.asarray(path)


def write_path(positions: np.ndarray, file: Path, step_period: float) -> Path:
    times = np.arange(len(positions)) * step_period
    np.savetxt(file, np.column_stack([times, positions]), delimiter=",", header="t,x,y",
               comments="")
    return file


def case_settings(scenario: str, noise: float, localizer: str, seed: int, steps: int,
                  path_folder: Path) -> Settings:
    defaults = Settings()
    world = dataclasses.replace(defaults.world, seed=seed, odometry_noise=noise, steps=steps)
    if scenario == "ou-walk":
        path = write_path(ou_walk(seed, steps), path_folder / f"ou-walk-{seed}.csv",
                          world.step_period)
        controller = dataclasses.replace(defaults.controller, controller="path",
                                         path_file=str(path), seed=seed)
    else:
        controller = dataclasses.replace(defaults.controller, controller=scenario, seed=seed)
    method = localizer.split("-")[0]
    locator = dataclasses.replace(
        defaults.localizer, method=method, device="cpu", seed=seed,
        mixing="affinity" if localizer == "tem2d-affinity" else "average",
        odometry_sigma=max(noise, SLAM_MIN_SIGMA))
    return Settings(world, controller, locator)


def _one_thread_each() -> None:
    """A worker per core: PyTorch's own threads would only fight over the same cores."""
    import torch

    torch.set_num_threads(1)


def run_case(case: tuple) -> dict:
    scenario, noise, localizer, seed, steps, path_folder = case
    settings = case_settings(scenario, noise, localizer, seed, steps, Path(path_folder))
    recording, _ = run(settings, progress=False)
    error = np.linalg.norm(recording.estimates - recording.true_positions, axis=1)
    result = {"scenario": scenario, "noise": noise, "localizer": localizer, "seed": seed,
              "ate": float(np.sqrt(np.mean(error**2))), "max_error": float(error.max()),
              "steps_per_second": recording.summary["steps_per_second"]}
    if recording.corrected is not None:
        corrected = np.linalg.norm(recording.corrected - recording.true_positions, axis=1)
        result["ate_corrected"] = float(np.sqrt(np.mean(corrected**2)))
    if "slam" in recording.summary:
        result["closures"] = recording.summary["slam"]["closures_accepted"]
    return result


def accuracy(out: Path, steps: int = STEPS, seeds=SEEDS, scenarios=SCENARIOS, noises=NOISES,
             localizers=LOCALIZERS, workers: int | None = None) -> list[dict]:
    """Run every case; write OUT/accuracy.json, accuracy.md and accuracy.png."""
    out.mkdir(parents=True, exist_ok=True)
    cases = [(s, n, loc, seed, steps, str(out))
             for s, n, loc, seed in itertools.product(scenarios, noises, localizers, seeds)]
    workers = workers or max(1, min(len(os.sched_getaffinity(0)), len(cases)))
    with ProcessPoolExecutor(max_workers=workers, initializer=_one_thread_each) as pool:
        results = list(tqdm(pool.map(run_case, cases), total=len(cases), desc="accuracy",
                            unit="run"))
    (out / "accuracy.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "accuracy.md").write_text(accuracy_table(results) + "\n")
    plot_accuracy(results, out / "accuracy.png")
    return results


def summarize(results: list[dict]) -> dict:
    """(scenario, noise, localizer) -> (mean ATE, min, max, mean corrected ATE or None)."""
    table = {}
    for key, group in itertools.groupby(
            sorted(results, key=lambda r: (r["scenario"], r["noise"], r["localizer"])),
            key=lambda r: (r["scenario"], r["noise"], r["localizer"])):
        group = list(group)
        ates = [r["ate"] for r in group]
        corrected = [r["ate_corrected"] for r in group if "ate_corrected" in r]
        table[key] = (float(np.mean(ates)), min(ates), max(ates),
                      float(np.mean(corrected)) if corrected else None)
    return table


def accuracy_table(results: list[dict]) -> str:
    table = summarize(results)
    localizers = [loc for loc in LOCALIZERS if any(k[2] == loc for k in table)]
    header = "| scenario | noise | " + " | ".join(localizers) + " | slam / DR |"
    lines = [header, "|" + " --- |" * (len(localizers) + 3)]
    for scenario, noise in sorted({k[:2] for k in table},
                                  key=lambda k: (SCENARIOS.index(k[0]), k[1])):
        cells = []
        for localizer in localizers:
            mean, low, high, corrected = table[(scenario, noise, localizer)]
            cell = f"{mean:.1f} ({low:.1f}-{high:.1f})"
            if corrected is not None:
                cell += f"; corrected {corrected:.1f}"
            cells.append(cell)
        ratio = table[(scenario, noise, "slam")][0] / max(
            table[(scenario, noise, "deadreckoning")][0], 1e-9) \
            if (scenario, noise, "slam") in table and \
            (scenario, noise, "deadreckoning") in table else float("nan")
        ratio_text = f"{ratio:.2f}" if table[(scenario, noise, "deadreckoning")][0] > 1e-6 \
            else "-"
        lines.append(f"| {scenario} | {noise:g} | " + " | ".join(cells) + f" | {ratio_text} |")
    return "\n".join(lines)


def plot_accuracy(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summarize(results)
    scenarios = [s for s in SCENARIOS if any(k[0] == s for k in table)]
    fig, axes = plt.subplots(1, len(scenarios), figsize=(4.2 * len(scenarios), 4),
                             sharey=True, squeeze=False)
    for ax, scenario in zip(axes[0], scenarios):
        for localizer in LOCALIZERS:
            keys = sorted(k for k in table if k[0] == scenario and k[2] == localizer)
            if not keys:
                continue
            noises = [k[1] for k in keys]
            means = [table[k][0] for k in keys]
            low = [table[k][0] - table[k][1] for k in keys]
            high = [table[k][2] - table[k][0] for k in keys]
            ax.errorbar(noises, means, yerr=[low, high], marker="o", capsize=3,
                        label=localizer)
        ax.set_title(scenario)
        ax.set_xlabel("odometry noise (world units per axis per step)")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("ATE, unaligned (world units; mean and range of 3 seeds)")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("Localization accuracy, 2,000 steps (treeworld bench accuracy)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
