"""Every Tree World process starts rclpy through ``init_ros``, which gives Fast DDS the
project's profile (reliable writers repair a lost sample within 0.1 s, not 3 s)."""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

from treeworld_schema.ros import FASTDDS_PROFILE, PROFILE_VARIABLES

# a process that starts rclpy as every node does, makes a reliable writer, and says which
# profile file Fast DDS was given
NODE = """
import os
from std_msgs.msg import Float32
from treeworld_schema.ros import init_ros
import rclpy
init_ros()
node = rclpy.create_node("profile_check")
node.create_publisher(Float32, "profile_check", 10)
print("profile:", os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE"), flush=True)
node.destroy_node()
rclpy.shutdown()
"""


def start_node(**variables: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in PROFILE_VARIABLES}
    environment |= {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": "77"}
    return subprocess.run([sys.executable, "-c", NODE], capture_output=True, text=True,
                          env=environment | variables, timeout=60)


def test_the_profile_sets_a_short_heartbeat_and_nothing_else():
    namespace = {"dds": "http://www.eprosima.com"}
    root = ElementTree.parse(FASTDDS_PROFILE).getroot()
    writers = root.findall("dds:profiles/dds:data_writer", namespace)
    assert len(writers) == 1 and writers[0].get("is_default_profile") == "true"
    period = writers[0].find("dds:times/dds:heartbeat_period", namespace)
    seconds = int(period.find("dds:sec", namespace).text) + \
        int(period.find("dds:nanosec", namespace).text) / 1e9
    assert 0 < seconds <= 0.1
    assert [child.tag.split("}")[1] for child in writers[0]] == ["times"]


def test_nodes_load_the_profile_and_fast_dds_accepts_it():
    started = start_node()
    assert started.returncode == 0, started.stderr[-2000:]
    assert f"profile: {FASTDDS_PROFILE}" in started.stdout
    assert "XMLPARSER" not in started.stdout + started.stderr


def test_a_profile_of_the_users_own_is_kept(tmp_path):
    # a broken one, so that Fast DDS's complaint shows it was read (and that the check above
    # would see a profile Fast DDS refuses)
    own = tmp_path / "own.xml"
    own.write_text(FASTDDS_PROFILE.read_text().replace("heartbeat_period", "heartbeat_periodX"))
    started = start_node(FASTDDS_DEFAULT_PROFILES_FILE=str(own))
    assert f"profile: {own}" in started.stdout
    assert "XMLPARSER" in started.stdout + started.stderr
    legacy = start_node(FASTRTPS_DEFAULT_PROFILES_FILE=str(own))
    assert "XMLPARSER" in legacy.stdout + legacy.stderr
