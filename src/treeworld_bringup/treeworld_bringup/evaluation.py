"""SLAM-standard trajectory metrics computed with evo (ATE, RPE), and TUM files.

``ate_rmse`` everywhere in the project is the *unaligned* ATE: the belief frame starts at the
true origin, so any offset is a real localization error. The SE(3)-aligned ATE is reported
beside it (what evo_ape -a prints); it is ``None`` when the true path is a line or a point,
where no rotation can be fitted.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from evo.core import geometry, metrics, sync
from evo.core.trajectory import PoseTrajectory3D
from evo.tools import file_interface


def trajectory(timestamps: np.ndarray, positions: np.ndarray) -> PoseTrajectory3D:
    """A planar trajectory: (T,) seconds, (T, 2) world units, identity orientation."""
    xyz = np.column_stack([positions, np.zeros(len(positions))])
    quaternions = np.tile([1.0, 0.0, 0.0, 0.0], (len(positions), 1))   # w x y z
    return PoseTrajectory3D(positions_xyz=xyz, orientations_quat_wxyz=quaternions,
                            timestamps=np.asarray(timestamps, dtype=np.float64))


def write_tum(path: Path, timestamps: np.ndarray, positions: np.ndarray) -> None:
    file_interface.write_tum_trajectory_file(str(path), trajectory(timestamps, positions))


def read_tum(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps (T,), positions (T, 2))."""
    loaded = file_interface.read_tum_trajectory_file(str(path))
    return loaded.timestamps, loaded.positions_xyz[:, :2]


def _ape(reference: PoseTrajectory3D, estimate: PoseTrajectory3D) -> metrics.APE:
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((reference, estimate))
    return ape


STATISTICS = ("rmse", "mean", "median", "std", "min", "max")


def _statistics(metric) -> dict:
    return {name: float(metric.get_statistic(getattr(metrics.StatisticsType, name)))
            for name in STATISTICS}


def evaluate(timestamps: np.ndarray, truth: np.ndarray, estimate: np.ndarray) -> dict:
    """ATE (unaligned and SE(3)-aligned) and RPE (1 step) of ``estimate`` against ``truth``,
    world units: the headline numbers flat, every statistic under "evaluation"."""
    reference = trajectory(timestamps, truth)
    estimated = trajectory(timestamps, estimate)
    ape = _ape(reference, estimated)
    aligned = copy.deepcopy(estimated)
    try:
        aligned.align(reference)
        aligned_statistics = _statistics(_ape(reference, aligned))
    except geometry.GeometryException:
        aligned_statistics = None
    rpe = metrics.RPE(metrics.PoseRelation.translation_part, delta=1,
                      delta_unit=metrics.Unit.frames)
    rpe.process_data((reference, estimated))
    table = {"ate": _statistics(ape), "ate_aligned": aligned_statistics,
             "rpe": _statistics(rpe)}
    return {
        "ate_rmse": table["ate"]["rmse"],
        "mean_error": table["ate"]["mean"],
        "max_error": table["ate"]["max"],
        "final_error": float(ape.error[-1]),
        "ate_rmse_aligned": aligned_statistics and aligned_statistics["rmse"],
        "rpe_rmse": table["rpe"]["rmse"],
        "evaluation": table,
    }


def format_table(evaluation: dict) -> str:
    """The evaluation as a text table (world units); "-" where a column could not be computed."""
    columns = (("ate", "ATE"), ("ate_aligned", "ATE SE(3)-aligned"), ("rpe", "RPE 1 step"))
    lines = [f"{'':8s}" + "".join(f"{title:>20s}" for _, title in columns)]
    for name in STATISTICS:
        lines.append(f"{name:8s}" + "".join(
            f"{evaluation[key][name]:20.4f}" if evaluation[key] else f"{'-':>20s}"
            for key, _ in columns))
    return "\n".join(lines)


def associate(reference: tuple[np.ndarray, np.ndarray], estimate: tuple[np.ndarray, np.ndarray],
              max_difference: float = 0.01) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair poses of two trajectories by timestamp (evo's association): (t, truth, estimate)."""
    ref, est = sync.associate_trajectories(trajectory(*reference), trajectory(*estimate),
                                           max_diff=max_difference)
    return ref.timestamps, ref.positions_xyz[:, :2], est.positions_xyz[:, :2]


def errors_over_time(truth: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """(T,) Euclidean error per step, world units."""
    return np.linalg.norm(estimate - truth, axis=1)
