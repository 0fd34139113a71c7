"""Benchmark: does the graph hold at length? A long `treeworld launch` (lockstep, circle,
odometry noise 1.0, the default localizer (slam), every topic recorded): steps/s per
1,000-step window, the localizer's per-step latency over the run, and bag bytes per step at
two run lengths.

    .venv/bin/python scripts/bench_long_run.py [--steps 10000] [--short 1000] [--out docs/bench]

Writes OUT/long_run.png (latency and throughput over the run) and OUT/long_run.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from treeworld_bringup.launcher import launch_graph  # noqa: E402
from treeworld_bringup.settings import Settings  # noqa: E402

WINDOW = 1000


def settings_for(steps: int) -> Settings:
    defaults = Settings()
    return Settings(dataclasses.replace(defaults.world, steps=steps, odometry_noise=1.0),
                    dataclasses.replace(defaults.controller, controller="circle"),
                    dataclasses.replace(defaults.localizer, odometry_sigma=1.0, device="cpu"))


def run(steps: int) -> dict:
    """One recorded launch: per-window steps/s, latencies, bag bytes per step."""
    result = launch_graph(settings_for(steps), use_localizer=True, record=True)
    if result.failure is not None:
        raise SystemExit(f"the {steps}-step launch failed: {result.failure}")
    info = result.info
    arrival = np.array([info["arrival"][s] for s in range(steps)])
    windows = [WINDOW / (arrival[end - 1] - arrival[start])
               for start, end in zip(range(0, steps, WINDOW), range(WINDOW, steps + 1, WINDOW))]
    bag_bytes = sum(f.stat().st_size for f in info["bag"].iterdir())
    shutil.rmtree(info["workspace"], ignore_errors=True)
    return {"steps": steps, "steps_per_second": result.recording.summary["steps_per_second"],
            "window_steps_per_second": windows, "latencies_ms": info["latencies_ms"],
            "bag_bytes": bag_bytes, "bag_bytes_per_step": bag_bytes / steps,
            "ate_rmse": float(np.sqrt(np.mean(np.sum(
                (result.recording.estimates - result.recording.true_positions) ** 2, 1))))}


def plot(long: dict, path: Path) -> None:
    latencies = np.asarray(long["latencies_ms"])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot(latencies, ",", color="tab:blue", alpha=0.4, label="one step")
    kernel = np.ones(WINDOW // 10) / (WINDOW // 10)
    top.plot(np.convolve(latencies, kernel, mode="valid"), color="tab:orange",
             label=f"mean of {WINDOW // 10} steps")
    top.set_ylabel("localizer step latency (ms)")
    top.set_ylim(0, np.percentile(latencies, 99.5) * 1.2)
    top.legend(loc="upper right", fontsize=8)
    centres = np.arange(len(long["window_steps_per_second"])) * WINDOW + WINDOW / 2
    bottom.plot(centres, long["window_steps_per_second"], "o-", color="tab:green")
    bottom.set_ylabel(f"graph steps/s per {WINDOW} steps")
    bottom.set_xlabel("step")
    bottom.set_ylim(0, max(long["window_steps_per_second"]) * 1.2)
    fig.suptitle(f"treeworld launch, {long['steps']} lockstep steps, recording every topic "
                 "(2-core machine)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--short", type=int, default=1_000)
    parser.add_argument("--out", type=Path, default=Path("docs/bench"))
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", "92")
    args.out.mkdir(parents=True, exist_ok=True)
    short, long = run(args.short), run(args.steps)
    plot(long, args.out / "long_run.png")
    windows = long["window_steps_per_second"]
    latencies = np.asarray(long["latencies_ms"])
    first, last = latencies[:WINDOW], latencies[-WINDOW:]
    summary = {
        "steps": args.steps,
        "steps_per_second_first_window": windows[0],
        "steps_per_second_last_window": windows[-1],
        "last_over_first": windows[-1] / windows[0],
        "latency_ms_p50_first_window": float(np.median(first)),
        "latency_ms_p50_last_window": float(np.median(last)),
        "latency_ms_p99_first_window": float(np.percentile(first, 99)),
        "latency_ms_p99_last_window": float(np.percentile(last, 99)),
        "bag_bytes_per_step": {str(short["steps"]): short["bag_bytes_per_step"],
                               str(long["steps"]): long["bag_bytes_per_step"]},
        "ate_rmse": long["ate_rmse"],
    }
    (args.out / "long_run.json").write_text(json.dumps(summary | {"window_steps_per_second":
                                                                  windows}, indent=2) + "\n")
    print(f"steps/s per {WINDOW}-step window: " + " ".join(f"{w:.0f}" for w in windows))
    for key, value in summary.items():
        print(f"  {key:32s} {value}")


if __name__ == "__main__":
    main()
