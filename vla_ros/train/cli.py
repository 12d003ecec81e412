"""``vla-ros`` sub-commands of the train layer."""
from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add this layer's sub-commands to the ``vla-ros`` parser."""
