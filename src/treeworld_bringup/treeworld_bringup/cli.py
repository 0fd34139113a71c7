"""The ``treeworld`` command: run Tree World in-process, the seed's experiments, and more.

Every bad input ends in one line on stderr naming what is wrong, exit status 2, and nothing
written to the output folder.

A command imports what only it needs when it runs (torch, matplotlib and evo take seconds to
load), so ``treeworld --help`` and the bag commands start without them.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from spiral_controller import PathFileError, load_path_file
from tem_localizer.config import DeviceUnavailable
from tem_localizer.map_file import MapFileError, load_map
from treeworld_bringup.bag_commands import add_bag_commands, add_salvage_option
from treeworld_bringup.bags import BagError
from treeworld_bringup.interrupts import Stopped, StopRequests
from treeworld_bringup.launcher import DISCOVERY_RANGES, GraphStalled, NodeDied, launch_graph
from treeworld_bringup.player import PlaybackStalled
from treeworld_bringup.recording import RunFolderError, gif_stride
from treeworld_bringup.settings import EXPERIMENTS, Settings, load_settings
from treeworld_schema import ConfigError
from treeworld_schema.schema import with_overrides
from treeworld_schema.topics import MOTIONS

USAGE_ERROR = 2


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that starts a run (in-process or as a ROS graph)."""
    parser.add_argument("--config", type=Path, help="parameter file (default: built-in "
                        "defaults, as in config/treeworld.yaml)")
    parser.add_argument("--seed", type=int, help="world and controller seed")
    parser.add_argument("--steps", type=int, help="number of steps")
    parser.add_argument("--controller", help="spiral | circle | random | forage | path:FILE")
    parser.add_argument("--action-noise", type=float, metavar="SIGMA",
                        help="odometry noise per axis per step (world units)")
    parser.add_argument("--motion", choices=MOTIONS,
                        help="holonomic (map-frame displacements) or diff_drive (a wheeled base: "
                        "forward speed and turn rate; odometry integrates its own heading)")
    parser.add_argument("--heading-noise", type=float, metavar="SIGMA",
                        help="diff_drive: odometry's error in each moving step's turn (radians)")
    parser.add_argument("--observation", choices=("smell", "camera"),
                        help="what the localizer recognizes places by (camera: the simulator "
                        "renders a panoramic camera)")
    parser.add_argument("--localizer", choices=("none", "deadreckoning", "tem2d", "slam"),
                        help="what estimates the position (default: the parameter file's "
                        "method)")
    parser.add_argument("--no-memory", action="store_true",
                        help="TEM: path integration only, no memory recall")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"),
                        help="where the localizer runs")
    parser.add_argument("--out", type=Path, default=Path("runs/latest"),
                        help="output folder (default runs/latest)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The parameter file with command-line overrides applied, all validated."""
    settings = load_settings(args.config)
    controller, path_file = args.controller, None
    if controller is not None and controller.startswith("path:"):
        controller, path_file = "path", controller[len("path:"):]
    world = with_overrides(settings.world, "treeworld_sim", seed=args.seed, steps=args.steps,
                           odometry_noise=args.action_noise, motion=args.motion,
                           heading_noise=args.heading_noise,
                           # the simulator renders its camera when the localizer looks by it
                           camera=True if (args.observation or settings.localizer.observation)
                           == "camera" else None)
    controls = with_overrides(settings.controller, "spiral_controller", controller=controller,
                              path_file=path_file, seed=args.seed, motion=world.motion)
    if controls.controller == "path":
        load_path_file(controls.path_file)      # a bad file is reported before anything runs
    method = None if args.localizer in (None, "none") else args.localizer
    localizer = with_overrides(
        settings.localizer, "tem_localizer", method=method, device=args.device,
        use_memory_to_localize=False if args.no_memory else None,
        observation=args.observation,
        sensory_embedding_dim=world.sensory_embedding_dim)
    return Settings(world, controls, localizer)


def describe(settings: Settings, args: argparse.Namespace) -> str:
    return "no localizer" if args.localizer == "none" else settings.localizer.method


def print_summary(metrics: dict, out: Path) -> None:
    """Every run ends with this report: world figures, then evo's evaluation table."""
    from treeworld_bringup.evaluation import format_table

    keys = ("steps", "steps_without_estimate", "steps_per_second", "total_movement",
            "final_distance_from_origin", "health", "fruit_eaten", "poisonous_fruit_eaten",
            "ate_rmse", "ate_rmse_aligned", "rpe_rmse", "max_error", "final_error", "mean_loss",
            "skipped_total", "lost_count", "odometry_resets")
    for key in keys:
        if key in metrics and metrics[key] is not None:
            value = metrics[key]
            print(f"  {key:28s} {value:.2f}" if isinstance(value, float)
                  else f"  {key:28s} {value}")
    slam = metrics.get("slam", {})
    if "relocalized_after_steps" in slam:                 # started in a loaded map
        found = slam["relocalized_after_steps"]
        print(f"  {'relocalized_after_steps':28s} "
              f"{'never' if found is None else found}")
        if slam.get("relocalization_retracted"):
            print(f"  {'relocalization_retracted':28s} {slam['relocalization_retracted']}")
    if "evaluation" in metrics:
        print("evaluation (world units; ATE unaligned: the belief frame starts at the true "
              "origin):")
        print(format_table(metrics["evaluation"]))
    print(f"outputs in {out}/")


def command_run(args: argparse.Namespace) -> int:
    from treeworld_bringup.runner import run

    settings = settings_from_args(args)
    check_map_options(args, settings)
    recording, scene = run(settings, use_localizer=args.localizer != "none",
                           belief_stride=gif_stride(settings.world.steps) if args.gif else 0,
                           load_map=args.load_map, save_map=args.save_map)
    title = f"treeworld run ({describe(settings, args)})"
    metrics, stopped = write_report_unless_stopped(args.out, recording, scene, title,
                                                   settings.localizer.cell_size, gif=args.gif)
    return finish(metrics, args.out, args.save_map, stopped)


def write_report_unless_stopped(out: Path, recording, scene, title: str, cell_size: float,
                                **options) -> tuple[dict, Stopped | None]:
    """write_report, where Ctrl-C or SIGTERM skips only the pictures not yet drawn: the run
    behind the report may have taken an hour, and drawing its belief.gif a minute more. Returns
    the metrics and the signal that came, if one did."""
    from treeworld_bringup.outputs import write_report

    with StopRequests() as stop:
        print(f"treeworld: writing the report into {out}/ (Ctrl-C skips the pictures not yet "
              "drawn)", file=sys.stderr)
        metrics = write_report(out, recording, scene, title, cell_size,
                               interrupted=lambda: stop.received is not None, **options)
    return metrics, None if stop.received is None else Stopped(stop.received)


def pictures_not_drawn(metrics: dict) -> str:
    names = metrics.get("pictures_not_drawn")
    return f"; not drawn: {', '.join(names)}" if names else ""


def stopped_while_writing(metrics: dict, out: Path, stopped: Stopped) -> int:
    print(f"treeworld: error: {stopped} while writing the report{pictures_not_drawn(metrics)}; "
          f"report of {metrics['steps']} steps in {out}/", file=sys.stderr)
    return stopped.exit_status


def finish(metrics: dict, out: Path, saved_map: Path | None, stopped: Stopped | None) -> int:
    """The exit status of a run whose report is written: a signal while writing it, or a map
    that could not be saved, is an error."""
    if "map_error" in metrics:
        print(f"treeworld: error: {metrics['map_error']}; the report is in {out}/",
              file=sys.stderr)
    if stopped is not None:
        return stopped_while_writing(metrics, out, stopped)
    if "map_error" in metrics:
        return 1
    if resets := metrics.get("odometry_resets"):
        # the estimate stood still there: say why before the ATE it made
        print(f"treeworld: warning: odometry jumped farther than max_odometry_jump in {resets} "
              "steps: each taken as a reset of its origin, the estimate did not move with them",
              file=sys.stderr)
    print_summary(metrics, out)
    if saved_map is not None:
        print(f"map in {saved_map}")
    return 0


def check_map_options(args: argparse.Namespace, settings: Settings) -> None:
    """Refuse what would fail only after the whole run."""
    if (args.save_map or args.load_map) and settings.localizer.method != "slam":
        raise UsageError("--save-map and --load-map need --localizer slam")
    if args.save_map is not None:
        folder = args.save_map.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"--save-map: cannot make the folder {folder}: "
                             f"{error.strerror}") from None
        if args.save_map.is_dir() or not os.access(folder, os.W_OK):
            raise UsageError(f"--save-map: cannot write {args.save_map}")


