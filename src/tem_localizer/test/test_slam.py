"""The slam method on hand-made worlds: a smooth smell field from four landmarks, exact or
slipping odometry, paths drawn by hand (docs/design.md §10)."""
from __future__ import annotations

import dataclasses
import math
import os
import sys

import numpy as np
import pytest
import torch
from gtsam.symbol_shorthand import X

from tem_localizer import BeliefGrid, Localizer, LocalizerConfig
from tem_localizer.belief import ScrollingBelief
from tem_localizer.loop_closure import Closure, _meetings, candidates, find_closure
from tem_localizer.map_file import MapFileError, load_map, save_map
from tem_localizer.place_map import SEARCHED_PER_CELL, PlaceMap
from tem_localizer.slam import Slam, SlamSettings, _Candidate
from treeworld_schema import ConfigError

DIM = 64
LANDMARKS = np.array([[20.0, 30.0], [-25.0, -20.0], [10.0, -40.0], [-30.0, 40.0]])
EMBEDDINGS = np.random.default_rng(7).standard_normal((4, DIM)) * 5.6    # norms about 45
DIFFUSION = 100.0**2 / (2 * math.log(10))        # a landmark's weight is 0.1 at 100 units


def smell(position: np.ndarray) -> np.ndarray:
    weights = np.exp(-np.sum((LANDMARKS - position) ** 2, axis=1) / (2 * DIFFUSION))
    return weights @ EMBEDDINGS


def polyline(points: list[tuple[float, float]], step: float = 4.0) -> np.ndarray:
    """Positions every ``step`` units along straight legs between ``points``."""
    path = [np.array(points[0], float)]
    for start, end in zip(points[:-1], points[1:]):
        start, end = np.array(start, float), np.array(end, float)
        count = int(round(np.linalg.norm(end - start) / step))
        path += [start + (end - start) * (i / count) for i in range(1, count + 1)]
    return np.array(path)


def circle(laps: int, radius: float = 30.0, steps_per_lap: int = 60) -> np.ndarray:
    angles = 2 * np.pi * np.arange(laps * steps_per_lap + 1) / steps_per_lap
    return np.column_stack([radius * np.cos(angles) - radius, radius * np.sin(angles)])


def drive(slam: Slam, path: np.ndarray, slips: dict[int, np.ndarray] = (),
          smells=None) -> np.ndarray:
    """Steps ``slam`` along ``path``; odometry is exact except the ``slips`` (step -> extra
    displacement reported). Returns the estimates (T, 2) in the path's frame (a localizer's
    origin is where it started)."""
    slips = dict(slips)
    estimates = []
    for step, position in enumerate(path):
        action = position - path[step - 1] if step else np.zeros(2)
        action = action + slips.get(step, 0)
        observed = smell(position) if smells is None else smells(step, position)
        estimates.append(slam.step(action, observed).position)
    return np.array(estimates) + path[0]


def settings(**changes) -> SlamSettings:
    return dataclasses.replace(SlamSettings(odometry_sigma=0.2), **changes)


def test_a_crossing_corrects_a_known_slip():
    """East along y = 0, a loop north and west (where odometry slips 5 units east), then
    south across the first leg at right angles: where the smells meet, the slip is undone."""
    path = polyline([(-40, 0), (40, 0), (40, 100), (0, 100), (0, -40)])
    slip_step, crossing_step = 30, int(np.argmin(np.abs(path[60:, 1])) + 60)
    slam = Slam(DIM, settings())
    estimates = drive(slam, path, {slip_step: np.array([5.0, 0.0])})
    errors = np.linalg.norm(estimates - path, axis=1)
    assert errors[crossing_step - 1] == pytest.approx(5.0, abs=0.05)     # the slip, carried
    assert slam.counters.accepted.get("crossing", 0) >= 1
    # the loop's odometry (0.2 per axis per step over ~70 steps) against the closure's
    # metre-scale certainty: nearly all of the 5 units must go
    assert errors[crossing_step + 6:].max() < 1.0


def test_crossing_candidates_are_measured_in_one_batch_as_one_by_one():
    """The crossing test measures every candidate in one batch: each row is what that
    candidate alone gives, and a candidate whose stretch did not move is left out."""
    path = polyline([(-40, 0), (40, 0), (40, 100), (0, 100), (0, -40)])
    slam = Slam(DIM, settings())
    drive(slam, path)
    span, tail, current = 3, 4, len(path) - 1
    now = slam.places.codes.data[current - tail:current + 1].astype(np.float32)
    now_path = slam.places.relative_positions(current - tail, current, current)
    olds = np.arange(span, 60, 7)
    batch = _meetings(slam.places, olds, now, now_path, span)
    for row, old in enumerate(olds):
        alone = _meetings(slam.places, olds[row:row + 1], now, now_path, span)
        for name in ("gap", "old", "offset", "directions", "sine", "gradients"):
            np.testing.assert_allclose(getattr(batch, name)[row], getattr(alone, name)[0],
                                       rtol=1e-5, atol=1e-6)
    standing = Slam(DIM, settings())
    drive(standing, np.repeat(path[:1], 20, axis=0))
    still = standing.places.codes.data[15:20].astype(np.float32)
    assert _meetings(standing.places, np.array([5, 8]), still,
                     standing.places.relative_positions(15, 19, 19), span) is None


