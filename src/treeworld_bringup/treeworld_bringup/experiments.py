"""The seed's experiments (docs/design.md §8), each one command, with dead reckoning run beside
each one as the baseline. Their settings are in ``settings.EXPERIMENTS``."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from treeworld_bringup.outputs import compute_metrics, write_report
from treeworld_bringup.recording import gif_stride
from treeworld_bringup.runner import run
from treeworld_bringup.settings import EXPERIMENTS, experiment_settings


def run_experiment(name: str, out: Path, seed: int = 0, device: str = "auto",
                   progress: bool = True, gif: bool = True) -> dict:
    """Run experiment ``name`` and its dead-reckoning baseline; write the report (with the
    belief's animation when ``gif``) to ``out``."""
    settings = experiment_settings(name, seed, device)
    recording, scene = run(settings, belief_stride=gif_stride(settings.world.steps) if gif else 0,
                           progress=progress)
    baseline_settings = dataclasses.replace(
        settings, localizer=dataclasses.replace(settings.localizer, method="deadreckoning"))
    baseline, _ = run(baseline_settings, progress=False)
    baseline_metrics = compute_metrics(baseline)
    last = recording.losses[-99:]
    extra = {
        "experiment": name, "seed": seed, "seed_observation": EXPERIMENTS[name].seed_observation,
        "deadreckoning_ate_rmse": baseline_metrics["ate_rmse"],
        "deadreckoning_final_error": baseline_metrics["final_error"],
        "last99_loss": {"min": float(last.min()), "mean": float(last.mean()),
                        "max": float(last.max())},
    }
    return write_report(out, recording, scene, name, settings.localizer.cell_size,
                        extra_metrics=extra, baseline=baseline, gif=gif)
