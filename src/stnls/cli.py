"""The ``stnls`` command (also ``python -m stnls``).

Subcommands are listed in :data:`COMMANDS`; each is a pair of functions, one
that declares its options and one that runs it and returns the exit code.
This module only parses and prints: the work lives in :mod:`stnls.demo` and
:mod:`stnls.utils.environment`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

from .demo import DemoInputError

DEMO_MODULES = {"skimage": "scikit-image", "PIL": "pillow", "matplotlib": "matplotlib", "tqdm": "tqdm"}


class CommandError(Exception):
    """A problem to report as one line, with exit code 2."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (``stnls align: error: ...``)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


@dataclass(frozen=True)
class Command:
    summary: str
    epilog: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------------------------------
# stnls align

ALIGN_EPILOG = """\
examples:
  stnls align                          bundled clip 'bikes', default settings
  stnls align --clip carphone          another bundled clip (bikes, bigbuckbunny, carphone)
  stnls align --clip my_frames/ --frames 6 --crop 256 --output results/
  stnls align --clip movie.mp4 --ws 9 --stride1 0.5 --device cuda

Writes align_<clip>.png (rows: clean, noisy, each method and its error map;
columns: frames) and align_<clip>.json (every number of the table) into the
output folder, and prints the PSNR table.
"""


def _add_align_arguments(parser: argparse.ArgumentParser) -> None:
    from .demo.align import AlignConfig

    d = AlignConfig()
    add = parser.add_argument
    add("--clip", default=d.clip, help=f"bundled clip name, folder of images or video file (default {d.clip})")
    add("--frames", type=int, default=d.frames, help=f"frames read from the clip, >= 2 (default {d.frames})")
    add("--crop", type=int, default=d.crop, help=f"side of the centred square crop in pixels (default {d.crop})")
    add("--sigma", type=float, default=d.sigma, help=f"noise standard deviation, 0-255 scale (default {d.sigma:g})")
    add("--ws", type=int, default=d.ws, help=f"search window side (default {d.ws})")
    add("--ps", type=int, default=d.ps, help=f"patch side (default {d.ps})")
    add("-k", "--k", type=int, default=d.k, help=f"neighbours averaged per patch; 1 copies the best (default {d.k})")
    add("--stride0", type=int, default=d.stride0, help=f"spacing of the reference patches (default {d.stride0})")
    add("--stride1", type=float, default=d.stride1, help=f"step between candidates, may be fractional (default {d.stride1:g})")
    add("--temperature", type=float, default=d.temperature,
        help=f"softmax temperature, in units of the noise's share of a patch distance (default {d.temperature:g})")
    add("--reference", type=int, default=d.reference, help=f"index of the reference frame (default {d.reference})")
    add("--device", default=d.device, help="auto (CUDA if available), cpu, cuda or cuda:N (default auto)")
    add("--seed", type=int, default=d.seed, help=f"seed of the noise (default {d.seed})")
    add("--output", "-o", default="stnls-align", help="folder for the PNG and JSON (default ./stnls-align)")
    add("--quiet", "-q", action="store_true", help="no progress bars")


def _require_demo_extra() -> None:
    missing = [package for module, package in DEMO_MODULES.items()
               if importlib.util.find_spec(module) is None]
    if missing:
        raise CommandError(f"missing {', '.join(missing)}; install the demo extra: "
                           "pip install 'stnls[demo]'")


def _output_stem(clip: str) -> str:
    name = Path(clip).stem or Path(clip).name or "clip"
    return "align_" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def _run_align(args: argparse.Namespace) -> int:
    _require_demo_extra()
    from .demo.align import METHODS, AlignConfig, run_alignment
    from .demo.report import psnr_table, table_caption, write_figure, write_json

    config = AlignConfig(**{f.name: getattr(args, f.name) for f in fields(AlignConfig)})
    config.validate()
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise CommandError(f"output {output} exists and is not a folder")
    start = time.perf_counter()
    result = run_alignment(config, progress=not args.quiet)
    output.mkdir(parents=True, exist_ok=True)
    stem = output / _output_stem(config.clip)
    write_figure(result, stem.with_suffix(".png"))
    write_json(result, stem.with_suffix(".json"))
    total = time.perf_counter() - start

    print(table_caption(result))
    print(psnr_table(result))
    steps = ", ".join(f"{METHODS.get(k, k)} {v:.1f} s" for k, v in result.seconds.items())
    print(f"\ntime: {steps}; total {total:.1f} s on {result.device} "
          f"(search backend: {result.backends['non_local_search']})")
    print(f"wrote {stem.with_suffix('.png')} and {stem.with_suffix('.json')}")
    return 0


