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
import tempfile
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


def ou_walk_file(folder: Path, seed: int) -> Path:
    return folder / f"ou-walk-{seed}.csv"


def case_settings(scenario: str, noise: float, localizer: str, seed: int, steps: int,
                  path_folder: Path) -> Settings:
    defaults = Settings()
    world = dataclasses.replace(defaults.world, seed=seed, odometry_noise=noise, steps=steps)
    if scenario == "ou-walk":
        controller = dataclasses.replace(defaults.controller, controller="path",
                                         path_file=str(ou_walk_file(path_folder, seed)),
                                         seed=seed)
    else:
        controller = dataclasses.replace(defaults.controller, controller=scenario, seed=seed)
    method = localizer.split("-")[0]
    locator = dataclasses.replace(
        defaults.localizer, method=method, device="cpu", seed=seed,
        mixing="affinity" if localizer == "tem2d-affinity" else "average",
        odometry_sigma=max(noise, SLAM_MIN_SIGMA))
    return Settings(world, controller, locator)


def one_thread_each() -> None:
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
    with tempfile.TemporaryDirectory(prefix="ou-walk-") as path_folder:
        # Written once here, not in the workers: many cases read the same seed's path.
        for seed in seeds:
            write_path(ou_walk(seed, steps), ou_walk_file(Path(path_folder), seed),
                       Settings().world.step_period)
        cases = [(s, n, loc, seed, steps, path_folder)
                 for s, n, loc, seed in itertools.product(scenarios, noises, localizers, seeds)]
        workers = workers or max(1, min(len(os.sched_getaffinity(0)), len(cases)))
        with ProcessPoolExecutor(max_workers=workers, initializer=one_thread_each) as pool:
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
        # (the mean of equal ATEs can round past them, and the plot's error bars would be
        # negative)
        mean = min(max(float(np.mean(ates)), min(ates)), max(ates))
        table[key] = (mean, min(ates), max(ates),
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
        slam = table.get((scenario, noise, "slam"))
        dead_reckoning = table.get((scenario, noise, "deadreckoning"))
        ratio_text = f"{slam[0] / dead_reckoning[0]:.2f}" \
            if slam and dead_reckoning and dead_reckoning[0] > 1e-6 else "-"
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
    axes[0][0].set_ylabel("ATE, unaligned (world units)\nmean and range over the seeds")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("Localization accuracy, 2,000 steps (treeworld bench accuracy)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- treeworld bench forage ---------------------------------------------------------------

FORAGE_MODES = ("true-pose", "slam", "deadreckoning", "random")
FORAGE_NOISES = (0.0, 1.0)
FORAGE_SEEDS = (0, 1, 2, 3, 4)
FORAGE_STEPS = 10_000


def forage_settings(mode: str, noise: float, seed: int, steps: int) -> Settings:
    """An accuracy case with the forager (or the random controller) and allow_death."""
    settings = case_settings("random" if mode == "random" else "forage", noise,
                             "slam" if mode == "slam" else "deadreckoning", seed, steps, Path())
    return dataclasses.replace(
        settings, world=dataclasses.replace(settings.world, allow_death=True))


def forage_case(case: tuple) -> dict:
    mode, noise, seed, steps = case
    recording, _ = run(forage_settings(mode, noise, seed, steps), progress=False,
                       steer_by_truth=mode == "true-pose")
    summary = recording.summary
    return {"mode": mode, "noise": noise, "seed": seed, "steps_survived": recording.steps,
            "survived": recording.steps == steps and summary["health"] > 0,
            "mean_health": float(recording.health.mean()), "final_health": summary["health"],
            "edible_eaten": summary["fruit_eaten"] - summary["poisonous_fruit_eaten"],
            "poisonous_eaten": summary["poisonous_fruit_eaten"],
            "health": recording.health[::10].tolist()}


def forage(out: Path, steps: int = FORAGE_STEPS, seeds=FORAGE_SEEDS, noises=FORAGE_NOISES,
           modes=FORAGE_MODES, workers: int | None = None) -> list[dict]:
    """Every mode at every noise and seed with allow_death; OUT/forage.json, .md, .png."""
    out.mkdir(parents=True, exist_ok=True)
    cases = list(itertools.product(modes, noises, seeds, [steps]))
    workers = workers or max(1, min(len(os.sched_getaffinity(0)), len(cases)))
    with ProcessPoolExecutor(max_workers=workers, initializer=one_thread_each) as pool:
        results = list(tqdm(pool.map(forage_case, cases), total=len(cases), desc="forage",
                            unit="run"))
    (out / "forage.json").write_text(json.dumps(results) + "\n")
    (out / "forage.md").write_text(forage_table(results, steps) + "\n")
    plot_forage(results, out / "forage.png", steps)
    return results


def forage_table(results: list[dict], steps: int) -> str:
    lines = ["| noise | forager steered by | survived all steps | steps survived (mean) | "
             "mean health | edible eaten | poisonous eaten | poison per edible |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for noise in sorted({r["noise"] for r in results}):
        for mode in FORAGE_MODES:
            group = [r for r in results if r["noise"] == noise and r["mode"] == mode]
            if not group:
                continue
            edible = sum(r["edible_eaten"] for r in group)
            poison = sum(r["poisonous_eaten"] for r in group)
            label = {"true-pose": "the true pose (upper bound)",
                     "random": "(the random controller)"}.get(mode, mode)
            lines.append(
                f"| {noise:g} | {label} | {sum(r['survived'] for r in group)} of {len(group)} | "
                f"{np.mean([r['steps_survived'] for r in group]):,.0f} | "
                f"{np.mean([r['mean_health'] for r in group]):.0f} | "
                f"{edible / len(group):.0f} | {poison / len(group):.0f} | "
                f"{poison / max(edible, 1):.2f} |")
    return "\n".join(lines)


def plot_forage(results: list[dict], path: Path, steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noises = sorted({r["noise"] for r in results})
    modes = [m for m in FORAGE_MODES if any(r["mode"] == m for r in results)]
    fig, axes = plt.subplots(len(modes), len(noises), figsize=(6 * len(noises), 2 * len(modes)),
                             sharex=True, sharey=True, squeeze=False)
    for row, mode in enumerate(modes):
        for column, noise in enumerate(noises):
            ax = axes[row][column]
            group = [r for r in results if r["noise"] == noise and r["mode"] == mode]
            for r in group:
                ax.plot(np.arange(len(r["health"])) * 10, r["health"], lw=1, alpha=0.8,
                        label=f"seed {r['seed']}")
            ax.axhline(0, color="k", lw=0.8)
            ax.set_title(f"{mode}, odometry noise {noise:g}: "
                         f"{sum(r['survived'] for r in group)} of {len(group)} survive",
                         fontsize=9)
            ax.set_xlim(0, steps)
            ax.grid(alpha=0.3)
        axes[row][0].set_ylabel("health")
    for ax in axes[-1]:
        ax.set_xlabel("step")
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.suptitle("Foraging with allow_death: each line one seed (treeworld bench forage)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
