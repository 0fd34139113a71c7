"""Benchmark: finding oneself in a map wider than the belief grid's window.

A 10,000-step random walk (`random_radius` 2,000, odometry noise 1.0) maps the default world
with slam; then robots driven elsewhere first (other random walks, no localizer for
``--before`` steps) start a localizer with that map, not told where they are, and walk on for
600 steps. For each: the steps it took to find itself, its error then and at the end, and how
often the map did not explain what it smelled where its belief settled, and how many fixes no
loop closure or smell confirmed were taken back.

    .venv/bin/python scripts/bench_wide_relocalization.py [--map FILE] [--seeds 1 2 3 4 5 6]
        [--plot docs/bench/wide_relocalization.png]

The map is made once (about a minute) and kept in ``--map``. The plot shows the map's places,
each robot's walk and, from where it found itself, its estimate.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import matplotlib
import numpy as np
from tqdm import tqdm

from spiral_controller import make_controller
from tem_localizer import Localizer
from treeworld_bringup.runner import run
from treeworld_bringup.settings import Settings
from treeworld_sim import TreeWorld

BEFORE = {1: 1500, 2: 2500, 3: 3500, 4: 1000, 5: 3000, 6: 2000}   # steps driven blind
WALK = 600


def wide_walk(seed: int, steps: int) -> Settings:
    defaults = Settings()
    return Settings(dataclasses.replace(defaults.world, odometry_noise=1.0, steps=steps),
                    dataclasses.replace(defaults.controller, controller="random", seed=seed,
                                        random_radius=2000.0),
                    dataclasses.replace(defaults.localizer, method="slam", device="cpu"))


def started_elsewhere(map_file: Path, seed: int) -> dict:
    settings = wide_walk(seed, BEFORE[seed] + WALK)
    world, controller = TreeWorld(settings.world), make_controller(settings.controller)
    for step in range(BEFORE[seed]):
        world.observe()
        world.move(*controller(step))
    start = world.position.copy()
    localizer = Localizer(settings.localizer)
    localizer.load_map(map_file)
    last, truth, estimates = world.odometry_position.copy(), [], []
    for step in range(BEFORE[seed], BEFORE[seed] + WALK):
        record = world.observe()
        localizer.step(record.odometry_position - last, record.smell)
        last = record.odometry_position
        truth.append(record.position.copy())
        estimates.append(localizer.position.copy())
        world.move(*controller(step))
    truth, estimates = np.array(truth), np.array(estimates)
    errors = np.linalg.norm(estimates - truth, axis=1)
    found = localizer.relocalized_after
    return {"seed": seed, "start": start.round(1).tolist(), "found_after": found,
            "error_when_found": float(errors[found - 1]) if found else None,
            "error_at_end": float(errors[-1]) if found else None,
            "unexplained": localizer.relocalization_unexplained,
            "taken_back": localizer.relocalization_retracted,
            "truth": truth, "estimates": estimates}


def plot(path: Path, places: np.ndarray, robots: list[dict]) -> None:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 8))
    axes.scatter(*places.T, s=1, color="0.8", label="the map's places")
    for robot, colour in zip(robots, plt.cm.tab10.colors):
        truth, found = robot["truth"], robot["found_after"]
        axes.plot(*truth.T, color=colour, lw=1,
                  label=f"seed {robot['seed']}: " + (f"found after {found} steps" if found
                                                     else "not found"))
        axes.plot(*truth[0], "o", color=colour)
        if found:
            axes.plot(*robot["estimates"][found - 1:].T, "--", color=colour, lw=1)
            axes.plot(*robot["estimates"][found - 1], "x", color=colour, ms=9)
    axes.set(aspect="equal", xlabel="x (world units)", ylabel="y (world units)",
             title="Started anywhere in a map wider than the belief window:\n"
                   "walks (o: start) and, once found (x), the estimate (dashed)")
    axes.legend(loc="upper left", fontsize=8)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", type=Path, default=Path("runs/wide_map.npz"))
    parser.add_argument("--seeds", type=int, nargs="+", default=sorted(BEFORE),
                        choices=sorted(BEFORE))
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    if not args.map.exists():
        recording, _ = run(wide_walk(0, 10_000), save_map=args.map)
        errors = np.linalg.norm(recording.estimates - recording.true_positions, axis=1)
        print(f"the map's own run: ATE {np.sqrt(np.mean(errors**2)):.2f}; map in {args.map}")
    print("| seed | start | found after | error then | error at the end | unexplained | "
          "fixes taken back |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    robots = []
    for seed in tqdm(args.seeds, desc="robots", unit="robot", leave=False):
        r = started_elsewhere(args.map, seed)
        robots.append(r)
        cells = [f"{r['found_after']} steps" if r["found_after"] else "not found",
                 f"{r['error_when_found']:.1f}" if r["found_after"] else "-",
                 f"{r['error_at_end']:.1f}" if r["found_after"] else "-"]
        print(f"| {seed} | ({r['start'][0]:.0f}, {r['start'][1]:.0f}) | " + " | ".join(cells)
              + f" | {r['unexplained']} | {r['taken_back']} |", flush=True)
    if args.plot is not None:
        with np.load(args.map) as saved:
            places = saved["keyframe_positions"]
        plot(args.plot, places, robots)
        print(f"plot in {args.plot}")


if __name__ == "__main__":
    main()
