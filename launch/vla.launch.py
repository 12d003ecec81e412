"""The whole vla_ros pipeline on ROS 2: camera, state, policy and controller-bridge nodes.

    ros2 launch vla_ros vla.launch.py robot:=so100 model:=frozen hardware:=real
    ros2 launch vla_ros vla.launch.py --show-args

The node list comes from vla_ros.launch_plan.node_plan(), the ROS-free function that
`vla-ros launch` uses too, so the two launchers start the same nodes with the same parameters.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from vla_ros.launch_plan import LAUNCH_ARGUMENTS, node_plan

PACKAGE = "vla_ros"


def ros_parameters(parameters):
    """``NodeSpec.parameters`` as launch_ros takes them.

    Empty lists are left out (the node then uses its declared default): launch_ros and the rcl
    YAML parser cannot type an empty list and refuse it.
    """
    out = {}
    for name, value in parameters.items():
        if isinstance(value, (list, tuple)):
            if not value:
                continue
            value = list(value)
        out[name] = value
    return out


def nodes_for(values):
    """One launch_ros Node per NodeSpec of ``node_plan(**values)``."""
    return [
        Node(
            package=PACKAGE,
            executable=spec.executable,
            name=spec.name,
            namespace=spec.namespace or None,
            parameters=[ros_parameters(spec.parameters)],
            remappings=[tuple(pair) for pair in spec.remappings],
            # `ros2 launch` always means ROS 2 nodes, whatever VLA_ROS_TRANSPORT the shell has.
            additional_env={"VLA_ROS_TRANSPORT": "rclpy"},
            output="screen",
            emulate_tty=True,
        )
        for spec in node_plan(**values)
    ]


def _launch_setup(context, *args, **kwargs):
    values = {arg.name: LaunchConfiguration(arg.name).perform(context) for arg in LAUNCH_ARGUMENTS}
    return nodes_for(values)


def generate_launch_description():
    declared = [
        DeclareLaunchArgument(
            arg.name,
            default_value=arg.default,
            description=arg.description,
            **({"choices": list(arg.choices)} if arg.choices else {}),
        )
        for arg in LAUNCH_ARGUMENTS
    ]
    return LaunchDescription(declared + [OpaqueFunction(function=_launch_setup)])
