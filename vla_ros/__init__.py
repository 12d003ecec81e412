"""vla_ros: Vision-Language-Action policies (SmolVLA through LeRobot) on ROS 2 robot arms."""

__version__ = "0.1.0"
