"""The ROS 2 package around the Python code: package.xml, CMakeLists.txt, scripts, setup.py.

Checked without ROS: package.xml with catkin_pkg, the package type with colcon, and the install
rules and entry points by reading the files (modules are parsed, not imported).
"""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "vla_ros"
EXECUTABLES = {
    "camera_publisher": "vla_ros.nodes.camera:main",
    "state_publisher": "vla_ros.nodes.state:main",
    "policy_node": "vla_ros.nodes.policy:main",
    "controller_bridge": "vla_ros.nodes.bridge:main",
}
CLI = {"vla-ros": "vla_ros.cli:main"}
#: exec dependencies the issue asks for (rosdep keys)
REQUIRED_EXEC = {
    "rclpy", "std_msgs", "sensor_msgs", "trajectory_msgs", "cv_bridge", "launch_ros",
    "python3-numpy", "rosidl_default_runtime",
}
#: modules only transport/rclpy_backend (lazily) and launch files may import
ROS_ONLY_MODULES = ("rclpy", "launch", "launch_ros")


def _package():
    catkin_pkg = pytest.importorskip("catkin_pkg.package")
    warnings: list[str] = []
    pkg = catkin_pkg.parse_package(str(ROOT / "package.xml"), warnings=warnings)
    return pkg, warnings


def _names(deps) -> set[str]:
    return {d.name for d in deps}


def _cmake() -> str:
    text = (ROOT / "CMakeLists.txt").read_text()
    return re.sub(r"#[^\n]*", "", text)  # comments out


def _cmake_call(text: str, command: str) -> list[list[str]]:
    """Arguments of every ``command(...)`` call (no nested parentheses in ours)."""
    return [m.group(1).split() for m in re.finditer(rf"\b{command}\s*\(([^)]*)\)", text)]


def _module_defines(target: str) -> bool:
    """Whether ``pkg.module:function`` names a top-level function of a module in this tree."""
    module, func = target.split(":")
    base = ROOT.joinpath(*module.split("."))
    path = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
    if not path.exists():
        return False
    tree = ast.parse(path.read_text(), str(path))
    return any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == func
        for node in tree.body
    )


# -- package.xml --------------------------------------------------------------------------------


def test_package_xml_is_valid_format_3_ament_cmake():
    pkg, warnings = _package()
    pkg.validate()
    assert warnings == []
    assert pkg.package_format == 3
    assert pkg.name == PACKAGE
    assert pkg.get_build_type() == "ament_cmake"
    assert pkg.licenses == ["Apache-2.0"]
    assert pkg.maintainers


def test_package_xml_version_matches_python_package():
    pkg, _ = _package()
    init = (ROOT / PACKAGE / "__init__.py").read_text()
    assert f'__version__ = "{pkg.version}"' in init


def test_package_xml_dependencies():
    pkg, _ = _package()
    pkg.evaluate_conditions({"ROS_VERSION": "2"})
    exec_deps = _names(pkg.exec_depends)  # <depend> counts as exec_depend too
    assert REQUIRED_EXEC <= exec_deps, sorted(REQUIRED_EXEC - exec_deps)
    assert {"ament_cmake", "ament_cmake_python", "rosidl_default_generators"} <= _names(
        pkg.buildtool_depends
    )
    assert {"std_msgs", "builtin_interfaces"} <= _names(pkg.build_depends)
    assert {"launch", "launch_ros"} <= exec_deps
    assert "rosidl_interface_packages" in [g.name for g in pkg.member_of_groups]


def test_every_message_package_the_code_names_is_a_dependency():
    """A 'pkg/msg/Type' in the code or config needs pkg on the robot (rosdep installs it)."""
    pkg, _ = _package()
    pkg.evaluate_conditions({"ROS_VERSION": "2"})
    deps = _names(pkg.exec_depends) | _names(pkg.build_depends)
    used: dict[str, str] = {}
    for path in list((ROOT / PACKAGE).rglob("*.py")) + list((ROOT / "config").rglob("*.yaml")):
        for name in re.findall(r"\b([a-z][a-z0-9_]*)/(?:msg|srv|action)/[A-Z]\w*", path.read_text()):
            used.setdefault(name, str(path.relative_to(ROOT)))
    missing = {name: where for name, where in used.items()
               if name not in deps and name not in (PACKAGE, "pkg")}
    assert not missing, f"message packages used but not in package.xml: {missing}"