# --------------------------------------------------------------------------------------------
# stnls info

INFO_EPILOG = """\
example:
  stnls info
  STNLS_BACKEND=reference stnls info     what the ops run when the reference backend is forced
"""


def _add_info_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def _run_info(args: argparse.Namespace) -> int:
    from .utils import environment

    for name, version in environment.versions().items():
        print(f"{name:<8} {version}")
    for device in environment.devices():
        print(f"\ndevice {device}: {environment.device_name(device)}")
        for op, backend in environment.op_backends(device).items():
            print(f"  {op:<28} {backend}")
    return 0


# --------------------------------------------------------------------------------------------
# stnls bench

BENCH_EPILOG = """\
examples:
  stnls bench                          the benchmark of this machine's device
  stnls bench --json bench.json        also write every number as JSON
  stnls bench --configs readme,mid     (CUDA) only these configs of the original's numbers

On a CUDA GPU: every config of the original library's published H200 numbers,
forward and forward+backward time and peak memory beside those numbers. On the
CPU: the README quick-start search, in a fresh process per measurement.
"""


def _add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when available, else the CPU (default auto)")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--configs", help="CUDA: comma-separated config names (default all)")
    parser.add_argument("--size", type=int, help="CPU: frame height and width (default 128)")


def _run_bench(args: argparse.Namespace) -> int:
    import torch

    from . import bench

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise CommandError("--device cuda, but torch sees no CUDA device")
    if device == "cuda" and importlib.util.find_spec("triton") is None:
        raise CommandError("the GPU benchmark needs triton (pip install 'stnls[gpu]')")
    option, wrong = ("--configs", "--size") if device == "cuda" else ("--size", "--configs")
    if getattr(args, wrong.lstrip("-")) is not None:
        raise CommandError(f"{wrong} does not apply to the {device} benchmark")
    argv = [] if args.json is None else ["--json", args.json]
    value = getattr(args, option.lstrip("-"))
    if value is not None:
        argv += [option, str(value)]
    bench.run(argv, device)
    return 0


COMMANDS: dict[str, Command] = {
    "align": Command("video-alignment demo: optical flow vs shifted non-local search (default)",
                     ALIGN_EPILOG, _add_align_arguments, _run_align),
    "info": Command("versions, devices and the backend each op uses", INFO_EPILOG,
                    _add_info_arguments, _run_info),
    "bench": Command("benchmarks of this machine's device", BENCH_EPILOG, _add_bench_arguments,
                     _run_bench),
}
DEFAULT_COMMAND = "align"


def build_parser() -> argparse.ArgumentParser:
    """The ``stnls`` argument parser with one subparser per entry of :data:`COMMANDS`."""
    from . import __version__

    parser = _Parser(prog="stnls", description="Space-time non-local search for video, in PyTorch. "
                     f"Without a subcommand, runs '{DEFAULT_COMMAND}'.",
                     epilog="examples:\n  stnls\n  stnls align --clip carphone\n  stnls info\n  stnls bench\n"
                     "  stnls align --help",
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"stnls {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}",
                                parser_class=_Parser)
    for name, command in COMMANDS.items():
        child = sub.add_parser(name, help=command.summary, description=command.summary,
                               epilog=command.epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(child)
        child.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``stnls`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = [DEFAULT_COMMAND] + argv
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (CommandError, DemoInputError) as error:
        print(f"stnls {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stnls {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (e.g. `| head`)
        sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    sys.exit(main())
