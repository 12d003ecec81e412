#!/usr/bin/env bash
# Debian's ROS 2 build tools, for the package checks in test/package that need them:
#   python3-rosidl, python3-empy   rosidl's own .msg adapter and IDL parser (test_msg_definitions)
#   ament-cmake, ament-cmake-python, python3-ament-package, python3-catkin-pkg, cmake, g++
#                                  configure/build/install CMakeLists.txt (test_ament_install)
#   python3-ament-index            vla_ros.paths through the ament index (test_ament_install)
# Debian 12 has these (no rclpy, launch or message packages). Without root or apt-get this does
# nothing and those tests skip, saying why.
set -euo pipefail
PACKAGES=(python3-rosidl python3-empy ament-cmake ament-cmake-python python3-ament-package
          python3-ament-index python3-catkin-pkg cmake g++)
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "debian-ros-tools: not root or no apt-get; rosidl/ament checks will be skipped" >&2
  exit 0
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "debian-ros-tools: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