def command_launch(args: argparse.Namespace) -> int:
    from treeworld_bringup import plots

    settings = settings_from_args(args)
    check_map_options(args, settings)
    if args.load_map is not None:
        # read here with the node's checks: a bad file is one line now, not a node that dies
        localizer = settings.localizer
        load_map(args.load_map, localizer.sensory_embedding_dim, localizer.grid_size,
                 localizer.cell_size)
    result = launch_graph(settings, use_localizer=args.localizer != "none",
                          belief_stride=gif_stride(settings.world.steps) if args.gif else 0,
                          record=args.record,
                          discovery_range=args.discovery_range, load_map=args.load_map,
                          save_map=args.save_map)
    recording, scene, info, failure = result.recording, result.scene, result.info, result.failure
    extra = {"launch": {"node_pids": info["pids"]}}
    if failure is not None:
        extra |= {"partial": True, "error": str(failure)}
    if info["map_error"] is not None:
        extra["map_error"] = info["map_error"]
    if info["latencies_ms"]:
        latencies = np.asarray(info["latencies_ms"])
        extra["launch"]["localizer_step_latency_ms"] = {
            f"p{q}": float(np.percentile(latencies, q)) for q in (50, 90, 99)
        } | {"max": float(latencies.max()), "steps": len(latencies)}
    extras = [("parameters.yaml", lambda path: shutil.copy(info["parameter_file"], path)),
              ("logs", lambda path: _copy_logs(info["logs"], path))]
    if info["bag"] is not None and info["bag"].exists():
        extras.append(("bag", lambda path: shutil.move(info["bag"], path)))
    pictures = []
    belief = info["last_belief"]
    if belief is not None and recording.steps:
        size = belief.info.width
        grid = np.frombuffer(belief.data, np.int8).reshape(size, size)
        origin = (belief.info.origin.position.x, belief.info.origin.position.y)
        pictures.append(("rviz.png", lambda path: plots.plot_rviz_view(
            path, grid, origin, belief.info.resolution, recording, scene,
            info["last_covariance"])))
    title = f"treeworld launch ({describe(settings, args)})"
    # the run is over and its nodes are gone: the bag exists nowhere else
    metrics, stopped = write_report_unless_stopped(
        args.out, recording, scene, title, settings.localizer.cell_size, extra_metrics=extra,
        gif=args.gif, extras=extras, pictures=pictures)
    shutil.rmtree(info["workspace"], ignore_errors=True)
    if failure is not None:
        saved = f", the map in {args.save_map}" if args.save_map and not info["map_error"] \
            else ""
        print(f"treeworld: error: {failure}; partial report of {recording.steps} of "
              f"{settings.world.steps} steps in {args.out}/{saved}"
              f"{pictures_not_drawn(metrics)}", file=sys.stderr)
        return getattr(failure, "exit_status", 1)
    if missing := metrics.get("steps_without_estimate"):
        late = metrics["late_frames"]
        why = ([f"{late} came later than max_input_age"] if late else []) + (
            [f"{missing - late} never reached the localizer whole (it fell behind)"]
            if missing > late else [])
        print(f"treeworld: warning: real time: {missing} of {metrics['steps'] + missing} "
              f"steps have no estimate: {'; '.join(why)}", file=sys.stderr)
    return finish(metrics, args.out, args.save_map, stopped)


