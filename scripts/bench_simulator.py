"""Benchmark: Tree World simulator steps per second at the default config (no localizer).

    .venv/bin/python scripts/bench_simulator.py [--steps 20000] [--repeats 5]

Times observe (sense + eat) + controller + move, the in-process loop without a localizer.
Prints the median of the repeats and each repeat (these machines are noisy).
"""
from __future__ import annotations

import argparse
import statistics
import time

from spiral_controller import ControllerConfig, make_controller
from treeworld_sim import TreeWorld, WorldConfig


def steps_per_second(steps: int, controller_name: str) -> float:
    world = TreeWorld(WorldConfig())
    controller = make_controller(ControllerConfig(controller=controller_name))
    started = time.perf_counter()
    for step in range(steps):
        world.observe()
        world.move(*controller(step))
    return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'controller':12s} {'median steps/s':>15s}   repeats")
    for name in ("spiral", "circle", "random"):
        rates = [steps_per_second(args.steps, name) for _ in range(args.repeats)]
        print(f"{name:12s} {statistics.median(rates):15,.0f}   "
              + " ".join(f"{r:,.0f}" for r in rates))


if __name__ == "__main__":
    main()
