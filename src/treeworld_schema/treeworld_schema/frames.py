"""Planar poses and the transforms between REP 105's frames (docs/design.md §12), ROS-free.

A pose is (x, y, yaw): where a frame's origin sits in its parent and how far it is turned
(radians, counter-clockwise). The localizer estimates where ``base_link`` is in ``map``; the
robot's odometry says where it is in ``odom``. Like AMCL, the localizer then publishes
``map -> odom``, the correction that makes ``map -> odom -> base_link`` land on its estimate,
so odometry stays smooth and the correction carries the jumps.
"""
from __future__ import annotations

import math

import numpy as np

UNIT_TOLERANCE = 1e-3   # |q| may differ from 1 by this much (float32 round trips)


def compose(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``second`` (a pose in ``first``'s frame) in ``first``'s parent frame: (3,)."""
    x, y, yaw = first
    cos, sin = math.cos(yaw), math.sin(yaw)
    return np.array([x + cos * second[0] - sin * second[1],
                     y + sin * second[0] + cos * second[1],
                     wrap(yaw + second[2])])


def inverse(pose: np.ndarray) -> np.ndarray:
    """The parent's pose in the frame of ``pose``: (3,)."""
    x, y, yaw = pose
    cos, sin = math.cos(yaw), math.sin(yaw)
    return np.array([-cos * x - sin * y, sin * x - cos * y, wrap(-yaw)])


def map_to_odom(base_in_map: np.ndarray, base_in_odom: np.ndarray) -> np.ndarray:
    """The ``odom`` frame's pose in ``map`` such that odom's ``base_in_odom`` lands on the
    estimate ``base_in_map``: (3,)."""
    return compose(base_in_map, inverse(base_in_odom))


def wrap(angle: float) -> float:
    """``angle`` in [-pi, pi)."""
    return (angle + math.pi) % (2 * math.pi) - math.pi


def yaw_of(x: float, y: float, z: float, w: float) -> float:
    """The rotation about z of a unit quaternion. ValueError when it is not unit length (a
    robot driver that forgot to normalize, or garbage): the yaw would be meaningless."""
    norm = math.sqrt(x * x + y * y + z * z + w * w)
    if not math.isfinite(norm) or abs(norm - 1.0) > UNIT_TOLERANCE:
        raise ValueError(f"quaternion ({x:g}, {y:g}, {z:g}, {w:g}) has length {norm:g}, not 1")
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def quaternion_of(yaw: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation by ``yaw`` about z."""
    return tuple(float(value) for value in quaternions_of(np.array([yaw]))[0])


def quaternions_of(yaws: np.ndarray) -> np.ndarray:
    """(n, 4): (x, y, z, w) of rotations by ``yaws`` (n,) about z."""
    yaws = np.asarray(yaws, dtype=np.float64)
    zeros = np.zeros_like(yaws)
    return np.stack([zeros, zeros, np.sin(yaws / 2), np.cos(yaws / 2)], axis=-1)
