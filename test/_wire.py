"""Raw DDS taps and an independent typestore for the multi-process tests.

What the nodes publish is read as raw bytes off DDS and decoded with a typestore built here from
the .msg files, not with the nodes' own decoding.
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from cyclonedds._clayer import ddspy_take
from cyclonedds.core import InstanceState, SampleState, ViewState
from cyclonedds.domain import DomainParticipant
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from rosbags.typesys import Stores, get_typestore, get_types_from_msg

from vla_ros.launcher import dds_environment
from vla_ros.transport.dds import idl_type

ROOT = Path(__file__).resolve().parent.parent
ANY = SampleState.Any | ViewState.Any | InstanceState.Any


def independent_typestore():
    store = get_typestore(Stores.ROS2_JAZZY)
    for f in sorted((ROOT / "msg").glob("*.msg")):
        store.register(get_types_from_msg(f.read_text(), f"vla_ros/msg/{f.stem}"))
    return store


class RawTap:
    """Takes raw samples of a few topics on a background thread, with the time they arrived."""

    def __init__(self, topics: dict[str, str], domain: int) -> None:
        self.dp = DomainParticipant(domain)
        self.readers = {name: DataReader(self.dp, Topic(self.dp, "rt/" + name, idl_type(t))) for name, t in topics.items()}
        self.samples: dict[str, list[tuple[float, bytes]]] = {name: [] for name in topics}
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            for name, reader in self.readers.items():
                got = ddspy_take(reader._ref, ANY, 64)
                if not isinstance(got, int):
                    now = time.time()
                    self.samples[name] += [(now, bytes(data)) for data, info in got if info.valid_data]
            time.sleep(0.002)

    def close(self) -> None:
        self._stop = True
        self.thread.join()


@contextmanager
def dds_domain(domain: int) -> Iterator[dict[str, str]]:
    """The environment of loopback-only processes on DDS ``domain``; this process joins it too
    (ROS_DOMAIN_ID, CYCLONEDDS_URI) until the block ends, then its own settings come back."""
    saved = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "CYCLONEDDS_URI")}
    env = dds_environment(loopback=True)
    env["ROS_DOMAIN_ID"] = os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["CYCLONEDDS_URI"] = env["CYCLONEDDS_URI"]
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
