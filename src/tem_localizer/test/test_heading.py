"""Fitting how far the odometry frame is turned in the map (ROS-free)."""
import math

import numpy as np
import pytest

from tem_localizer.heading import OdometryHeading, similarity_between


def turned(points: np.ndarray, angle: float) -> np.ndarray:
    cos, sin = math.cos(angle), math.sin(angle)
    return points @ np.array([[cos, sin], [-sin, cos]])


def test_the_turn_and_scale_between_two_point_sets_are_found_whatever_their_offset():
    points = np.random.default_rng(0).normal(0, 30, size=(25, 2))
    assert similarity_between(points, turned(points, 0.3) + [50.0, -20.0]) == \
        pytest.approx((0.3, 1.0))
    assert similarity_between(points, 1.1 * turned(points, -2.5)) == pytest.approx((-2.5, 1.1))


def walk(heading: OdometryHeading, steps: int, map_positions, odometry: dict) -> None:
    """Odometry drives a gentle curve, one place per step (``odometry``: place -> odometry
    position, for every walk on ``heading``); ``map_positions(odometry positions)`` is the
    map."""
    for _ in range(steps):
        place = heading.steps
        displacement = 5.0 * np.array([math.cos(0.02 * place), math.sin(0.02 * place)])
        heading.to_map(displacement)
        odometry[place] = heading.odometry_position.copy()
        heading.observe(place, lambda places: map_positions(
            np.array([odometry[place] for place in places])))


def test_the_fit_takes_the_maps_turn_and_holds_where_nothing_was_corrected():
    heading, odometry = OdometryHeading(window=20, every=5), {}
    walk(heading, 60, lambda positions: positions, odometry)    # the map agrees with odometry
    assert heading.angle == pytest.approx(0.0, abs=1e-12)
    walk(heading, 60, lambda positions: turned(positions, 0.1) + 7.0, odometry)   # turned
    assert heading.angle == pytest.approx(0.1)
    assert heading.to_map(np.array([1.0, 0.0])) == pytest.approx([math.cos(0.1), math.sin(0.1)])


def test_too_few_steps_fit_nothing():
    heading = OdometryHeading(window=20, every=5)
    walk(heading, 19, lambda positions: turned(positions, 0.5), {})
    assert heading.angle == 0.0
