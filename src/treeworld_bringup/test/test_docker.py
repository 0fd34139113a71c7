"""The Docker files and the launch file, checked here where no container engine runs: they
parse, everything they name exists, their pins are requirements.txt's, and the launch file's
nodes are the packages' executables with parameters their schemas know."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from spiral_controller import ControllerConfig
from tem_localizer import LocalizerConfig
from treeworld_schema.schema import section_from_mapping
from treeworld_sim import WorldConfig

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "docker"
SRC = ROOT / "src"
LAUNCH = SRC / "treeworld_bringup" / "launch" / "treeworld.launch.py"
SCHEMAS = {"treeworld_sim": WorldConfig, "spiral_controller": ControllerConfig,
           "tem_localizer": LocalizerConfig}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in lines if line and not line.startswith("#")]


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("#")[0].strip().split("==")
            pins[name.lower()] = version
    return pins


def entry_points(package: str) -> set[str]:
    source = (SRC / package / "setup.py").read_text()
    return set(re.findall(r'"(\w+) = [\w.]+:main"', source))


def launch_arguments() -> set[str]:
    return set(re.findall(r'DeclareLaunchArgument\(\s*"(\w+)"', LAUNCH.read_text()))


def check_launch_command(command: list[str]) -> None:
    """``ros2 launch PACKAGE FILE name:=value ...`` names an installed launch file and only
    arguments it declares."""
    assert command[:2] == ["ros2", "launch"], command
    package, launch_file = command[2:4]
    assert (SRC / package / "launch" / launch_file).is_file(), command
    for argument in command[4:]:
        assert argument.split(":=")[0] in launch_arguments(), argument


def test_the_dockerfile_is_pinned_and_names_only_what_exists():
    steps = instructions()
    assert steps[0] == ("FROM", "ros:kilted-ros-base")
    known = {"FROM", "RUN", "WORKDIR", "COPY", "ENV", "ENTRYPOINT", "CMD"}
    assert {name for name, _ in steps} <= known
    for name, arguments in steps:
        if name == "COPY":
            source = arguments.split()[0]
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    pins = requirement_pins()
    installed = dict(re.findall(r"([\w-]+)==([\w.]+)", " ".join(
        arguments for name, arguments in steps if name == "RUN" and "pip3 install" in arguments)))
    for package, version in installed.items():
        assert pins.get(package.lower()) == version, f"{package}=={version} vs requirements.txt"
    # what the nodes import from PyPI only (no rosdep key) must be installed
    assert {"torch", "torchvision", "gtsam", "rosbags", "mcap", "evo"} <= set(installed)
    work = [arguments for name, arguments in steps if name == "WORKDIR"]
    assert work == ["/ws"] and any("colcon build" in a for n, a in steps if n == "RUN")


def test_the_image_starts_the_launch_file_through_the_entrypoint():
    steps = dict(instructions())
    entrypoint = DOCKER / "entrypoint.sh"
    assert entrypoint.stat().st_mode & 0o111, "entrypoint.sh must be executable"
    script = entrypoint.read_text()
    assert ". /opt/ros/kilted/setup.sh" in script and ". /ws/install/setup.sh" in script
    assert script.rstrip().endswith('exec "$@"')
    assert yaml.safe_load(steps["ENTRYPOINT"]) == ["/entrypoint.sh"]
    check_launch_command(yaml.safe_load(steps["CMD"]))


def test_compose_builds_the_dockerfile_and_offers_the_gpu():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"graph", "graph-gpu"}
    for service in services.values():
        build = service["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == \
            (DOCKER / "Dockerfile").resolve()
        check_launch_command(service["command"])
        assert service["environment"]["ROS_AUTOMATIC_DISCOVERY_RANGE"] == \
            "${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
        assert all(volume.split(":")[1].startswith("/") for volume in service["volumes"])
    assert services["graph-gpu"]["gpus"] == "all"
    assert services["graph-gpu"]["profiles"] == ["gpu"]
    assert "gpus" not in services["graph"]


def launch_nodes() -> list[dict[str, str]]:
    """The keyword arguments (constants only) of every Node(...) in the launch file."""
    nodes = []
    for call in ast.walk(ast.parse(LAUNCH.read_text())):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Node":
            nodes.append({k.arg: k.value.value for k in call.keywords
                          if isinstance(k.value, ast.Constant)})
    return nodes


def test_the_launch_files_nodes_are_the_packages_executables():
    ours = [node for node in launch_nodes() if node["package"] in SCHEMAS]
    assert sorted(node["package"] for node in ours) == sorted(SCHEMAS)
    for node in ours:
        assert node["executable"] in entry_points(node["package"]), node
        assert node["name"] == node["package"], "the parameter file is keyed by node name"


@pytest.mark.parametrize("node", sorted(SCHEMAS))
def test_the_parameter_file_fits_each_nodes_schema(node):
    """Every key in config/treeworld.yaml is a parameter the node's schema declares, with a
    value it accepts (unknown keys are refused by the schema)."""
    parameters = yaml.safe_load((SRC / "treeworld_bringup" / "config" / "treeworld.yaml")
                                .read_text())[node]["ros__parameters"]
    section_from_mapping(SCHEMAS[node], parameters, node)

