#!/bin/bash
# The ROS 2 install and the workspace, then the command (by default the launch file).
set -e
. /opt/ros/kilted/setup.sh
. /ws/install/setup.sh
exec "$@"
