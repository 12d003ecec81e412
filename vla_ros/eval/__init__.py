"""Recording, rosbag replay, offline evaluation and dataset conversion."""