def _copy_logs(logs: dict[str, Path], folder: Path) -> None:
    folder.mkdir()
    for name, log in logs.items():
        shutil.copy(log, folder / log.name)


def command_replay(args: argparse.Namespace) -> int:
    from treeworld_bringup.replay import replay

    settings = load_settings(args.config)
    localizer = with_overrides(settings.localizer, "tem_localizer", device=args.device)
    settings = Settings(settings.world, settings.controller, localizer)
    check_map_options(args, settings)
    recording, scene = replay(args.bag, settings, gif=args.gif,
                              salvage=args.salvage, load_map=args.load_map,
                              save_map=args.save_map)
    metrics, stopped = write_report_unless_stopped(
        args.out, recording, scene, f"treeworld replay {args.bag.name}", localizer.cell_size,
        extra_metrics={"bag": str(args.bag)}, gif=args.gif)
    return finish(metrics, args.out, args.save_map, stopped)


def command_eval(args: argparse.Namespace) -> int:
    from treeworld_bringup.evaluation import format_table
    from treeworld_bringup.runs import load_run_bag, load_run_folder

    source: Path = args.run
    if not source.exists():
        raise UsageError(f"{source}: no such run folder or bag")
    is_bag = (source / "metadata.yaml").is_file() or source.suffix in (".mcap", ".db3")
    if is_bag:
        recording, scene, base = load_run_bag(source, gif=args.gif,
                                              salvage=args.salvage)
        out = args.out or source.with_name(source.name + "-eval")
    else:
        recording, scene, base = load_run_folder(source)
        out = args.out or source
    for stale in ("evaluation", "ate_rmse", "ate_rmse_aligned", "rpe_rmse"):
        base.pop(stale, None)
    parameters = source / "parameters.yaml"     # written by treeworld launch
    localizer = load_settings(parameters if parameters.is_file() else None).localizer
    metrics, stopped = write_report_unless_stopped(
        out, recording, scene, f"treeworld eval {source.name}", localizer.cell_size,
        gif=args.gif, base_metrics=base)
    if stopped is not None:
        return stopped_while_writing(metrics, out, stopped)
    print(format_table(metrics["evaluation"]))
    print(f"ATE RMSE (unaligned) {metrics['ate_rmse']:.6f}; report in {out}/")
    return 0


