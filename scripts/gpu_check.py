"""GPU check: the seed's spiral experiments with the localizer on CUDA (no ROS, no evo), with
the CPU beside it on the same machine.

    python scripts/gpu_check.py [--steps 1000]

Prints, per experiment and device: steps/s of the in-process loop, max and final error.
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from treeworld_bringup.runner import run
from treeworld_bringup.settings import experiment_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, CUDA device: "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    print(f"{'experiment':24s} {'device':6s} {'steps/s':>8s} {'max err':>8s} {'final err':>9s}")
    for name in ("spiral-no-memory", "spiral-memory", "circle-memory-affinity"):
        for device in ("cuda", "cpu"):
            settings = experiment_settings(name, device=device)
            settings = dataclasses.replace(
                settings, world=dataclasses.replace(settings.world, steps=args.steps))
            recording, _ = run(settings, progress=False)
            errors = np.linalg.norm(recording.estimates - recording.true_positions, axis=1)
            print(f"{name:24s} {device:6s} {recording.summary['steps_per_second']:8.1f} "
                  f"{errors.max():8.2f} {errors[-1]:9.2f}", flush=True)


if __name__ == "__main__":
    main()
