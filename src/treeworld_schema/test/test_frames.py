"""Planar pose maths for TF: map -> odom from the estimate and the odometry pose."""
import math

import numpy as np
import pytest

from treeworld_schema.frames import compose, inverse, map_to_odom, quaternion_of, wrap, yaw_of


def test_a_pose_composed_with_its_inverse_is_the_identity():
    pose = np.array([3.0, -2.0, 2.5])
    np.testing.assert_allclose(compose(pose, inverse(pose)), np.zeros(3), atol=1e-12)
    np.testing.assert_allclose(compose(inverse(pose), pose), np.zeros(3), atol=1e-12)


def test_compose_turns_the_second_pose_into_the_first_frame():
    # one unit ahead of a robot at (1, 2) facing +y is (1, 3)
    np.testing.assert_allclose(compose(np.array([1.0, 2.0, math.pi / 2]),
                                       np.array([1.0, 0.0, 0.0])),
                               [1.0, 3.0, math.pi / 2], atol=1e-12)


def test_map_to_odom_puts_odometry_on_the_estimate():
    """Whatever the drift, map -> odom -> base_link must land on the estimate."""
    rng = np.random.default_rng(0)
    for _ in range(100):
        estimate = rng.uniform(-100, 100, 3)
        estimate[2] = wrap(estimate[2])
        odometry = rng.uniform(-100, 100, 3)
        correction = map_to_odom(estimate, odometry)
        landed = compose(correction, odometry)
        np.testing.assert_allclose(landed[:2], estimate[:2], atol=1e-9)
        assert abs(wrap(landed[2] - estimate[2])) < 1e-9


def test_without_heading_drift_map_to_odom_is_the_position_error():
    correction = map_to_odom(np.array([10.0, 5.0, 0.7]), np.array([12.0, 1.0, 0.7]))
    np.testing.assert_allclose(correction, [-2.0, 4.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("yaw", [0.0, 1.0, -2.0, math.pi - 1e-6])
def test_quaternion_round_trip(yaw):
    assert yaw_of(*quaternion_of(yaw)) == pytest.approx(yaw)


@pytest.mark.parametrize("quaternion", [(0, 0, 0, 0), (0, 0, 0.5, 0.5), (0, 0, 1, 1),
                                        (0, 0, float("nan"), 1)])
def test_a_quaternion_that_is_not_unit_length_is_refused(quaternion):
    with pytest.raises(ValueError, match="not 1"):
        yaw_of(*quaternion)