def command_experiment(args: argparse.Namespace) -> int:
    from treeworld_bringup.experiments import run_experiment

    metrics = run_experiment(args.name, args.out, seed=args.seed, device=args.device)
    print(f"{args.name}: {EXPERIMENTS[args.name].seed_observation}")
    print_summary(metrics, args.out)
    return 0


def command_bench_accuracy(args: argparse.Namespace) -> int:
    from treeworld_bringup import benchmarks

    results = benchmarks.accuracy(args.out, steps=args.steps, seeds=args.seeds,
                                  scenarios=args.scenarios, noises=args.noises,
                                  localizers=args.localizers)
    print(benchmarks.accuracy_table(results))
    print(f"results in {args.out}/accuracy.json, .md, .png")
    return 0


def command_bench_forage(args: argparse.Namespace) -> int:
    from treeworld_bringup import benchmarks

    results = benchmarks.forage(args.out, steps=args.steps, seeds=args.seeds,
                                noises=args.noises)
    print(benchmarks.forage_table(results, args.steps))
    print(f"results in {args.out}/forage.json, .md, .png")
    return 0


def command_bench_robot(args: argparse.Namespace) -> int:
    from treeworld_bringup import robot_bench

    report = robot_bench.robot(args.out, steps=args.steps, seeds=args.seeds,
                               scenarios=args.scenarios)
    print(robot_bench.robot_tables(report))
    print(f"results in {args.out}/robot.json, .md")
    return 0


def command_bench_speed(args: argparse.Namespace) -> int:
    from treeworld_bringup import speed

    result = speed.speed(args.out, args.lengths, args.device, args.tem2d_lengths,
                         not args.no_soak, args.soak_path)
    print(speed.speed_table(result))
    print(f"results in {args.out}/speed.json, .png")
    return 0


def bench_parser() -> argparse.ArgumentParser:
    """``treeworld bench``'s own parser. Its options come from the benchmark modules, which
    load torch and matplotlib, so it is built only when a benchmark is asked for (see main)."""
    from treeworld_bringup import benchmarks, robot_bench, speed

    parser = Parser(prog="treeworld bench",
                    description="Benchmarks whose results go into README.")
    benches = parser.add_subparsers(dest="bench_command", required=True, parser_class=Parser)
    accuracy = benches.add_parser("accuracy", help="every localizer, path and noise level")
    accuracy.add_argument("--out", type=Path, default=Path("docs/bench"))
    accuracy.add_argument("--steps", type=int, default=benchmarks.STEPS)
    accuracy.add_argument("--seeds", type=int, nargs="+", default=list(benchmarks.SEEDS))
    accuracy.add_argument("--scenarios", nargs="+", choices=benchmarks.SCENARIOS,
                          default=list(benchmarks.SCENARIOS))
    accuracy.add_argument("--noises", type=float, nargs="+", default=list(benchmarks.NOISES))
    accuracy.add_argument("--localizers", nargs="+", choices=benchmarks.LOCALIZERS,
                          default=list(benchmarks.LOCALIZERS))
    accuracy.set_defaults(handler=command_bench_accuracy)
    forage_parser = benches.add_parser("forage", help="the forager steered by each localizer")
    forage_parser.add_argument("--out", type=Path, default=Path("docs/bench"))
    forage_parser.add_argument("--steps", type=int, default=benchmarks.FORAGE_STEPS)
    forage_parser.add_argument("--seeds", type=int, nargs="+",
                               default=list(benchmarks.FORAGE_SEEDS))
    forage_parser.add_argument("--noises", type=float, nargs="+",
                               default=list(benchmarks.FORAGE_NOISES))
    forage_parser.set_defaults(handler=command_bench_forage)
    robot_parser = benches.add_parser("robot", help="camera and differential drive against "
                                      "smell and holonomic moves; the camera encoder's cost")
    robot_parser.add_argument("--out", type=Path, default=Path("docs/bench"))
    robot_parser.add_argument("--steps", type=int, default=robot_bench.STEPS)
    robot_parser.add_argument("--seeds", type=int, nargs="+", default=list(robot_bench.SEEDS))
    robot_parser.add_argument("--scenarios", nargs="+", choices=robot_bench.SCENARIOS,
                              default=list(robot_bench.SCENARIOS))
    robot_parser.set_defaults(handler=command_bench_robot)
    speed_parser = benches.add_parser("speed", help="latency and memory as the memory grows")
    speed.add_speed_options(speed_parser)
    speed_parser.set_defaults(handler=command_bench_speed)
    return parser


