"""The back end of ``method: slam``: a pose graph of 2-D positions optimized incrementally
(docs/design.md §10).

Nodes are keyframe positions (gtsam Point2: the agent's heading plays no part in where it is).
Odometry links consecutive keyframes with a Gaussian of ``odometry_sigma`` per axis per step;
a loop closure links an old keyframe and the newest with an offset and a covariance, under a
Cauchy loss, so a closure that contradicts the rest of the graph loses its pull instead of
bending the map. GTSAM's iSAM2 re-solves only the part of the graph a new factor touches.

Only the newest ``window`` keyframes stay in the optimizer. When the optimized part has grown
by half a window more, its oldest keyframes *settle*: they keep their current estimates for good
and leave the optimizer, and every factor that links a settled keyframe to an optimized one
becomes a prior on the optimized one (the settled end's estimate plus the measurement). The
optimizer then never holds more than 1.5 windows, so a step costs the same after an hour as after
a minute, and so does the memory; the price is that a closure can no longer move what settled
(a revisit of settled ground still corrects the present, by its prior).

If the optimizer fails, the factors that made it fail are dropped, the graph is rebuilt from
the rest and the last good estimates, and the failure is counted: the map is never lost.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import gtsam
import numpy as np
from gtsam.symbol_shorthand import X

from tem_localizer.place_map import GrowingArray

log = logging.getLogger(__name__)

PRIOR_SIGMA = 1e-3          # the first keyframe is the map's origin
# Reading one keyframe's estimate takes about 1.1 us (the Python around it included);
# building every optimized estimate at once about 0.23 us a keyframe (0.14 ms for a
# 600-keyframe window). So fewer than one in this many optimized keyframes are read one by one.
KEYFRAMES_PER_KEY_READ = 5


@dataclass
class _Factor:
    kind: str               # "prior", "odometry" or "closure"
    first: int
    second: int
    measured: np.ndarray    # (2,)
    covariance: np.ndarray  # (2, 2)
    loss_scale: float = 1.0  # closures: the Cauchy loss's scale, in the closure's sigmas


class PoseGraph:
    """Keyframe positions, odometry and loop-closure factors, optimized by iSAM2 over the
    newest ``window`` keyframes (at least 2)."""

    def __init__(self, window: int = 10**9):
        self.window = window
        self.failures = 0
        self.reset()

    def reset(self) -> None:
        self.isam = self._new_isam()
        self.factors: list[_Factor] = []     # those that touch an optimized keyframe
        self.size = 0
        self.version = 0       # updates so far: estimates change in an update, nowhere else
        self.settled = GrowingArray((2,), np.float64)   # keyframes 0..settled.size-1, fixed
        self.pending_graph = gtsam.NonlinearFactorGraph()
        self.pending_values = gtsam.Values()
        self.pending_factors: list[_Factor] = []
        self._estimates: np.ndarray | None = None   # (optimized keyframes, 2), or stale

    @staticmethod
    def _new_isam() -> gtsam.ISAM2:
        parameters = gtsam.ISAM2Params()
        parameters.setRelinearizeThreshold(0.01)
        return gtsam.ISAM2(parameters)

    def _noise(self, factor: _Factor):
        gaussian = gtsam.noiseModel.Gaussian.Covariance(factor.covariance)
        if factor.kind in ("prior", "odometry"):
            return gaussian
        return gtsam.noiseModel.Robust.Create(
            gtsam.noiseModel.mEstimator.Cauchy.Create(factor.loss_scale), gaussian)

    def _gtsam_factor(self, factor: _Factor):
        """The factor over the optimized keyframes. Links run from an older keyframe to a
        newer one, so only the first end can have settled: then the link becomes a prior on
        the second at the settled end's estimate plus the measurement."""
        if factor.kind == "prior":
            return gtsam.PriorFactorPoint2(X(factor.first), factor.measured, self._noise(factor))
        if self.is_settled(factor.first):
            return gtsam.PriorFactorPoint2(
                X(factor.second), self.settled.data[factor.first] + factor.measured,
                self._noise(factor))
        return gtsam.BetweenFactorPoint2(X(factor.first), X(factor.second), factor.measured,
                                         self._noise(factor))

    def is_settled(self, index: int) -> bool:
        return index < self.settled.size

    def _add(self, factor: _Factor) -> None:
        self.pending_factors.append(factor)
        self.pending_graph.add(self._gtsam_factor(factor))

    def add_keyframe(self, guess: np.ndarray, odometry: np.ndarray | None = None,
                     covariance: np.ndarray | None = None,
                     prior_sigma: float = PRIOR_SIGMA) -> int:
        """A new keyframe at ``guess``: linked to the previous one by ``odometry`` (the
        measured displacement, with ``covariance``), or, without odometry, held at ``guess``
        with ``prior_sigma`` (the map's origin, a loaded map's keyframe, a relocalized
        start)."""
        index = self.size
        self.size += 1
        self.pending_values.insert(X(index), np.asarray(guess, dtype=float))
        if odometry is None:
            self._add(_Factor("prior", index, index, np.asarray(guess, float),
                              prior_sigma**2 * np.eye(2)))
        else:
            self._add(_Factor("odometry", index - 1, index, np.asarray(odometry, float),
                              np.asarray(covariance, float)))
        return index

    def add_settled(self, positions: np.ndarray) -> None:
        """Keyframes (n, 2) fixed where they are (a loaded map), before any other."""
        assert self.size == 0, "settled keyframes come first"
        for position in positions:
            self.settled.append(position)
        self.size = self.settled.size

    def add_closure(self, old: int, new: int, offset: np.ndarray, covariance: np.ndarray,
                    loss_scale: float = 1.0) -> None:
        """Keyframe ``new`` sits at keyframe ``old`` + ``offset`` (covariance (2, 2)). The
        Cauchy loss halves the closure's pull at ``loss_scale`` of its own sigmas: set it to
        what the graph's own uncertainty between the two makes plausible."""
        self._add(_Factor("closure", old, new, np.asarray(offset, float),
                          np.asarray(covariance, float), loss_scale))

    def update(self) -> bool:
        """Optimize with the factors added since the last update. False (and counted) when
        the optimizer failed: the graph is rebuilt without the new closures."""
        graph, values, added = self.pending_graph, self.pending_values, self.pending_factors
        self.pending_graph, self.pending_values = gtsam.NonlinearFactorGraph(), gtsam.Values()
        self.pending_factors = []
        self._estimates = None
        self.version += 1
        try:
            self.isam.update(graph, values)
            if any(f.kind == "closure" for f in added):
                self.isam.update()          # a second pass settles the robust weights
        except RuntimeError as error:       # gtsam raises its own kinds as RuntimeError
            self.failures += 1
            log.warning("pose graph optimization failed (%s); dropping its new loop closures "
                        "and keeping the last good solution (%d failures so far)",
                        error, self.failures)
            self.factors.extend(f for f in added if f.kind != "closure")
            self._rebuild(values)
            return False
        self.factors.extend(added)
        if self.size - self.settled.size >= self.window + max(1, self.window // 2):
            self._settle(self.size - self.window)
        return True

    def _settle(self, count: int) -> None:
        """Keyframes before ``count`` keep their estimates and leave the optimizer."""
        for position in self.positions(np.arange(self.settled.size, count)):
            self.settled.append(position)
        self.factors = [f for f in self.factors if not self.is_settled(f.second)]
        self._rebuild(gtsam.Values())

    def _rebuild(self, new_values: gtsam.Values) -> None:
        """A fresh iSAM2 from the kept factors, started at the last good estimates."""
        previous = self.isam
        self.isam = self._new_isam()
        self._estimates = None
        graph, values = gtsam.NonlinearFactorGraph(), gtsam.Values()
        for factor in self.factors:
            graph.add(self._gtsam_factor(factor))
        for index in range(self.settled.size, self.size):
            key = X(index)
            if new_values.exists(key):
                values.insert(key, new_values.atPoint2(key))
            else:
                values.insert(key, previous.calculateEstimatePoint2(key))
        self.isam.update(graph, values)

    def _optimized(self) -> np.ndarray:
        """(n, 2) the estimates of the keyframes still optimized, in order, built once per
        update."""
        if self._estimates is None:
            estimates = gtsam.utilities.extractPoint2(self.isam.calculateEstimate())
            self._estimates = np.asarray(estimates, dtype=float).reshape(-1, 2)
        return self._estimates

    def position(self, index: int) -> np.ndarray:
        return self.positions([index])[0]

    def positions(self, indices) -> np.ndarray:
        """(n, 2) current estimates of the given keyframes."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        settled = indices < self.settled.size
        result = np.empty((len(indices), 2))
        result[settled] = self.settled.data[indices[settled]]
        optimized = indices[~settled]
        if self._estimates is None and \
                KEYFRAMES_PER_KEY_READ * len(optimized) < self.size - self.settled.size:
            for row, index in zip(np.flatnonzero(~settled), optimized.tolist()):
                result[row] = self.isam.calculateEstimatePoint2(X(index))
        elif len(optimized):
            result[~settled] = self._optimized()[optimized - self.settled.size]
        return result
