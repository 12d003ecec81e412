#!/usr/bin/env bash
# The demo on the embedded defaults: tiny SmolVLA-architecture model (built offline on first use),
# mock SO-100, synthetic cameras; four node processes over Cyclone DDS on loopback. Prints a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
exec "${VLA_ROS_VENV:-.venv}/bin/vla-ros" demo "$@"