# -- colcon -------------------------------------------------------------------------------------


def test_colcon_identifies_an_ament_cmake_package():
    """What `colcon build` / `colcon list` decide from the directory (colcon-ros)."""
    identification = pytest.importorskip("colcon_core.package_identification")
    pytest.importorskip("colcon_ros")
    desc = identification.identify(identification.get_package_identification_extensions(), ROOT)
    assert desc is not None
    assert (desc.name, desc.type) == (PACKAGE, "ros.ament_cmake")


def test_colcon_list(tmp_path):
    pytest.importorskip("colcon_core")
    pytest.importorskip("colcon_ros")
    pytest.importorskip("colcon_package_information", reason="`colcon list` is in colcon-package-information")
    env = dict(os.environ, COLCON_LOG_PATH=str(tmp_path / "log"), COLCON_HOME=str(tmp_path / "home"))
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from colcon_core.command import main; sys.exit(main())",
         "list", "--paths", str(ROOT)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines() if line.strip()]
    assert len(rows) == 1, out.stdout
    name, path, kind = rows[0]
    assert name == PACKAGE
    assert Path(path).resolve() == ROOT
    assert kind == "(ros.ament_cmake)"


# -- Python package layout ----------------------------------------------------------------------


def test_python_package_has_no_msg_subpackage():
    """rosidl generates vla_ros.msg into the installed package; ours must not shadow it."""
    assert not (ROOT / PACKAGE / "msg").exists()
    assert not (ROOT / PACKAGE / "msg.py").exists()


