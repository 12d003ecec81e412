"""Errors of the policy layer. Plain Python (no torch), so callers can catch them cheaply.

Each message names the thing that is wrong (a checkpoint, a file, a dimension) and what to do.
"""
from __future__ import annotations


class CheckpointError(RuntimeError):
    """A checkpoint cannot be found, downloaded or loaded.

    The message names the checkpoint (hub id or directory) or the file inside it, and how to
    fix it (for example ``pass checkpoint:=<dir>``).
    """


class PolicyMismatchError(ValueError):
    """A loaded policy does not fit the robot (state/action dimension, camera keys, stats)."""