def test_few_passes_keeps_the_first_the_newest_and_passes_spread_between():
    def few(places, max_passes, gap=10):
        return places[PlaceMap.in_few_passes(places, max_passes, gap)]

    passes = [np.arange(start, start + 5) for start in range(0, 2000, 100)]   # 20 passes
    np.testing.assert_array_equal(few(np.concatenate(passes), 5),
                                  np.concatenate([passes[i] for i in (0, 5, 10, 14, 19)]))
    fewer = np.concatenate(passes[:5])
    np.testing.assert_array_equal(few(fewer, 5), fewer)
    # places fewer than ``gap`` steps apart are one pass, however many there are
    one = np.array([0, 3, 9, 18, 27, 36])
    np.testing.assert_array_equal(few(one, 1), one)
    assert len(few(np.zeros(0, np.int64), 5)) == 0


def test_places_within_a_radius_are_found_through_their_keyframes_as_by_brute_force():
    """``within`` looks only at keyframes that can hold a place inside the circle (their own
    distance less the farthest offset on them) and at the places settled keyframes hold; it
    must find exactly what checking every place finds, in order, places whose keyframe is
    outside the circle included: while every keyframe may still move, when half of them
    have settled and when all have (each round after searches that saw the cells before)."""
    rng = np.random.default_rng(5)
    places = PlaceMap(4, keyframe_every=4)
    for keyframe in range(60):
        places.add_keyframe(rng.uniform(-50, 50, 2))
        for _ in range(4):      # long strides: offsets reach well beyond a keyframe
            places.add_place(np.zeros(4), np.zeros(2), rng.normal(0, 15, 2))
    everything = np.arange(len(places))
    through_outside_keyframes = on_settled_keyframes = 0
    for first, settled in ((0, 0), (0, 30), (30, 60)):
        for keyframe in range(first, settled):
            places.settle_keyframe(keyframe, places.keyframe_positions.data[keyframe])
        for centre, radius in ((np.zeros(2), 20.0), (np.array([30.0, -10.0]), 7.5),
                               (np.array([-60.0, 60.0]), 25.0)):
            found, distance = places.within(places.near(centre, radius), centre, radius)
            apart = np.linalg.norm(places.positions(everything) - centre, axis=1)
            np.testing.assert_array_equal(found, everything[apart <= radius])
            np.testing.assert_allclose(distance, apart[apart <= radius])
            through_outside_keyframes += int((np.linalg.norm(
                places.keyframe_positions.data[places.keyframe_of(found)] - centre, axis=1)
                > radius).sum())
            on_settled_keyframes += int((places.keyframe_of(found) < settled).sum())
    assert through_outside_keyframes > 0 and on_settled_keyframes > 0


