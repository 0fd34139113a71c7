"""Loop closure on smell: is the agent somewhere it has been before? (docs/design.md §10)

Two detectors, both on smell codes, both measuring only from odometry-relative geometry within
each stretch of path (what the pose graph's odometry factors say), never from map estimates:

- **Retrace**: the last ``window`` codes match a stretch of the past (the agent is going the
  same way again). Only the position along the track is observed: moving sideways barely
  changes the smell where one tree dominates, so the closure's covariance is tight along the
  track and loose across it. Sub-step alignment comes from a parabola through the match
  distances of the neighbouring alignments.
- **Crossing**: the current path crosses an old one. Each path's smell is a curve in code
  space; where the two curves meet is where the paths meet. The meeting point along each path
  is as precise as the smell changes along it, so the covariance comes from both paths'
  directions and smell gradients. A crossing only counts where the two curves cross at an
  angle in code space too: where one tree dominates, every place at the same distance from it
  smells alike and the curves run along the same line.

Candidates come from the gate around the current position estimate (its drift since the last
closure), the recent past is excluded, weak and flat smells are skipped, and a match that
another candidate far away matches nearly as well is refused as ambiguous.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tem_localizer.place_map import PlaceMap

CROSSING_FLOOR = 0.1    # world units added in every direction: the interpolation between steps


@dataclass(frozen=True)
class ClosureSettings:
    window: int = 7                  # places in a retrace window
    exclude: int = 60                # the newest this many places are never candidates
    crossing_span: int = 3           # places either side of an old place in a crossing test
    crossing_tail: int = 4           # the newest places' part in a crossing test
    min_strength: float = 5.0        # codes weaker than this are too far from any tree
    min_gradient: float = 0.15       # code change per world unit below this is flat
    max_gradient: float = 3.0        # ... above this is a jump (a tree's fruit count changed)
    retrace_tolerance: float = 0.2   # window distance allowed, in world units of travel
    crossing_tolerance: float = 0.2  # code distance allowed where two curves meet
    min_crossing_sine: float = 0.3   # sine of the crossing angle, in the world and code space
    across_track_sigma: float = 10.0  # world units: what a retrace says about sideways
    min_sigma: float = 0.3           # world units: the tightest a closure may claim
    ambiguity_ratio: float = 1.3     # a far candidate within this factor of the best: refuse
    ambiguity_distance: float = 25.0  # world units: how far counts as far
    candidates_checked: int = 8      # crossing tests per step, the most promising first
    max_passes: int = 8              # past passes through the gate searched (in_few_passes)
    pass_gap: int = 10               # places this many steps apart are on different passes


@dataclass(frozen=True)
class Closure:
    old: int                  # the old place
    new: int                  # the current place
    offset: np.ndarray        # (2,) position of ``new`` minus position of ``old``
    covariance: np.ndarray    # (2, 2) of the offset
    kind: str                 # "retrace" or "crossing"


@dataclass(frozen=True)
class Rejection:
    reason: str               # weak, flat, no_match, ambiguous


def candidates(nearby: np.ndarray, distance: np.ndarray, radius: float,
               settings: ClosureSettings) -> np.ndarray:
    """Of the old places ``nearby`` (sorted, the recent past already left out) at
    ``distance`` from the estimate, those within ``radius`` from at most ``max_passes``
    passes."""
    inside = nearby[distance <= radius]
    return inside[PlaceMap.in_few_passes(inside, settings.max_passes, settings.pass_gap)]


def find_closure(places: PlaceMap, current: int, found: np.ndarray,
                 settings: ClosureSettings, retraces: bool = True, crossings: bool = True
                 ) -> Closure | Rejection | None:
    """A closure for place ``current`` against the ``candidates`` ``found``, the reason none
    was taken, or None when there was nothing to compare with or nothing that could be taken
    now; ``retraces``, ``crossings``: whether a closure of that kind could be taken now (not
    within its cooldown of the last one)."""
    if len(found) == 0 or current < settings.window:
        return None
    recent = places.codes.data[current - settings.window + 1:current + 1].astype(np.float32)
    strength = np.linalg.norm(recent, axis=1)
    match = _match_window(places, current, found, recent, settings) \
        if strength.min() >= settings.min_strength else Rejection("weak")
    if isinstance(match, _WindowMatch):
        # on cooldown the agent retraces what it closed on a few steps ago: the search ends
        # with nothing to add, and the offset and covariance are not worked out
        return _retrace(places, current, recent, match, settings) if retraces else None
    if not crossings or strength[-settings.crossing_tail - 1:].min() < settings.min_strength:
        return match
    crossing = _crossing(places, current, found, settings)
    return crossing if crossing is not None else match


def _ambiguous(places: PlaceMap, found: np.ndarray, scores: np.ndarray, best: int,
               settings: ClosureSettings) -> bool:
    far = np.linalg.norm(places.positions(found) - places.positions(found[best:best + 1]),
                         axis=1) > settings.ambiguity_distance
    return bool(far.any() and scores[far].min() < settings.ambiguity_ratio * scores[best])


@dataclass(frozen=True)
class _WindowMatch:
    """The last ``window`` codes retrace the stretch of the past that ends at ``old``."""
    old: int                  # the old place
    distance: float           # the window distance (code units)
    path: np.ndarray          # (w, 2) the window's odometry path
    gradient: float           # the window's median code change per world unit


def _match_window(places: PlaceMap, current: int, found: np.ndarray, recent: np.ndarray,
                  settings: ClosureSettings) -> _WindowMatch | Rejection:
    window = settings.window
    path = places.relative_positions(current - window + 1, current, current)   # (w, 2)
    moved = np.linalg.norm(np.diff(path, axis=0), axis=1)
    changed = np.linalg.norm(np.diff(recent, axis=0), axis=1)
    moving = moved > 1e-6
    if not moving.any():
        return Rejection("flat")
    # the median step: one jump (a fruit count changing) must not make a stretch look steep
    gradient = _median(changed[moving] / moved[moving])
    if gradient < settings.min_gradient:
        return Rejection("flat")
    # no window matches better than its newest code does (a mean of w squared distances is
    # at least the newest one over w): most candidates are refused here, cheaply
    newest = ((places.codes.data[found].astype(np.float32) - recent[-1]) ** 2).sum(axis=1)
    if newest.min() > window * (settings.retrace_tolerance * gradient) ** 2:
        return Rejection("no_match")
    index = found[:, None] + np.arange(-window + 1, 1)[None]                  # (C, w)
    valid = index >= 0                        # shorter windows at the very start of the run
    old = places.codes.data[np.maximum(index, 0)].astype(np.float32)           # (C, w, d)
    squared = ((old - recent[None]) ** 2).sum(axis=2) * valid
    distance = np.sqrt(squared.sum(axis=1) / valid.sum(axis=1))              # (C,)
    best = int(np.argmin(distance))
    if distance[best] > settings.retrace_tolerance * gradient:
        return Rejection("no_match")
    if _ambiguous(places, found, distance, best, settings):
        return Rejection("ambiguous")
    return _WindowMatch(int(found[best]), distance[best], path, gradient)


def _retrace(places: PlaceMap, current: int, recent: np.ndarray, match: _WindowMatch,
             settings: ClosureSettings) -> Closure:
    offset = _sub_step(places, match.old, current, recent, match.distance, settings)
    # the direction the window moved in most (not its net displacement: a window that went
    # out and back, as a forager does at a tree, has none)
    along = np.linalg.svd(np.diff(match.path, axis=0))[2][0]
    across = np.array([-along[1], along[0]])
    sigma = max(match.distance / match.gradient, settings.min_sigma)
    covariance = sigma**2 * np.outer(along, along) + \
        settings.across_track_sigma**2 * np.outer(across, across)
    return Closure(match.old, current, offset, covariance, "retrace")


def _median(values: np.ndarray) -> float:
    """np.median of a few values (a window's steps), without its overhead: a retrace test
    runs most steps once the map covers the ground."""
    ordered = np.sort(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return float((ordered[middle - 1] + ordered[middle]) / 2)


def _sub_step(places: PlaceMap, old: int, current: int, recent: np.ndarray, best: float,
              settings: ClosureSettings) -> np.ndarray:
    """The offset of the current place from the old one, refined between steps: a parabola
    through the window distances of the alignments one step before and after."""
    window = settings.window
    if old < window or old + 1 > current - settings.exclude:
        return np.zeros(2)

    def distance(end: int) -> float:
        codes = places.codes.data[end - window + 1:end + 1].astype(np.float32)
        return float(np.sqrt(((codes - recent) ** 2).sum(axis=1).mean()))

    before, after = distance(old - 1), distance(old + 1)
    curvature = before - 2 * best + after
    if curvature <= 1e-12:
        return np.zeros(2)
    shift = float(np.clip(0.5 * (before - after) / curvature, -0.5, 0.5))
    step = places.odometry.data[old + 1] if shift > 0 else -places.odometry.data[old]
    # the current place is where the old path is ``shift`` steps further on
    return -np.asarray(step, dtype=np.float64) * abs(shift)


def _crossing(places: PlaceMap, current: int, found: np.ndarray,
              settings: ClosureSettings) -> Closure | None:
    span, tail = settings.crossing_span, settings.crossing_tail
    found = found[found >= span]
    if len(found) == 0:
        return None
    now = places.codes.data[current - tail:current + 1].astype(np.float32)      # (L+1, d)
    now_path = places.relative_positions(current - tail, current, current)
    codes = places.codes.data[found].astype(np.float32)
    nearest = np.linalg.norm(codes[:, None] - now[None], axis=2).min(axis=1)
    order = np.argsort(nearest)[:settings.candidates_checked]
    meetings = _meetings(places, found[order], now, now_path, span)
    if meetings is None:
        return None
    best = int(np.argmin(meetings.gap))
    gap, old, gradients = float(meetings.gap[best]), int(meetings.old[best]), \
        meetings.gradients[best]
    if gap > settings.crossing_tolerance or gradients.min() < settings.min_gradient or \
            gradients.max() > settings.max_gradient or \
            meetings.sine[best] < settings.min_crossing_sine:
        return None
    others = np.arange(len(meetings.gap)) != best
    close = meetings.gap < settings.ambiguity_ratio * max(gap, settings.crossing_tolerance / 2)
    if (others & close).any():
        where = places.positions(np.array([old]))[0]
        elsewhere = np.linalg.norm(places.positions(meetings.old[others & close]) - where,
                                   axis=1) > settings.ambiguity_distance
        if elsewhere.any():
            return None
    # each path pins the meeting point along itself as well as its smell changes along it
    u, v = meetings.directions[best]
    sigma_old, sigma_now = (max(settings.crossing_tolerance / g, settings.min_sigma)
                            for g in gradients)
    covariance = sigma_old**2 * np.outer(u, u) + sigma_now**2 * np.outer(v, v) + \
        CROSSING_FLOOR**2 * np.eye(2)
    return Closure(old, current, meetings.offset[best], covariance, "crossing")


@dataclass(frozen=True)
class _Meetings:
    """Where the smell curves around C old places come closest to the current one."""
    gap: np.ndarray           # (C,) code distance there
    old: np.ndarray           # (C,) the old places
    offset: np.ndarray        # (C, 2) of the current place from the old one
    directions: np.ndarray    # (C, 2, 2) the old and the current path's direction there
    sine: np.ndarray          # (C,) of the crossing angle (the smaller of world and code space)
    gradients: np.ndarray     # (C, 2) smell change per world unit along each path there


def _meetings(places: PlaceMap, olds: np.ndarray, now: np.ndarray, now_path: np.ndarray,
              span: int) -> _Meetings | None:
    """For every old place at once (one batch, so a crowded neighbourhood costs no more
    Python than an empty one): the closest approach of the code polyline through the places
    ``span`` either side of it to the current polyline ``now`` (L+1, d) along ``now_path``
    (L+1, 2), by segment-to-segment distance. Old places whose path or the current one did not
    move there are left out; None when none is left."""
    # (np.diff, np.linalg.norm, np.clip, np.stack and np.unravel_index written out: the same
    # numbers without their per-call overhead, a sixth of this function's time, and a crossing
    # test runs on most steps once the map covers the ground)
    rows = np.arange(len(olds))
    stretch = olds[:, None] + np.arange(-span, span + 1)[None]                 # (C, K+1)
    before = places.codes.data[stretch].astype(np.float32)                      # (C, K+1, d)
    before_path = places.stretches_around(olds, span)                          # (C, K+1, 2)
    edges_before, edges_now = before[:, 1:] - before[:, :-1], now[1:] - now[:-1]  # (C,K,d) (L,d)
    start = before[:, :-1, None] - now[None, None, :-1]                         # (C, K, L, d)
    aa = (edges_before**2).sum(2)[:, :, None]
    bb = (edges_now**2).sum(1)[None, None]
    ab = np.einsum("ckd,ld->ckl", edges_before, edges_now)
    ra = -(start * edges_before[:, :, None]).sum(3)
    rb = (start * edges_now[None, None]).sum(3)
    determinant = np.maximum(aa * bb - ab**2, 1e-12)
    a = np.minimum(np.maximum((ra * bb + ab * rb) / determinant, 0), 1)        # (C, K, L)
    b = np.minimum(np.maximum((aa * rb + ab * ra) / determinant, 0), 1)
    apart = start + a[..., None] * edges_before[:, :, None] - b[..., None] * edges_now[None, None]
    gaps = np.sqrt((apart * apart).sum(3))
    closest = gaps.reshape(len(olds), -1).argmin(axis=1)
    k, ell = closest // gaps.shape[2], closest % gaps.shape[2]
    step_before = before_path[rows, k + 1] - before_path[rows, k]               # (C, 2)
    step_now = now_path[ell + 1] - now_path[ell]
    length_before = np.sqrt((step_before * step_before).sum(1))
    length_now = np.sqrt((step_now * step_now).sum(1))
    moved = (length_before >= 1e-6) & (length_now >= 1e-6)
    if not moved.any():
        return None
    u = step_before / np.maximum(length_before, 1e-12)[:, None]
    v = step_now / np.maximum(length_now, 1e-12)[:, None]
    code_before, code_now = edges_before[rows, k], edges_now[ell]               # (C, d)
    change_before = np.sqrt((code_before * code_before).sum(1))
    change_now = np.sqrt((code_now * code_now).sum(1))
    cosine_code = np.abs((code_before * code_now).sum(1)) / np.maximum(
        change_before * change_now, 1e-12)
    sine = np.minimum(np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]),
                      np.sqrt(np.maximum(0.0, 1 - cosine_code**2)))
    meeting_before = before_path[rows, k] + a[rows, k, ell][:, None] * step_before
    meeting_now = now_path[ell] + b[rows, k, ell][:, None] * step_now
    gradients = np.empty((len(olds), 2))
    gradients[:, 0] = change_before / np.maximum(length_before, 1e-12)
    gradients[:, 1] = change_now / np.maximum(length_now, 1e-12)
    directions = np.empty((len(olds), 2, 2))
    directions[:, 0], directions[:, 1] = u, v
    return _Meetings(gaps[rows, k, ell][moved], olds[moved],
                     (meeting_before - meeting_now)[moved],
                     directions[moved], sine[moved], gradients[moved])
