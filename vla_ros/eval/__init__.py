"""Recording, rosbag replay, offline evaluation and dataset conversion.

- ``bagio``: rosbag2 writing (mcap / sqlite3, with message definitions) and reading, clear errors.
- ``live``: :class:`Recorder` (topics -> bag) and :class:`Replayer` (bag -> topics) over a port.
- ``recording``: a bag or LeRobot dataset as time series, observations decoded on demand.
- ``evaluate`` / ``metrics`` / ``report``: offline evaluation through the policy runtime.
- ``convert``: rosbag2 <-> LeRobotDataset v3.
- ``synthetic``: mock-robot sessions written as real bags (tests, benchmarks).
- ``cli``: the ``vla-ros record | replay | eval | convert`` sub-commands.
"""
