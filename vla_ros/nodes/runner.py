"""Starting a node from the command line on any backend.

The command line is the ROS 2 one on every backend: ``--ros-args -r __node:=NAME -r __ns:=/NS
-p name:=value --params-file FILE -r from:=to``; the rclpy backend hands it to rclpy, dds and
inproc parse it here. Errors a person can act on (bad parameters, unknown robot or model) end the
process with their message and exit code 2, not a traceback.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any, Callable

from ..core.embodiment import SpecError
from ..transport import default_backend, make_port
from ..transport.params import ParameterError, load_yaml_params, parse_overrides

log = logging.getLogger("vla_ros")


class UsageError(ValueError):
    """A problem with how the node was started; the message says what to change."""


def parse_ros_args(argv: list[str], default_name: str) -> dict[str, Any]:
    """Name, namespace, parameters and remappings from a ``--ros-args`` command line."""
    name, namespace = default_name, ""
    params: dict[str, Any] = {}
    files: list[str] = []
    remaps: dict[str, str] = {}
    args = list(argv)
    if "--ros-args" in args:
        args = args[args.index("--ros-args") + 1:]
    it = iter(args)
    for arg in it:
        if arg in ("-p", "--param"):
            params.update(parse_overrides([next(it, "")]))
        elif arg in ("-r", "--remap"):
            item = next(it, "")
            if ":=" not in item:
                raise UsageError(f"remapping {item!r} must look like from:=to")
            src, dst = item.split(":=", 1)
            if src == "__node":
                name = dst
            elif src == "__ns":
                namespace = dst
            else:
                remaps[src] = dst
        elif arg == "--params-file":
            files.append(next(it, ""))
        elif arg in ("--", "--ros-args"):
            continue
        else:
            raise UsageError(f"unexpected argument {arg!r}; use --ros-args -p name:=value -r from:=to --params-file FILE")
    merged: dict[str, Any] = {}
    for f in files:
        merged.update(load_yaml_params(f, name))
    merged.update(params)
    return {"name": name, "namespace": namespace, "parameters": merged, "remappings": remaps}


def setup_logging() -> None:
    level = os.environ.get("VLA_ROS_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="[%(levelname)s] [%(name)s] %(message)s", stream=sys.stderr)


def run(node_factory: Callable[[Any], Any], default_name: str, argv: list[str] | None = None) -> int:
    """Build the port, the node on it, and spin until SIGINT/SIGTERM. Returns an exit code."""
    setup_logging()
    argv = list(sys.argv[1:] if argv is None else argv)

    def _interrupt(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    port = node = None
    try:
        backend = default_backend()
        if backend == "rclpy":
            port = make_port(default_name, backend, argv=[sys.argv[0], *argv])
        else:
            opts = parse_ros_args(argv, default_name)
            port = make_port(opts["name"], backend, namespace=opts["namespace"],
                             parameters=opts["parameters"], remappings=opts["remappings"])
        node = node_factory(port)
        port.spin()
        return int(getattr(node, "exit_code", 0))
    except KeyboardInterrupt:
        return 0
    except (ParameterError, SpecError, UsageError) as exc:
        logging.getLogger(default_name).error("%s", exc)
        return 2
    except (ValueError, FileNotFoundError) as exc:  # configuration errors carry their own advice
        logging.getLogger(default_name).error("%s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return 2
    finally:
        if node is not None and hasattr(node, "close"):
            try:
                node.close()
            except Exception:
                log.exception("error while closing %s", default_name)
        if port is not None:
            port.shutdown()
