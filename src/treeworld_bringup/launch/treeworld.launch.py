"""Tree World + TEM localizer: the three-node graph, for `ros2 launch` on a ROS 2 install.

    ros2 launch treeworld_bringup treeworld.launch.py [config:=FILE] [steps:=N]
        [controller:=spiral|circle|random|forage|path] [use_rviz:=true|false]
        [map_file:=FILE] [start_in_map:=true] [save_map_on_exit:=true]

Defaults come from the installed share/treeworld_bringup/config/treeworld.yaml (the same file
`treeworld run|launch --config` reads). steps, controller and the map arguments apply only when
given, and then win over the file. The launch ends when the simulator's run is complete (with
save_map_on_exit the localizer writes its map to map_file as it stops).
Without a ROS 2 install, `treeworld launch` starts the same graph from the pip install.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from treeworld_bringup.launch_parameters import OVERRIDES, write_parameter_file

SHARE = get_package_share_directory("treeworld_bringup")


def nodes(context):
    arguments = {name: LaunchConfiguration(name).perform(context) for name in OVERRIDES}
    parameters = str(write_parameter_file(LaunchConfiguration("config").perform(context),
                                          arguments))
    simulated_time = {"use_sim_time": True}
    simulator = Node(package="treeworld_sim", executable="treeworld_sim",
                     name="treeworld_sim", output="screen", parameters=[parameters])
    return [
        simulator,
        Node(package="spiral_controller", executable="spiral_controller",
             name="spiral_controller", output="screen",
             parameters=[parameters, simulated_time]),
        Node(package="tem_localizer", executable="tem_localizer", name="tem_localizer",
             output="screen", parameters=[parameters, simulated_time]),
        Node(package="rviz2", executable="rviz2", name="rviz2",
             arguments=["-d", os.path.join(SHARE, "config", "treeworld.rviz")],
             parameters=[simulated_time], condition=IfCondition(LaunchConfiguration("use_rviz"))),
        RegisterEventHandler(OnProcessExit(
            target_action=simulator,
            on_exit=[EmitEvent(event=Shutdown(reason="the simulator's run is complete"))])),
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("config",
                              default_value=os.path.join(SHARE, "config", "treeworld.yaml"),
                              description="ros__parameters file for all three nodes"),
        DeclareLaunchArgument("controller", default_value="",
                              description="spiral | circle | random | forage | path (default: "
                              "the config file's)"),
        DeclareLaunchArgument("steps", default_value="",
                              description="steps to simulate (default: the config file's)"),
        DeclareLaunchArgument("map_file", default_value="",
                              description="slam: the map file the localizer reads and writes"),
        DeclareLaunchArgument("start_in_map", default_value="",
                              description="slam: true to start in map_file, position unknown"),
        DeclareLaunchArgument("save_map_on_exit", default_value="",
                              description="slam: true to write the map to map_file on exit"),
        DeclareLaunchArgument("use_rviz", default_value="true", description="start RViz"),
        OpaqueFunction(function=nodes),
    ])