def add_map_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--load-map", type=Path, metavar="FILE",
                        help="slam: start in this saved map, position unknown")
    parser.add_argument("--save-map", type=Path, metavar="FILE",
                        help="slam: write the map here at the end")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="treeworld", description="Tree World + TEM localizer (neural SLAM).")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run_parser = commands.add_parser("run", help="run the world in-process (no ROS)")
    add_run_options(run_parser)
    run_parser.add_argument("--gif", action="store_true", help="also write belief.gif")
    add_map_options(run_parser)
    run_parser.set_defaults(handler=command_run)

    launch = commands.add_parser("launch", help="run the three-node ROS 2 graph over DDS")
    add_run_options(launch)
    launch.add_argument("--gif", action="store_true", help="also write belief.gif")
    add_map_options(launch)
    launch.add_argument("--record", action="store_true",
                        help="record every topic into OUT/bag (rosbag2, MCAP)")
    launch.add_argument("--discovery-range", choices=DISCOVERY_RANGES, default="localhost",
                        help="where the nodes look for each other (ROS_AUTOMATIC_DISCOVERY_"
                        "RANGE): this machine only (default), or the subnet, to meet a robot "
                        "or RViz on another machine")
    launch.set_defaults(handler=command_launch)

    replay_parser = commands.add_parser(
        "replay", help="feed a bag's /odom + /smell through a localizer, in-process")
    replay_parser.add_argument("bag", type=Path)
    replay_parser.add_argument("--config", type=Path, help="parameter file (the localizer's "
                               "section is used; a launch writes OUT/parameters.yaml)")
    replay_parser.add_argument("--device", choices=("auto", "cpu", "cuda"))
    replay_parser.add_argument("--out", type=Path, default=Path("runs/replay"))
    replay_parser.add_argument("--gif", action="store_true", help="also write belief.gif")
    add_map_options(replay_parser)
    add_salvage_option(replay_parser)
    replay_parser.set_defaults(handler=command_replay)

    eval_parser = commands.add_parser("eval", help="ATE/RPE (evo) and plots of a run folder "
                                      "or a bag")
    eval_parser.add_argument("run", type=Path, help="run folder (ground_truth.tum, "
                             "estimate.tum) or bag (/ground_truth/odom, /tem/pose)")
    eval_parser.add_argument("--out", type=Path, help="report folder (default: the run "
                             "folder; for a bag, BAG-eval beside it)")
    eval_parser.add_argument("--gif", action="store_true", help="belief.gif (bags with "
                             "/tem/belief)")
    add_salvage_option(eval_parser)
    eval_parser.set_defaults(handler=command_eval)

    add_bag_commands(commands, Parser)
    # listed here, parsed by bench_parser()
    commands.add_parser("bench", add_help=False, help="benchmarks whose results go into "
                        "README: accuracy, forage, robot, speed (treeworld bench --help)")

    experiment = commands.add_parser("experiment", help="one of the seed's experiments")
    experiment.add_argument("name", choices=sorted(EXPERIMENTS))
    experiment.add_argument("--out", type=Path, required=True)
    experiment.add_argument("--seed", type=int, default=0)
    experiment.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    experiment.set_defaults(handler=command_experiment)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = bench_parser().parse_args(argv[1:]) if argv[:1] == ["bench"] else \
            build_parser().parse_args(argv)
        return args.handler(args)
    except (UsageError, ConfigError, PathFileError, DeviceUnavailable, BagError,
            RunFolderError, MapFileError) as error:
        print(f"treeworld: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except (NodeDied, GraphStalled, PlaybackStalled) as error:
        print(f"treeworld: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        print("treeworld: interrupted", file=sys.stderr)
        return getattr(interrupt, "exit_status", 130)


if __name__ == "__main__":
    sys.exit(main())
