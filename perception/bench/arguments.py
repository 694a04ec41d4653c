"""``perception bench``'s command-line arguments, declared once for ``perception/cli.py`` and
``benchmarks/run.py``. The service's settings default to None: unset, the run measures the service's
own defaults (``perception.bench.service_config``)."""

from __future__ import annotations

import argparse
from pathlib import Path

SECTIONS = ("model", "tasks", "service", "plain", "eager")


def add_bench_arguments(bench: argparse.ArgumentParser) -> None:
    bench.add_argument(
        "--model",
        type=Path,
        help="models/<name>/ (newest version), a version folder or model.onnx (default: the service's own model)",
    )
    bench.add_argument("--random-init", action="store_true", help="measure the default architecture, random weights")
    bench.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results folder")
    bench.add_argument("--name", default="latest", help="results file stem: <name>.json, .md and .png")
    mode = bench.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer repeats and load levels (~3 minutes)")
    mode.add_argument("--tiny", action="store_true", help="the smallest run that exercises everything")
    bench.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    bench.add_argument(
        "--variant",
        default="auto",
        help="what the service runs: auto (what the service itself "
        "serves from the folder: int8 on CPU when its accuracy is within tolerance), fp32, int8",
    )
    bench.add_argument("--pin", default="auto", metavar="auto|off|SERVER_CORES:LOAD_CORES",
                       help="also measure the service with the server and raw model pinned to some cores and the "
                            "load generator to others (auto: the last core for the load generator)")  # fmt: skip
    settings = "the service's own default"
    bench.add_argument("--threads", type=int, help=f"ONNX Runtime intra-op threads (default: {settings})")
    bench.add_argument("--max-batch", type=int, help=f"PERCEPTION_MAX_BATCH (default: {settings})")
    bench.add_argument("--concurrent-batches", type=int, help=f"PERCEPTION_CONCURRENT_BATCHES (default: {settings})")
    bench.add_argument("--max-queue-delay-ms", type=float, help=f"PERCEPTION_MAX_QUEUE_DELAY_MS (default: {settings})")
    bench.add_argument("--multi-frames", type=int, default=4, help="frames per multi-camera request")
    bench.add_argument("--eager-threads", type=int, default=1, help="torch threads of the eager baseline (0: default)")


def parse_bench_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="perception bench", description="measure the model, the service and "
                                     "two plain servers (ONNX Runtime and PyTorch eager in FastAPI)")  # fmt: skip
    add_bench_arguments(parser)
    return parser.parse_args(argv)
