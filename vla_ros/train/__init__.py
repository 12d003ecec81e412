"""Fine-tuning strategies and Shallow-pi distillation (``vla-ros finetune``, ``vla-ros distill``).

Modules:

- ``finetune``: the seed study's strategies ``flow``, ``l1``, ``frozen-vision``.
- ``distill``: Shallow-pi distillation of a teacher into a shallower student.
- ``student``: which teacher layers a student keeps, in a layout LeRobot's SmolVLA can run.
- ``objectives``: flow matching, L1, and the distillation loss (ground truth + teacher velocity +
  attention transfer), as modules LeRobot's ``update_policy`` runs.
- ``loop``: the training run (LeRobot's optimizer presets, update step, checkpoints, resumption),
  the loss CSV and plot.
- ``data``: the LeRobotDataset (or a converted rosbag), checked against the policy.
- ``sources``: starting checkpoints (variant name, hub id or directory).
- ``synthetic``: a small synthetic LeRobotDataset (tests, benchmarks, offline trials).
- ``cli``: the ``vla-ros`` sub-commands.

Everything needing torch is imported by the modules, not here.
"""