def test_the_map_size_kept_as_it_changes_equals_a_count_of_every_part():
    """``nbytes`` goes into /diagnostics every step, so it is kept up to date as keyframes
    settle and settled cells work out their places rather than counted over every cell; it
    must equal the count over every cell: while keyframes move, as they settle (a cell filled
    past SEARCHED_PER_CELL thins out), after searches that build the cells' places, and after
    more settle into cells already built."""
    def counted(places: PlaceMap) -> int:
        settled = sum(cell.keyframes.data.nbytes + (
            sum(part.nbytes for part in cell.places(places)) if cell.ready else 0)
            for cell in places.settled_cells.values())
        hashed = sum(len(members) for members in places.cells.values())
        return (places.codes.nbytes + places.odometry.nbytes + places.offsets.nbytes + settled
                + places.keyframe_positions.nbytes + places.reach.nbytes + 16 * hashed
                + places.hashed_cells.nbytes)

    rng = np.random.default_rng(9)
    places = PlaceMap(4, keyframe_every=4)
    keyframes = 3 * SEARCHED_PER_CELL
    for keyframe in range(keyframes):
        # every other one in the cell at the origin, which overfills
        places.add_keyframe(rng.uniform(1, 19, 2) if keyframe % 2 else rng.uniform(-30, 30, 2))
        for _ in range(4):
            places.add_place(np.ones(4), np.zeros(2), rng.normal(0, 5, 2))
    assert places.nbytes == counted(places)
    for first, last in ((0, keyframes // 2), (keyframes // 2, keyframes)):
        for keyframe in range(first, last):
            places.settle_keyframe(keyframe, places.keyframe_positions.data[keyframe])
            if keyframe % 17 == 0:
                places.within(places.near(np.zeros(2), 25.0), np.zeros(2), 25.0)
        assert places.nbytes == counted(places)
        places.within(places.near(np.zeros(2), 40.0), np.zeros(2), 40.0)
        assert places.nbytes == counted(places)
    assert all(cell.ready for cell in places.settled_cells.values())
    assert max(cell.arrivals for cell in places.settled_cells.values()) > SEARCHED_PER_CELL


def hashed_near(places: PlaceMap, centre: np.ndarray) -> np.ndarray:
    """Every keyframe the spatial hash offers to a search at ``centre``, in order."""
    near = places.near(centre, 0.0)
    return np.sort(np.concatenate([near.moving,
                                   *(cell.keyframes.view() for cell in near.settled)]))


def test_a_cell_visited_again_and_again_keeps_a_bounded_spread_of_keyframes_searchable():
    places = PlaceMap(4, keyframe_every=4)
    here = np.array([5.0, 5.0])
    visits = 5 * SEARCHED_PER_CELL
    for index in range(visits):
        places.add_keyframe(here)
        places.settle_keyframe(index, here)
    searched = hashed_near(places, here)
    assert SEARCHED_PER_CELL // 2 < len(searched) <= SEARCHED_PER_CELL
    spacing = np.unique(np.diff(searched))              # evenly over the whole run
    assert searched[0] == 0 and len(spacing) == 1 and visits - searched[-1] <= spacing[0]
    assert places.keyframes == visits          # the map itself keeps every one


def test_a_neighbourhood_crossed_lap_after_lap_is_searched_over_a_bounded_number_of_passes():
    """Fifteen laps of a circle: a loop-closure search sees 8 of the 15 passes by the start
    (the first, the newest it may use and six between); the loops still close."""
    slam = Slam(DIM, settings())
    estimates = drive(slam, circle(15))
    closure = slam.settings.closure
    current = len(slam.places) - 1
    nearby, distance = slam._neighbourhood(current)
    found = candidates(nearby, distance, 10.0, closure)
    every = candidates(nearby, distance, 10.0, dataclasses.replace(closure, max_passes=10**6))

    def passes(places):
        return 1 + int((np.diff(places) >= closure.pass_gap).sum())

    assert (passes(found), passes(every)) == (closure.max_passes, 15)
    assert set(found) <= set(every)
    assert (found.min(), found.max()) == (every.min(), every.max())
    assert sum(slam.counters.accepted.values()) > 0
    # every step from the second lap on (60 steps a lap) has old places to test against
    assert slam.counters.searched == len(circle(15)) - 60
    assert np.linalg.norm(estimates - circle(15), axis=1).max() < 0.5   # exact odometry


def test_a_retrace_closes_the_loop_at_the_start():
    """Three laps of a circle; odometry slips 3 units during the first: the second lap
    retraces the start of the first (before the slip) and pulls the estimate back."""
    path = circle(laps=3)
    slam = Slam(DIM, settings())
    estimates = drive(slam, path, {30: np.array([0.0, 3.0])})
    errors = np.linalg.norm(estimates - path, axis=1)
    assert errors[59] == pytest.approx(3.0, abs=0.05)
    assert slam.counters.accepted.get("retrace", 0) >= 1
    assert errors[75:].max() < 1.0


def test_a_retrace_a_fraction_of_a_step_off_the_old_track_still_closes():
    """As above, but the later laps run 0.15 units behind the first (within the retrace
    tolerance of 0.2 units of travel): no smell repeats exactly, yet the windows match, the
    loop closes by retrace, and the estimate is pulled back to within that offset."""
    radius, steps_per_lap = 30.0, 60
    angles = 2 * np.pi * np.arange(3 * steps_per_lap + 1) / steps_per_lap
    angles[steps_per_lap:] -= 0.15 / radius
    path = np.column_stack([radius * np.cos(angles) - radius, radius * np.sin(angles)])
    slam = Slam(DIM, settings())
    estimates = drive(slam, path, {30: np.array([0.0, 3.0])})
    errors = np.linalg.norm(estimates - path, axis=1)
    assert slam.counters.accepted.get("retrace", 0) >= 1
    assert errors[75:].max() < 1.0


def test_a_retrace_within_its_cooldown_takes_nothing_and_tries_no_crossing():
    """On the second lap of a circle the last window retraces the first: taken when a
    retrace may be, nothing at all within its cooldown (not a crossing in its place)."""
    slam = Slam(DIM, settings())
    drive(slam, circle(laps=2)[:100])
    current = len(slam.places) - 1
    nearby, distance = slam._neighbourhood(current)
    found = candidates(nearby, distance, 20.0, slam.settings.closure)
    taken = find_closure(slam.places, current, found, slam.settings.closure)
    assert isinstance(taken, Closure) and taken.kind == "retrace"
    assert abs(taken.old - (current - 60)) <= 1                  # one lap before
    assert find_closure(slam.places, current, found, slam.settings.closure,
                        retraces=False) is None


def test_the_belief_mean_and_covariance_follow_every_move_and_shift():
    """Worked out once per belief and only when asked for, yet always those of the belief
    as it is: after a step's blur, after a closure's shift and a re-centring."""
    grid = BeliefGrid(101, 1000.0)
    front = ScrollingBelief(grid, torch.device("cpu"), max_action_norm=20.0)
    before = front.covariance()
    for change in (lambda: front.move(np.array([3.3, -1.2])),
                   lambda: front.shift(np.array([12.4, 7.9])),
                   lambda: front.move(np.array([0.0, 0.0])),
                   lambda: front.shift(np.array([400.0, 0.0]))):      # beyond the margin
        change()
        summary = grid.summarize(front.belief)
        assert np.array_equal(front.mean(), summary.mean[0].double().cpu().numpy()
                              + front.centre)
        assert np.array_equal(front.covariance(), summary.covariance[0].double().cpu().numpy())
    assert not np.allclose(front.covariance(), before)           # the blur widened it
    assert front.centre[0] > 0                                   # and the window moved along


def test_pacing_back_and_forth_over_mapped_ground_keeps_the_estimate():
    """A lap, then 300 steps to and fro between two points of it (a forager at a tree): a
    window that ends where it began has no net direction, yet its closures must be usable."""
    lap = circle(laps=1)
    pacing = np.array([lap[10], lap[11]] * 150)
    path = np.concatenate([lap, pacing])
    slam = Slam(DIM, settings())
    estimates = drive(slam, path, {5: np.array([0.0, 2.0])})
    assert np.isfinite(estimates).all()
    assert sum(slam.counters.accepted.values()) >= 1
    assert np.linalg.norm(estimates - path, axis=1)[-100:].max() < 1.0



def test_settled_keyframes_stay_put_and_a_revisit_still_corrects_the_present():
    """A window of 40 steps (10 keyframes), shorter than a lap: every closure reaches a settled
    keyframe. The optimizer never holds more than 1.5 windows, a settled keyframe never moves
    again, and a slip in the second lap is still undone by retracing the first (through the
    settled end's prior)."""
    path = circle(laps=4)
    slam = Slam(DIM, settings(graph_window=40))
    window = 40 // slam.settings.keyframe_every
    held, settled_at_lap_two = [], None
    for step, position in enumerate(path):
        action = position - path[step - 1] if step else np.zeros(2)
        slam.step(action + (np.array([0.0, 3.0]) if step == 90 else 0), smell(position))
        held.append(slam.graph.isam.calculateEstimate().size())
        if step == 120:
            settled_at_lap_two = slam.graph.settled.view().copy()
    estimates = np.array([slam.places.positions(np.array([p]))[0] for p in range(len(path))])
    assert max(held) <= window + window // 2
    assert len(settled_at_lap_two) > 0
    np.testing.assert_array_equal(slam.graph.settled.view()[:len(settled_at_lap_two)],
                                  settled_at_lap_two)
    assert slam.counters.accepted.get("retrace", 0) >= 1
    assert np.linalg.norm(estimates[180:] + path[0] - path[180:], axis=1).max() < 1.0


def test_keyframe_estimates_read_in_one_pass_match_the_optimizer_key_by_key():
    """The graph reads a few estimates key by key and many in one pass, the map re-reads a
    keyframe only after the graph changed and rehashes keyframes in batches: through slips,
    closures and settling (and a final read of every keyframe in one pass), each keyframe's
    position equals GTSAM's own estimate of it (or its settled one), and each keyframe is
    hashed in the cell its position is in."""
    path = circle(laps=4)
    slam = Slam(DIM, settings(graph_window=40))
    drive(slam, path, {50: np.array([3.0, 0.0]), 130: np.array([0.0, -3.0])})
    graph, places = slam.graph, slam.places
    assert slam.counters.accepted and graph.settled.size > 0
    slam.refresh_in_turn(places.keyframes)
    keyframes = np.arange(graph.size)
    expected = np.array([graph.settled.data[k] if graph.is_settled(k) else
                         graph.isam.calculateEstimatePoint2(X(int(k))) for k in keyframes])
    np.testing.assert_array_equal(graph.positions(keyframes), expected)
    np.testing.assert_array_equal(places.keyframe_positions.view(), expected)
    for k in keyframes:
        cell = tuple(np.floor(expected[k] / places.cell).astype(int))
        assert k in hashed_near(places, expected[k])
        assert tuple(places.hashed_cells.data[k]) == cell


@pytest.mark.parametrize("shape", ["crossing", "circle"])
def test_exact_odometry_stays_exact(shape):
    path = polyline([(-40, 0), (40, 0), (40, 100), (0, 100), (0, -40)]) \
        if shape == "crossing" else circle(laps=3)
    slam = Slam(DIM, settings(odometry_sigma=0.05))
    estimates = drive(slam, path)
    assert np.linalg.norm(estimates - path, axis=1).max() < 0.5


def test_a_smell_unlike_anything_in_the_map_closes_nothing():
    """The second lap smells of nothing the first did: candidates are refused, counted, and
    the estimate does not jump (it stays dead reckoning, here exact)."""
    unlike = np.random.default_rng(1).standard_normal((200, DIM)) * 20
    path = circle(laps=2)
    slam = Slam(DIM, settings())
    estimates = drive(slam, path, smells=lambda step, p: smell(p) if step < 60
                      else unlike[step % 200])
    assert slam.counters.accepted == {}
    assert slam.counters.rejected.get("no_match", 0) > 0
    np.testing.assert_allclose(estimates, path, atol=1e-6)


def test_identical_smells_everywhere_close_nothing():
    constant = smell(np.zeros(2))
    slam = Slam(DIM, settings())
    estimates = drive(slam, circle(laps=2), {30: np.array([2.0, 0.0])},
                      smells=lambda step, p: constant)
    assert slam.counters.accepted == {}
    assert slam.counters.rejected.get("flat", 0) > 0
    slipped = circle(laps=2) + np.where(np.arange(121)[:, None] >= 30, [2.0, 0.0], 0)
    np.testing.assert_allclose(estimates, slipped, atol=1e-6)


def test_a_closure_that_contradicts_the_graph_is_outweighed():
    path = circle(laps=3)
    slam = Slam(DIM, settings())
    drive(slam, path)
    newest = slam.places.keyframes - 1
    before = slam.graph.position(newest)
    wrong, covariance = np.array([50.0, 0.0]), np.eye(2)
    closure = _Candidate(None, len(slam.places), 0, newest, wrong,
                         slam.loss_scale(len(slam.places), covariance), wrong)
    closure = dataclasses.replace(closure, result=Closure(0, len(slam.places) - 1, wrong,
                                                          covariance, "retrace"))
    slam.graph.add_closure(0, newest, wrong, covariance, closure.loss_scale)
    assert slam._optimize()
    assert np.linalg.norm(slam.graph.position(newest) - before) < 1.0
    assert slam._contradicts(closure)


def test_an_optimizer_failure_keeps_the_last_good_solution(monkeypatch, caplog):
    path = polyline([(-40, 0), (40, 0), (40, 100), (0, 100), (0, -40)])
    slam = Slam(DIM, settings())
    drive(slam, path[:70], {30: np.array([5.0, 0.0])})
    fail_once = {"left": 1}
    real_update = type(slam.graph.isam).update

    def update(isam, *arguments):
        if arguments == () and fail_once["left"]:      # the pass that settles a closure
            fail_once["left"] -= 1
            raise RuntimeError("indeterminant linear system")
        return real_update(isam, *arguments)

    monkeypatch.setattr(type(slam.graph.isam), "update", update)
    estimates = drive_on(slam, path, 70)
    assert slam.counters.optimizer_failures == 1
    assert slam.counters.rejected.get("optimizer_failed") == 1
    assert "pose graph optimization failed" in caplog.text
    # the failed closure moved nothing; the run went on and later closures still work
    assert np.isfinite(estimates).all()
    assert len(slam.places) == len(path)


def drive_on(slam: Slam, path: np.ndarray, start: int) -> np.ndarray:
    return np.array([slam.step(path[step] - path[step - 1], smell(path[step])).position
                     for step in range(start, len(path))]) + path[0]


# -- the Localizer with method slam: grid, files, relocalization --------------------------

def slam_config(**changes) -> LocalizerConfig:
    return dataclasses.replace(LocalizerConfig(), method="slam", sensory_embedding_dim=DIM,
                               device="cpu", odometry_sigma=0.2, **changes)


def localize(localizer: Localizer, path: np.ndarray, origin=None) -> np.ndarray:
    """Estimates along ``path`` in the path's frame; ``origin`` is where the localizer's
    frame starts (the path's first point, unless it works in a loaded map's frame)."""
    estimates = []
    for step in range(len(path)):
        action = path[step] - path[step - 1] if step else np.zeros(2)
        estimates.append(localizer.step(action, smell(path[step])).mean)
    return np.array(estimates) + (path[0] if origin is None else origin)


def test_the_belief_follows_a_5000_unit_straight_run():
    """The grid spans 1000 units; the window scrolls with the agent, nothing is lost."""
    localizer = Localizer(slam_config())
    path = np.column_stack([np.arange(501) * 10.0, np.zeros(501)])
    for step in range(1, len(path)):
        result = localizer.step(path[step] - path[step - 1], np.zeros(DIM))
    assert np.linalg.norm(result.mean - path[-1]) < 1e-6
    belief_mean = localizer.front.mean()
    assert np.linalg.norm(belief_mean - path[-1]) < localizer.grid.cell_size
    assert result.origin[0] > 4000                    # the OccupancyGrid moved along
    assert localizer.counters.lost == 0 and result.belief.sum() == pytest.approx(1.0)
    assert localizer.slam.counters.searched == 0        # never back where it has been


def test_nan_and_wrong_length_never_reach_the_map():
    localizer = Localizer(slam_config())
    localize(localizer, circle(laps=1)[:20])
    places = len(localizer.slam.places)
    assert localizer.step([1.0, 0.0], np.full(DIM, np.nan)).skipped == "nonfinite_smell"
    assert localizer.step([math.inf, 0.0], smell(np.zeros(2))).skipped == "nonfinite_action"
    assert localizer.step([1.0, 0.0], np.ones(DIM + 1)).skipped == "wrong_smell_length"
    assert len(localizer.slam.places) == places
    assert localizer.counters.skipped == {"nonfinite_smell": 1, "nonfinite_action": 1,
                                          "wrong_smell_length": 1}


def test_a_saved_map_reads_back_and_relocalizes_a_lost_agent(tmp_path):
    """Map two laps of a circle, save; a new localizer loads the map and starts a third of
    the way round, not told where: it finds itself and tracks within a cell."""
    mapper = Localizer(slam_config())
    localize(mapper, circle(laps=2))
    file = tmp_path / "map.npz"
    mapper.save_map(file)
    umask = os.umask(0o022)
    os.umask(umask)
    assert file.stat().st_mode & 0o777 == 0o666 & ~umask      # readable as the user's files are
    assert [item.name for item in tmp_path.iterdir()] == ["map.npz"]      # nothing left behind
    saved = load_map(file, DIM, mapper.grid.size, mapper.grid.cell_size)
    np.testing.assert_array_equal(saved.codes, mapper.slam.places.codes.view())
    assert saved.keyframe_positions.shape == (mapper.slam.places.keyframes, 2)

    lost = Localizer(slam_config())
    lost.load_map(file)
    start = 20
    path = circle(laps=3)[start:start + 150]
    estimates = localize(lost, path, origin=np.zeros(2))     # the map's frame: the circle's
    assert lost.relocalized_after is not None and lost.relocalized_after <= 100
    errors = np.linalg.norm(estimates - path, axis=1)
    assert errors[lost.relocalized_after:].max() < lost.grid.cell_size


def test_only_a_step_added_to_the_map_names_a_place_in_it(tmp_path):
    """While it searches a loaded map the agent adds no place to it, and a late frame adds none
    either: such a step names no place. Search steps once all named the map's last place, so
    a run's corrected trajectory (and the node's /tem/path) drew them all at that one point."""
    mapper = Localizer(slam_config())
    localize(mapper, circle(laps=2))
    file = tmp_path / "map.npz"
    mapper.save_map(file)
    lost = Localizer(slam_config())
    lost.load_map(file)
    mapped = len(lost.slam.places)
    path = circle(laps=3)[20:170]
    searched, named = 0, []
    for step in range(len(path)):
        searching = lost.relocalizing
        result = lost.step(path[step] - path[step - 1] if step else np.zeros(2),
                           smell(path[step]))
        if searching:
            searched += 1
            assert result.place is None
        else:
            named.append(result.place)
    assert searched > 0 and len(named) > 50
    assert named == list(range(mapped, mapped + len(named)))     # this session's own places
    assert lost.drop_late_frame(np.array([1.0, 0.0])).place is None


ROW = np.column_stack([np.arange(0.0, 2001.0, 100.0), np.tile([-35.0, 35.0], 11)[:21]])
ROW_KINDS = np.random.default_rng(11).standard_normal((len(ROW), DIM)) * 5.6


def row_smell(position: np.ndarray, kinds: np.ndarray = ROW_KINDS) -> np.ndarray:
    """The smell beside a row of landmarks 2,000 units long along y = 0."""
    return np.exp(-np.sum((ROW - position) ** 2, axis=1) / (2 * DIFFUSION)) @ kinds


def map_the_row(monkeypatch, tmp_path):
    """The row's map, mapped there and back 25 units apart from x = -50, saved: its file and
    the mapped path (its first point is the map frame's origin). ``smell`` is the row's."""
    monkeypatch.setattr(sys.modules[__name__], "smell", row_smell)
    mapper = Localizer(slam_config())
    mapped = polyline([(-50, 0), (2050, 0), (2050, 25), (-50, 25)], step=4.0)
    localize(mapper, mapped)
    file = tmp_path / "map.npz"
    mapper.save_map(file)
    return file, mapped


def test_an_agent_finds_itself_anywhere_in_a_map_wider_than_the_belief_grid(tmp_path, caplog,
                                                                            monkeypatch):
    """A row of landmarks 2,000 units long, mapped there and back. The belief grid's window
    spans 1,000 units, so the search starts on a coarse grid that holds the whole map: an
    agent started 700 units from the map's centre (outside the window around it, where it
    once 'found' itself 590 units off) or near either end finds itself within a cell. In a
    world with the same landmarks smelling of each other it never does."""
    file, mapped = map_the_row(monkeypatch, tmp_path)
    for start, direction in ((1700.0, -1), (300.0, 1), (1900.0, -1)):
        lost = Localizer(slam_config())
        with caplog.at_level("INFO", logger="tem_localizer.localizer"):
            lost.load_map(file)
        assert "the loaded map spans 2100 x 25 world units, more than the belief grid's " \
            "1000: searching it on 30-unit cells first" in caplog.text
        # no smell: no evidence, and the pose's uncertainty is the whole map's
        before = lost.step(np.zeros(2), np.zeros(DIM))
        assert np.sqrt(before.covariance[0, 0]) > 400
        # a late frame's motion moves the whole belief (no map pose to coast from yet); the
        # flat belief's edges blur across x by less than a coarse cell
        moved = lost.drop_late_frame(np.array([0.0, 12.0])).mean - before.mean
        assert moved[1] == pytest.approx(12.0, abs=1.0) and abs(moved[0]) < 30.0
        lost.drop_late_frame(np.array([0.0, -12.0]))
        path = np.column_stack([start + direction * 4.0 * np.arange(80), np.zeros(80)])
        estimates = localize(lost, path, origin=mapped[0])      # the map's frame
        assert lost.relocalized_after is not None and lost.relocalized_after <= 30, start
        errors = np.linalg.norm(estimates - path, axis=1)
        assert errors[lost.relocalized_after:].max() < lost.grid.cell_size / 5, start
    shuffled = ROW_KINDS[np.random.default_rng(3).permutation(len(ROW))]
    monkeypatch.setattr(sys.modules[__name__], "smell",
                        lambda position: row_smell(position, shuffled))
    lost = Localizer(slam_config())
    lost.load_map(file)
    localize(lost, np.column_stack([1700.0 - 4.0 * np.arange(300), np.zeros(300)]),
             origin=mapped[0])
    assert lost.relocalizing and lost.relocalized_after is None


def test_a_fix_no_loop_closure_confirms_is_taken_back_and_the_search_starts_over(
        tmp_path, caplog, monkeypatch):
    """On the row of landmarks the agent finds itself, then is carried 800 units on unseen
    (a kidnapped robot; in a real map the same happens where a few trees smell like others
    elsewhere and the fix was wrong from the start). Its odometry keeps it where it was found,
    the smells there no longer match the map's and no loop closes to the map: after
    CONFIRM_WITHIN such steps the fix and what was mapped on it are dropped, and the search
    starts over and finds where the agent really is. That fix stands though no loop closes
    there either (the agent's steps fall between the map's, too far for a retrace to match):
    the map explains the smells."""
    file, mapped = map_the_row(monkeypatch, tmp_path)
    robot = Localizer(slam_config())
    robot.load_map(file)
    loaded = len(robot.slam.places)
    position, carried, estimates, truth, steps = np.array([300.0, 0.0]), False, [], [], []
    with caplog.at_level("WARNING", logger="tem_localizer.localizer"):
        for step in range(220):
            move = np.array([4.0, 0.0]) if step else np.zeros(2)
            position = position + move
            if not carried and not robot.relocalizing:
                position, carried = position + [800.0, 0.0], True      # odometry never knew
            result = robot.step(move, smell(position))
            estimates.append(result.mean + mapped[0])       # the map's frame: the row's
            truth.append(position)
            steps.append(result)
    retracted = [i for i, result in enumerate(steps) if result.retracted]
    assert carried and robot.relocalization_retracted == 1 and len(retracted) == 1
    assert caplog.text.count("no loop closed to the loaded map in 30 steps") == 1
    # found again where the agent is, and this time a loop closed to the map
    assert not robot.relocalizing and robot.fix_trial is None
    assert robot.relocalized_after > retracted[0] + 1
    errors = np.linalg.norm(np.array(estimates) - truth, axis=1)
    assert errors[retracted[0] - 1] > 700 and errors[-20:].max() < robot.grid.cell_size / 5
    # what was mapped on the wrong fix is gone: the map holds the second fix's places only
    assert all(result.place is None for result in steps[retracted[0]:robot.relocalized_after])
    named = [result.place for result in steps[robot.relocalized_after:]]
    assert named == list(range(loaded, len(robot.slam.places)))


@pytest.mark.parametrize("landmark_order", [(1, 0, 3, 2), (2, 3, 0, 1), (3, 2, 1, 0)])
def test_a_map_of_another_world_is_never_taken_for_this_one(tmp_path, caplog, landmark_order):
    """The same trees planted elsewhere: the belief still tightens somewhere (each of these
    once made the agent 'find itself', after 5 to 101 steps), but the loaded map does not
    explain what is smelled there. Counted and warned about once; never a jump."""
    mapper = Localizer(slam_config())
    localize(mapper, circle(laps=2))
    file = tmp_path / "map.npz"
    mapper.save_map(file)

    def elsewhere(position: np.ndarray) -> np.ndarray:
        weights = np.exp(-np.sum((LANDMARKS - position) ** 2, axis=1) / (2 * DIFFUSION))
        return weights @ EMBEDDINGS[list(landmark_order)]

    lost = Localizer(slam_config())
    lost.load_map(file)
    places = len(lost.slam.places)
    path = circle(laps=3)[20:170]
    with caplog.at_level("WARNING", logger="tem_localizer.localizer"):
        for step in range(len(path)):
            lost.step(path[step] - path[step - 1] if step else np.zeros(2), elsewhere(path[step]))
    assert lost.relocalized_after is None and lost.relocalizer is not None
    assert len(lost.slam.places) == places                # nothing mapped on a guess
    assert lost.relocalization_unexplained > 0
    assert caplog.text.count("does not explain the smells") == 1
    assert lost.started_in_a_loaded_map and not mapper.started_in_a_loaded_map


LAWNMOWER = polyline([(-60, -60), (60, -60), (60, -40), (-60, -40), (-60, -20), (60, -20),
                      (60, 0), (-60, 0), (-60, 20), (60, 20), (60, 40), (-60, 40), (-60, 60),
                      (60, 60)], step=3.0)
ACROSS = polyline([(-50, -55), (50, -55), (50, -5), (-50, -5), (-50, 45), (50, 45), (0, -60),
                   (-50, 0), (50, 30)], step=3.0)


@pytest.mark.parametrize("wheel_scale", [1.1, 1 / 1.1])
def test_a_wheel_scale_off_by_10_percent_is_learned_against_a_loaded_map(tmp_path, wheel_scale):
    """A map made with exact odometry; a robot whose odometry reports ``wheel_scale`` times
    the distance it drives loads it, finds itself and drives across it: the scale it learns
    undoes the error within 2 %. Without a map, closures only ever compare odometry with
    itself: the scale cannot be seen and stays 1."""
    mapper = Localizer(slam_config())
    localize(mapper, LAWNMOWER)
    file = tmp_path / "map.npz"
    mapper.save_map(file)

    def drive_across(robot: Localizer) -> np.ndarray:
        return np.array([robot.step(wheel_scale * (ACROSS[step] - ACROSS[step - 1]) if step
                                    else np.zeros(2), smell(ACROSS[step])).mean
                         for step in range(len(ACROSS))])

    robot = Localizer(slam_config(learn_action_map=True, heading_window_steps=100))
    robot.load_map(file)
    estimates = drive_across(robot) + LAWNMOWER[0]
    assert robot.heading.scale * wheel_scale == pytest.approx(1.0, abs=0.02)
    assert np.linalg.norm(estimates[-50:] - ACROSS[-50:], axis=1).max() < 2.0

    unmapped = Localizer(slam_config(learn_action_map=True, heading_window_steps=100))
    drive_across(unmapped)
    assert unmapped.heading.scale == 1.0


def test_learning_the_scale_without_a_window_to_fit_it_over_is_refused():
    with pytest.raises(ConfigError, match="learn_action_map: slam fits odometry's scale over "
                                          "heading_window_steps, which is 0"):
        slam_config(learn_action_map=True).check()


@pytest.mark.parametrize("flag", ["start_in_map", "save_map_on_exit"])
def test_a_node_told_to_read_or_write_a_map_without_a_map_file_is_refused(flag):
    with pytest.raises(ConfigError, match=f"map_file: {flag} needs a map file"):
        slam_config(**{flag: True}).check()
    slam_config(**{flag: True, "map_file": "map.npz"}).check()


@pytest.mark.parametrize("damage, field", [
    ("grid", "grid_size"), ("smell", "smell_dim"), ("version", "version"),
    ("truncated", "not a readable map file"), ("corrupted", "not a readable map file"),
    ("shape", "codes"), ("nan", "keyframe_positions"), ("empty", "places: the map is empty"),
])
def test_a_bad_map_file_is_refused_and_the_current_map_kept(tmp_path, damage, field):
    mapper = Localizer(slam_config())
    localize(mapper, circle(laps=1))
    file = tmp_path / "map.npz"
    mapper.save_map(file)
    saved = load_map(file, DIM, mapper.grid.size, mapper.grid.cell_size)
    if damage in ("truncated", "corrupted"):
        data = bytearray(file.read_bytes())
        file.write_bytes(bytes(data[: len(data) // 2]) if damage == "truncated" else
                         bytes(data[:30]) + bytes(64) + bytes(data[94:]))
    elif damage == "grid":
        save_map(dataclasses.replace(saved, grid_size=51), file)
    elif damage == "smell":
        save_map(dataclasses.replace(saved, smell_dim=DIM + 1), file)
    elif damage == "shape":
        np.savez(file, **dict(np.load(file)) | {"codes": saved.codes[:-1]})
    elif damage == "empty":             # saved by a node stopped before its first step
        Localizer(slam_config()).save_map(file)
    elif damage == "nan":
        positions = saved.keyframe_positions.copy()
        positions[0, 0] = np.nan
        save_map(dataclasses.replace(saved, keyframe_positions=positions), file)
    else:
        import json
        archive = dict(np.load(file))
        header = json.loads(archive["header"].tobytes()) | {"version": 99}
        archive["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
        np.savez(file, **archive)
    current = Localizer(slam_config())
    localize(current, circle(laps=1)[:30])
    places = len(current.slam.places)
    with pytest.raises(MapFileError) as error:
        current.load_map(file)
    assert str(file) in str(error.value) and field in str(error.value)
    assert len(current.slam.places) == places and current.relocalizer is None
