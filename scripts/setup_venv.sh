#!/usr/bin/env bash
# Create (or update) the project's virtual environment and install vla_ros into it with
# everything it needs (LeRobot + SmolVLA, Cyclone DDS, rosbags, test tools).
# Usage: scripts/setup_venv.sh   (VLA_ROS_VENV overrides the location, default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VLA_ROS_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing python3-venv (Debian)"
      apt-get update -qq && apt-get install -y -qq python3-venv python3-pip >/dev/null
      rm -rf "$VENV"; python3 -m venv "$VENV"
    else
      echo "python3 -m venv failed; on Debian/Ubuntu run: sudo apt-get install python3-venv" >&2
      exit 1
    fi
  fi
fi
stamp="$VENV/.vla_ros_installed"
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  echo "installing vla_ros and its dependencies into $VENV (LeRobot pulls PyTorch: a few minutes the first time)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e '.[test]'
  touch "$stamp"
fi
