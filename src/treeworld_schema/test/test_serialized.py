"""The numpy-written messages are what rclpy writes for the same message: as long, and read
back equal (the padding between fields is unspecified: rclpy leaves whatever was in memory)."""
import numpy as np
import pytest
from geometry_msgs.msg import Point, PoseStamped
from nav_msgs.msg import Path
from rclpy.serialization import deserialize_message, serialize_message
from visualization_msgs.msg import Marker, MarkerArray

from treeworld_schema import serialized


def reference_path(stamp_ns, frame_id, stamps_ns, positions, orientations) -> Path:
    message = Path()
    message.header.frame_id = frame_id
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    for stamp, (x, y), (qx, qy, qz, qw) in zip(stamps_ns, positions, orientations):
        pose = PoseStamped()
        pose.header.frame_id = frame_id
        pose.header.stamp.sec, pose.header.stamp.nanosec = divmod(int(stamp), 10**9)
        pose.pose.position.x, pose.pose.position.y = float(x), float(y)
        o = pose.pose.orientation
        o.x, o.y, o.z, o.w = float(qx), float(qy), float(qz), float(qw)
        message.poses.append(pose)
    return message


# frame names of every length modulo 8 move the padding before each pose's doubles
@pytest.mark.parametrize("frame_id", ["m", "ma", "map", "odom", "map_2", "world1", "base_lk",
                                      "tem_map_frame"])
@pytest.mark.parametrize("count", [0, 1, 2, 7])
def test_a_path_is_serialized_as_rclpy_serializes_it(frame_id, count):
    rng = np.random.default_rng(count + len(frame_id))
    stamps = np.sort(rng.integers(0, 4 * 10**11, count))
    positions = rng.normal(0, 100, (count, 2))
    yaws = rng.uniform(-np.pi, np.pi, count)
    orientations = np.stack([np.zeros(count), np.zeros(count), np.sin(yaws / 2),
                             np.cos(yaws / 2)], axis=1)
    stamp = 123 * 10**9 + 456
    written = serialized.path(stamp, frame_id, stamps, positions, orientations)
    reference = reference_path(stamp, frame_id, stamps, positions, orientations)
    assert len(written) == len(serialize_message(reference))
    assert deserialize_message(written, Path) == reference


def markers(namespaces, point_counts, rng):
    message = MarkerArray()
    for i, (namespace, count) in enumerate(zip(namespaces, point_counts)):
        marker = Marker(ns=namespace, id=i, type=Marker.LINE_LIST, action=Marker.ADD)
        marker.header.frame_id = "map"
        marker.scale.x, marker.color.r, marker.color.a = 0.5, 1.0, 1.0
        marker.points = [Point(x=x, y=y, z=z) for x, y, z in rng.normal(0, 50, (count, 3))]
        message.markers.append(marker)
    return message


@pytest.mark.parametrize("namespaces, counts", [
    (["keyframes", "loop_closures"], [1000, 6]),
    (["a", "bc"], [0, 3]),
    (["abc", "abcd"], [5, 0]),
    (["", "x"], [1, 1]),
    (["only"], [2]),
    (["one", "two", "three"], [0, 0, 0]),
])
def test_marker_points_are_serialized_as_rclpy_serializes_them(namespaces, counts):
    rng = np.random.default_rng(sum(counts))
    reference = markers(namespaces, counts, rng)
    points = [np.array([[p.x, p.y, p.z] for p in m.points]).reshape(-1, 3)
              for m in reference.markers]
    # the same markers without their points, which the arrays supply
    template = markers(namespaces, [0] * len(counts), rng)
    for marker, source in zip(template.markers, reference.markers):
        marker.header, marker.scale, marker.color = source.header, source.scale, source.color
    written = serialized.marker_array(template, points)
    assert len(written) == len(serialize_message(reference))
    assert deserialize_message(written, MarkerArray) == reference
    assert all(len(m.points) == 0 for m in template.markers)    # left as it was


def test_points_on_the_ground_plane_get_z_zero():
    template = markers(["flat"], [0], np.random.default_rng(0))
    written = deserialize_message(serialized.marker_array(template, [np.array([[1.0, 2.0]])]),
                                  MarkerArray)
    assert [(p.x, p.y, p.z) for p in written.markers[0].points] == [(1.0, 2.0, 0.0)]
