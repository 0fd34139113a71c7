"""Benchmark: lockstep steps/s of the whole three-node graph over DDS, and the localizer's
per-step latency as reported on /diagnostics.

    .venv/bin/python scripts/bench_graph.py [--steps 1000] [--device cpu]

The seed's configuration (S=101, D=1024, 50 trees, spiral): tem2d with memory off and on, and
slam (the default localizer) on the same world with odometry noise 1.0. Steps/s counts from
the first step's data to the last step's estimate (node start-up excluded).
"""
from __future__ import annotations

import argparse
import dataclasses
import os

import numpy as np

from treeworld_bringup.launcher import launch_graph
from treeworld_bringup.settings import experiment_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", "91")
    print(f"{'localizer':22s} {'steps/s':>8s} {'latency p50 ms':>15s} {'p90':>7s} {'p99':>7s} "
          f"{'max':>7s}")
    for label, settings in configurations(args.device):
        settings = dataclasses.replace(
            settings, world=dataclasses.replace(settings.world, steps=args.steps))
        result = launch_graph(settings, use_localizer=True, progress=False)
        recording, latencies = result.recording, np.asarray(result.info["latencies_ms"])
        p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
        print(f"{label:22s} {recording.summary['steps_per_second']:8.1f} {p50:15.2f} "
              f"{p90:7.2f} {p99:7.2f} {latencies.max():7.2f}", flush=True)


def configurations(device: str):
    yield "tem2d, memory off", experiment_settings("spiral-no-memory", device=device)
    yield "tem2d, memory on", experiment_settings("spiral-memory", device=device)
    seed = experiment_settings("spiral-no-memory", device=device)
    yield "slam, odometry noise 1", dataclasses.replace(
        seed, world=dataclasses.replace(seed.world, odometry_noise=1.0),
        localizer=dataclasses.replace(seed.localizer, method="slam", odometry_sigma=1.0))


if __name__ == "__main__":
    main()