def _module_level_imports(tree: ast.Module):
    """Import statements that run at import time (not inside functions or classes' methods)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        else:
            stack.extend(ast.iter_child_nodes(node))


def test_no_module_imports_ros_at_import_time():
    offenders = []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in _module_level_imports(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                names = [node.module or ""] if node.level == 0 else []
            for name in names:
                if name.split(".")[0] in ROS_ONLY_MODULES:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not offenders, offenders


# -- CMakeLists.txt -----------------------------------------------------------------------------


def test_cmake_generates_every_message():
    text = _cmake()
    calls = _cmake_call(text, "rosidl_generate_interfaces")
    assert len(calls) == 1
    args = [a.strip('"') for a in calls[0]]
    assert args[0] == "${PROJECT_NAME}"
    deps = args[args.index("DEPENDENCIES") + 1:]
    files = args[1:args.index("DEPENDENCIES")]
    assert sorted(files) == sorted(f"msg/{p.name}" for p in (ROOT / "msg").glob("*.msg"))
    assert {"std_msgs", "builtin_interfaces"} <= set(deps)
    for pkg in ["ament_cmake", "ament_cmake_python", "rosidl_default_generators", "std_msgs",
                "builtin_interfaces"]:
        assert re.search(rf"find_package\(\s*{pkg}\s+REQUIRED\s*\)", text), pkg
    assert re.search(r"ament_export_dependencies\(\s*rosidl_default_runtime\s*\)", text)
    assert re.search(r"ament_package\(\s*\)\s*$", text.strip())


def test_cmake_installs_the_python_package_without_a_second_ament_python_install_package():
    """rosidl_generator_py already calls ament_python_install_package(vla_ros) for vla_ros.msg;
    a second call with the same name is a CMake error (ros2/rosidl_python#141)."""
    text = _cmake()
    assert not _cmake_call(text, "ament_python_install_package")
    installs = [" ".join(args) for args in _cmake_call(text, "install")]
    python = [i for i in installs if i.startswith("DIRECTORY ${PROJECT_NAME}/ ")]
    assert len(python) == 1
    assert "DESTINATION ${_vla_ros_python_dir}/${PROJECT_NAME}" in python[0]
    assert "ament_get_python_install_dir(_vla_ros_python_dir)" in text
    # after rosidl_generate_interfaces, so our __init__.py replaces the generated empty one
    assert text.index("rosidl_generate_interfaces") < text.index("install(DIRECTORY ${PROJECT_NAME}/")


def test_cmake_installs_every_script_and_the_data():
    text = _cmake()
    programs = [args for args in _cmake_call(text, "install") if args[0] == "PROGRAMS"]
    assert len(programs) == 1
    args = programs[0]
    assert args[args.index("DESTINATION") + 1] == "lib/${PROJECT_NAME}"
    installed = {a for a in args[1:args.index("DESTINATION")]}
    # the Python scripts in scripts/ are the ROS executables (shell helpers live there too)
    scripts = {f"scripts/{p.name}" for p in (ROOT / "scripts").iterdir()
               if p.is_file() and p.read_text().startswith("#!/usr/bin/env python3")}
    assert installed == scripts
    assert {f"scripts/{name}" for name in EXECUTABLES} == scripts
    data = [args for args in _cmake_call(text, "install")
            if args[0] == "DIRECTORY" and "share/${PROJECT_NAME}" in args]
    assert data and {"launch", "config", "msg"} <= set(data[0])


# -- executables --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXECUTABLES))
def test_script_runs_the_console_scripts_function(name):
    path = ROOT / "scripts" / name
    assert os.access(path, os.X_OK), f"{path} is not executable"
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env python3\n")
    module, func = EXECUTABLES[name].split(":")
    assert f"from {module} import {func}" in text
    assert _module_defines(EXECUTABLES[name]), f"{EXECUTABLES[name]} does not exist"


def _setup_kwargs() -> dict:
    """The arguments setup.py passes to setuptools.setup (setup() itself is not run)."""
    setuptools = pytest.importorskip("setuptools")
    captured: dict = {}
    cwd = os.getcwd()
    orig = setuptools.setup
    setuptools.setup = lambda **kw: captured.update(kw)
    try:
        os.chdir(ROOT)
        code = compile((ROOT / "setup.py").read_text(), str(ROOT / "setup.py"), "exec")
        exec(code, {"__name__": "__main__", "__file__": str(ROOT / "setup.py")})
    finally:
        setuptools.setup = orig
        os.chdir(cwd)
    return captured


def test_console_scripts_point_at_existing_functions():
    kw = _setup_kwargs()
    scripts = dict(
        (name.strip(), target.strip())
        for name, target in (s.split("=") for s in kw["entry_points"]["console_scripts"])
    )
    assert scripts == {**EXECUTABLES, **CLI}
    for target in scripts.values():
        assert _module_defines(target), f"{target} does not exist"


def test_setup_py_matches_the_ament_install():
    kw = _setup_kwargs()
    pkg, _ = _package()
    assert kw["version"] == pkg.version
    assert kw["python_requires"] == ">=3.10"
    assert "vla_ros" in kw["packages"] and "vla_ros.msg" not in kw["packages"]
    assert not any(p.startswith("test") for p in kw["packages"])
    assert any(r.startswith("lerobot[smolvla]") for r in kw["install_requires"])
    files = {f"{dest}/{Path(f).name}" for dest, fs in kw["data_files"] for f in fs}
    share = f"share/{PACKAGE}"
    expected = {f"{share}/package.xml"}
    for top in ("msg", "launch", "config"):
        for p in (ROOT / top).rglob("*"):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
                expected.add(f"{share}/{p.relative_to(ROOT).as_posix()}")
    assert files == expected


def test_every_python_directory_is_a_package():
    """find_packages (pip install) only takes directories with __init__.py; ament copies all."""
    missing = sorted(
        str(d.relative_to(ROOT)) for d in (ROOT / PACKAGE).rglob("*")
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
        and not (d / "__init__.py").exists()
    )
    assert not missing, f"add __init__.py to: {missing}"


def test_wheel_installs_the_data_under_share(tmp_path):
    """What `pip install .` installs: the package, the console scripts, share/vla_ros/..."""
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    for name in ("setup.py", "MANIFEST.in", "package.xml", "README.md"):
        if (ROOT / name).exists():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((ROOT / name).read_bytes())
    for name in (PACKAGE, "msg", "config", "launch", "scripts"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = (tmp_path / "dist").glob("vla_ros-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = {n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n}
    share = f"share/{PACKAGE}"
    assert f"{share}/package.xml" in data
    for top in ("msg", "launch", "config"):
        for p in (ROOT / top).rglob("*"):
            if p.is_file() and "__pycache__" not in p.parts:
                assert f"{share}/{p.relative_to(ROOT).as_posix()}" in data, p
    assert f"{PACKAGE}/__init__.py" in names
    assert not any(n.startswith((f"{PACKAGE}/msg/", "test/")) for n in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for name, target in {**EXECUTABLES, **CLI}.items():
        assert f"{name} = {target}" in text
