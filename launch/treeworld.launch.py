"""Tree World + TEM localizer: the three-node graph, for `ros2 launch` on a ROS 2 install.

    ros2 launch launch/treeworld.launch.py [config:=FILE] [controller:=spiral] [steps:=1000]
                                           [use_rviz:=true]

The parameter file is the same one `treeworld run|launch --config` reads (config/treeworld.yaml).
Without a ROS 2 install, `treeworld launch` starts the same graph from the pip install.
"""
from pathlib import Path

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription

REPOSITORY = Path(__file__).resolve().parent.parent


def generate_launch_description() -> LaunchDescription:
    config = LaunchConfiguration("config")
    use_sim_time = {"use_sim_time": True}
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=str(REPOSITORY / "config" / "treeworld.yaml"),
                              description="ros__parameters file for all three nodes"),
        DeclareLaunchArgument("controller", default_value="spiral",
                              description="spiral | circle | random | path"),
        DeclareLaunchArgument("steps", default_value="1000", description="steps to simulate"),
        DeclareLaunchArgument("use_rviz", default_value="true", description="start RViz"),
        Node(package="treeworld_sim", executable="treeworld_sim", name="treeworld_sim",
             output="screen",
             parameters=[config, {"steps": ParameterValue(LaunchConfiguration("steps"),
                                                          value_type=int)}]),
        Node(package="spiral_controller", executable="spiral_controller",
             name="spiral_controller", output="screen",
             parameters=[config, use_sim_time,
                         {"controller": LaunchConfiguration("controller")}]),
        Node(package="tem_localizer", executable="tem_localizer", name="tem_localizer",
             output="screen", parameters=[config, use_sim_time]),
        Node(package="rviz2", executable="rviz2", name="rviz2",
             arguments=["-d", str(REPOSITORY / "config" / "treeworld.rviz")],
             parameters=[use_sim_time], condition=IfCondition(LaunchConfiguration("use_rviz"))),
    ])
