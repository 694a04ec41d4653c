"""FP32 vs INT8 (vs FP16) on this machine's CPU: latency and throughput per batch size, measured side
by side in one process (same session options, interleaved repeats, medians), and accuracy changes on
the held-out synthetic test split.

    .venv/bin/python benchmarks/variants.py models/drivenet --out variants-benchmark.json

A model folder means its newest version, as the service picks it.
Makes the fp16/ and int8/ variants first when the folder lacks them (``--remake`` to redo them).
A command, not a test: it takes minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from perception.contract import resolve_model_path
from perception.export.variants import THREADS, compare_variants, make_variants, variant_paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="models/<name>/ (its newest version) or a version folder")
    parser.add_argument("--batch-sizes", default="1,2,4,8")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--count", type=int, default=200, help="held-out frames for accuracy")
    parser.add_argument("--calibration-frames", type=int, default=64)
    parser.add_argument("--remake", action="store_true", help="make the variants again")
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    args = parser.parse_args()
    args.model_dir = resolve_model_path(args.model_dir).parent

    missing = tuple(v for v in ("fp16", "int8") if args.remake or v not in variant_paths(args.model_dir))
    if missing:
        make_variants(args.model_dir, missing, args.calibration_frames)
    batches = tuple(int(b) for b in args.batch_sizes.split(","))
    report = compare_variants(args.model_dir, args.count, batches, args.repeats, write=False)

    print(f"{report['model']} at {report['input'][1]}x{report['input'][0]} on {report['machine']}")
    print(f"onnxruntime {report['onnxruntime']}; {args.repeats} interleaved repeats, medians")
    print(f"\n{'batch':>5} {'variant':>7} {'latency ms':>11} {'frames/s':>9} {'vs fp32':>8}")
    for batch, row in report["throughput"].items():
        for name, value in row.items():
            ratio = report["speedup"][batch][name]
            print(f"{batch:>5} {name:>7} {value['latency_ms']:>11.1f} {value['frames_per_s']:>9.1f} {ratio:>7.2f}x")
    print(f"\naccuracy on {report['data']['frames']} held-out synthetic test frames (change vs fp32)")
    for name, acc in report["accuracy"].items():
        change = report["accuracy_change"][name]
        print(f"{name:>7} " + "  ".join(f"{k} {v:.4f} ({change[k]:+.4f})" for k, v in acc.items()))
    if args.out:
        args.out.write_text(json.dumps({**report, "threads": THREADS, "repeats": args.repeats}, indent=2) + "\n")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
