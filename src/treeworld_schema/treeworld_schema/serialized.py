"""Large messages serialized straight from numpy arrays, for ``Publisher.publish(bytes)``.

rclpy serializes a message by visiting every Python object in it: a nav_msgs/Path of 1,000
poses costs 2.7 ms, and a marker of 1,000 points about as much again (2 cores, rclpy of ROS 2
Kilted). The localizer sends both every few steps, so in a lockstep run they cost more than
the rest of its output together. Here the repeated part of such a message is written as one
numpy array in the wire format (CDR, little-endian, as every ROS 2 middleware exchanges it):
the same bytes in about 1 % of the time.

Only the two layouts that need it are written: ``path`` (nav_msgs/Path, whose definition has
not changed since ROS 2 began) and ``marker_array`` (markers whose points come from arrays;
everything else in them is serialized by rclpy, so a distribution that adds fields to
visualization_msgs/Marker changes nothing here).
"""
from __future__ import annotations

import struct

import numpy as np
from geometry_msgs.msg import Point
from rclpy.serialization import serialize_message

CDR_LE = b"\x00\x01\x00\x00"       # encapsulation: plain CDR, little-endian
POSE_DOUBLES = 7                   # position x, y, z; orientation x, y, z, w
POINT_BYTES = 24                   # geometry_msgs/Point: three float64


class _Writer:
    """Appends CDR fields, aligned as CDR aligns them: relative to the end of the
    encapsulation header."""

    def __init__(self):
        self.parts = [CDR_LE]
        self.size = 0

    def raw(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)

    def align(self, boundary: int) -> None:
        self.raw(b"\x00" * (-self.size % boundary))

    def uint32(self, value: int) -> None:
        self.align(4)
        self.raw(struct.pack("<I", value))

    def header(self, stamp_ns: int, frame_id: bytes) -> None:
        """std_msgs/Header: builtin_interfaces/Time (int32 sec, uint32 nanosec), frame_id."""
        self.align(4)
        self.raw(struct.pack("<iI", *divmod(int(stamp_ns), 10**9)))
        self.uint32(len(frame_id) + 1)
        self.raw(frame_id + b"\x00")

    def doubles(self, values) -> None:
        self.align(8)
        self.raw(np.asarray(values, dtype="<f8").tobytes())

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def _pose_stamped_layout(frame_id: bytes) -> np.dtype:
    """One geometry_msgs/PoseStamped as it lies in a sequence after the first, which
    starts 8-aligned (the element before it ends with a float64)."""
    header = 12 + len(frame_id) + 1
    pose = header + (-header % 8)
    return np.dtype({"names": ["sec", "nanosec", "frame_length", "frame_id", "pose"],
                     "formats": ["<i4", "<u4", "<u4", f"S{len(frame_id) + 1}",
                                 ("<f8", POSE_DOUBLES)],
                     "offsets": [0, 4, 8, 12, pose],
                     "itemsize": pose + 8 * POSE_DOUBLES})


def path(stamp_ns: int, frame_id: str, stamps_ns: np.ndarray, positions: np.ndarray,
         orientations: np.ndarray) -> bytes:
    """A serialized nav_msgs/Path: every pose in ``frame_id``, stamped ``stamps_ns`` (n,),
    at ``positions`` (n, 2) on the ground plane, turned by the quaternions ``orientations``
    (n, 4: x, y, z, w)."""
    frame = frame_id.encode()
    count = len(stamps_ns)
    poses = np.zeros((count, POSE_DOUBLES))
    poses[:, :2], poses[:, 3:] = positions, orientations
    seconds, nanoseconds = np.divmod(np.asarray(stamps_ns, dtype=np.int64), 10**9)
    writer = _Writer()
    writer.header(stamp_ns, frame)
    writer.uint32(count)
    if count:
        # the first pose's padding depends on where the sequence starts; the rest repeat
        writer.header(int(stamps_ns[0]), frame)
        writer.doubles(poses[0])
        rest = np.zeros(count - 1, _pose_stamped_layout(frame))
        rest["sec"], rest["nanosec"] = seconds[1:], nanoseconds[1:]
        rest["frame_length"], rest["frame_id"] = len(frame) + 1, frame
        rest["pose"] = poses[1:]
        writer.raw(rest.tobytes())
    return writer.bytes()


def marker_array(markers, points: list[np.ndarray]) -> bytes:
    """A visualization_msgs/MarkerArray serialized with ``markers.markers[i].points`` holding
    ``points[i]`` ((n, 2) or (n, 3) array; z is 0 when not given). ``markers`` is left as
    it was."""
    # one placeholder point per non-empty marker, with values found nowhere else in it
    placeholders = {i: np.array([1e-300 * (i + 1), -7.25e-301, 3.5e-299])
                    for i, array in enumerate(points) if len(array)}
    originals = [marker.points for marker in markers.markers]
    for i, marker in enumerate(markers.markers):
        marker.points = [Point(x=placeholders[i][0], y=placeholders[i][1],
                               z=placeholders[i][2])] if i in placeholders else []
    try:
        template = serialize_message(markers)
    finally:
        for marker, original in zip(markers.markers, originals):
            marker.points = original
    parts, start = [], 0
    for i, placeholder in placeholders.items():
        at = template.index(placeholder.astype("<f8").tobytes(), start)
        # in Marker the count ends 8-aligned (after frame_locked), right before the point
        count_at = at - 4
        if template[count_at:at] != struct.pack("<I", 1):
            raise ValueError("this visualization_msgs/Marker has padding before its points")
        array = np.asarray(points[i], dtype="<f8")
        xyz = np.zeros((len(array), 3), dtype="<f8")
        xyz[:, :array.shape[1]] = array
        # n points move what follows by 24 (n - 1) bytes, a multiple of 8: its alignment holds
        parts += [template[start:count_at], struct.pack("<I", len(array)),
                  template[count_at + 4:at], xyz.tobytes()]
        start = at + POINT_BYTES
    parts.append(template[start:])
    return b"".join(parts)
