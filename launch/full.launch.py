"""vla.launch.py with model:=full; robot, hardware, checkpoint, device and namespace pass through.

    ros2 launch vla_ros full.launch.py robot:=so100 hardware:=real
"""
import os

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

MODEL = "full"


def generate_launch_description():
    vla = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vla.launch.py")
    return LaunchDescription([
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(vla),
            launch_arguments={"model": MODEL}.items(),
        ),
    ])
