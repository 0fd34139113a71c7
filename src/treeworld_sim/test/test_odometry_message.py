"""/odom as REP 105 has it: pose in odom, twist in base_link, covariance from the noise."""
import math

import numpy as np
import pytest

from treeworld_schema.frames import yaw_of
from treeworld_sim import TreeWorld, WorldConfig
from treeworld_sim.node import odometry_message


def test_the_twist_is_in_the_body_frame_and_the_pose_in_odom():
    message = odometry_message(None, "odom", np.array([3.0, 4.0]), math.pi / 2,   # facing +y
                               velocity=np.array([-2.0, 5.0]), position_variance=2.5,
                               velocity_variance=100.0, yaw_variance=0.01,
                               turn_rate_variance=1.0)
    twist = message.twist.twist.linear
    assert (twist.x, twist.y) == pytest.approx((5.0, 2.0))    # 5 ahead, 2 to its left
    q = message.pose.pose.orientation
    assert yaw_of(q.x, q.y, q.z, q.w) == pytest.approx(math.pi / 2)
    pose, twist_covariance = np.reshape(message.pose.covariance, (6, 6)), \
        np.reshape(message.twist.covariance, (6, 6))
    np.testing.assert_allclose(np.diag(pose), [2.5, 2.5, 0, 0, 0, 0.01])
    np.testing.assert_allclose(np.diag(twist_covariance), [100.0, 100.0, 0, 0, 0, 1.0])
    assert message.child_frame_id == "base_link" and message.header.frame_id == "odom"


def test_odometry_variance_grows_by_the_noise_on_moving_steps_only():
    world = TreeWorld(WorldConfig(odometry_noise=0.5, seed=1))
    for _ in range(10):
        world.move(np.array([3.0, 0.0]), np.array([1.0, 0.0]))
    for _ in range(5):
        world.move(np.zeros(2), np.array([1.0, 0.0]))  # wheels at rest do not tick
    assert world.odometry_variance == pytest.approx(10 * 0.25)
