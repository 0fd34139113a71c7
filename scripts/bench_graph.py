"""Benchmark: lockstep steps/s of the whole three-node graph over DDS, and the localizer's
per-step latency as reported on /diagnostics.

    .venv/bin/python scripts/bench_graph.py [--steps 1000] [--device cpu]

The seed's configuration (S=101, D=1024, 50 trees, spiral), memory off and on. Steps/s counts
from the first step's data to the last step's estimate (node start-up excluded).
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
    print(f"{'memory':8s} {'steps/s':>8s} {'latency p50 ms':>15s} {'p90':>7s} {'p99':>7s} "
          f"{'max':>7s}")
    for name in ("spiral-no-memory", "spiral-memory"):
        settings = experiment_settings(name, device=args.device)
        settings = dataclasses.replace(
            settings, world=dataclasses.replace(settings.world, steps=args.steps))
        result = launch_graph(settings, use_localizer=True, progress=False)
        recording, latencies = result.recording, np.asarray(result.info["latencies_ms"])
        p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
        memory = "on" if settings.localizer.use_memory_to_localize else "off"
        print(f"{memory:8s} {recording.summary['steps_per_second']:8.1f} {p50:15.2f} "
              f"{p90:7.2f} {p99:7.2f} {latencies.max():7.2f}", flush=True)


if __name__ == "__main__":
    main()
