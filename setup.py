"""pip installation of vla_ros, for use without ROS 2 (``pip install .`` / ``pip install -e .``).

On a ROS 2 machine the package is built by colcon from package.xml and CMakeLists.txt instead;
this file is not used there. Both installs put the data (msg/, config/, launch/) in the same
place relative to the prefix, ``<prefix>/share/vla_ros``, where vla_ros.paths looks for it.
"""
import os
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
PACKAGE = "vla_ros"
SHARE = f"share/{PACKAGE}"


def _version() -> str:
    text = (HERE / PACKAGE / "__init__.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


def _data_files() -> list[tuple[str, list[str]]]:
    """(destination, files) for msg/, launch/ and config/ (recursively) plus package.xml."""
    out = [(SHARE, ["package.xml"])]
    for top in ("msg", "launch", "config"):
        for dirpath, dirnames, filenames in os.walk(HERE / top):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            rel = Path(dirpath).relative_to(HERE)
            files = sorted(
                (rel / f).as_posix() for f in filenames if not f.endswith((".pyc", "~"))
            )
            if files:
                out.append((f"{SHARE}/{rel.as_posix()}", files))
    return out


NODES = {
    "camera_publisher": "vla_ros.nodes.camera:main",
    "state_publisher": "vla_ros.nodes.state:main",
    "policy_node": "vla_ros.nodes.policy:main",
    "controller_bridge": "vla_ros.nodes.bridge:main",
}

setup(
    name=PACKAGE,
    version=_version(),
    description="Vision-Language-Action policies (SmolVLA through LeRobot) on ROS 2 robot arms",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=_data_files(),
    zip_safe=False,
    install_requires=[
        "numpy",
        "pyyaml",
        "opencv-python-headless",
        "cyclonedds",
        "rosbags",
        "mcap",
        "tqdm",
        "matplotlib",
        "lerobot[smolvla]==0.4.4",
        "feetech-servo-sdk>=1.0.0,<2.0.0",  # LeRobot's 'feetech' extra: the SO-100/SO-101 bus (driver:=lerobot)
    ],
    extras_require={
        "rby1": ["rby1-sdk"],  # RB-Y1 driver:=sdk (binary wheels; pip install ".[rby1]")
        "test": [
            "pytest", "pytest-timeout", "catkin_pkg", "colcon-core", "colcon-ros",
            "colcon-package-information",  # `colcon list`
            "rby1-sdk",  # the RB-Y1 driver's tests build the SDK's real command objects
        ],
    },
    entry_points={
        "console_scripts": [f"{name} = {target}" for name, target in NODES.items()]
        + ["vla-ros = vla_ros.cli:main"],
    },
    classifiers=["Programming Language :: Python :: 3"],
)
