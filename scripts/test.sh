#!/usr/bin/env bash
# The test suite: unit tests per layer, node tests over inproc, end-to-end tests with the nodes as
# separate processes over Cyclone DDS on loopback. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
bash scripts/debian-ros-tools.sh || echo "package checks that need Debian's ament/rosidl tools will be skipped"
exec "${VLA_ROS_VENV:-.venv}/bin/python" -m pytest test "$@"
