"""Where an exported model's time goes: ONNX Runtime's profiler, summed by operator type, and the
costliest single nodes (after ONNX Runtime's graph optimisation, so fused names).

    .venv/bin/python benchmarks/profile_ops.py models/drivenet --batch 4
    .venv/bin/python benchmarks/profile_ops.py models/drivenet --variant int8 --batch 4

A model folder means its newest version, as the service picks it. Uses the service's session options
(perception/runtime.py) so the profile is of what is served.
A command, not a test.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort

from perception.contract import INPUT_FOCAL, INPUT_IMAGES, MODEL_FILE, resolve_model_path
from perception.runtime import session_options


def profile(model: Path, batch: int, runs: int, threads: int) -> list[dict]:
    """Kernel events of `runs` timed runs after two warm-up runs."""
    options = session_options(threads)
    with tempfile.TemporaryDirectory() as folder:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(folder) / "profile")
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        height, width = session.get_inputs()[0].shape[2:]
        feeds = {
            INPUT_IMAGES: np.random.default_rng(0).integers(0, 256, (batch, 3, height, width), np.uint8),
            INPUT_FOCAL: np.full(batch, 500.0, np.float32),
        }
        for _ in range(2 + runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    # Drop the warm-up runs: each run executes the same nodes once.
    per_run = len(kernels) // (2 + runs)
    return kernels[2 * per_run :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a model folder, a version folder or a model.onnx")
    parser.add_argument("--variant", choices=["fp32", "fp16", "int8"], default="fp32", help="precision variant")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()

    model = resolve_model_path(args.model)
    if args.variant != "fp32":
        model = model.parent / args.variant / MODEL_FILE
    kernels = profile(model, args.batch, args.runs, args.threads)
    total = sum(k["dur"] for k in kernels)
    by_operator = ("operator", lambda k: k["args"]["op_name"])
    by_node = ("node", lambda k: f"{k['args']['op_name']} {k['name'].removesuffix('_kernel_time')}")
    for title, key in (by_operator, by_node):
        sums: dict[str, float] = defaultdict(float)
        for k in kernels:
            sums[key(k)] += k["dur"]
        print(f"\n{title:<48} {'ms/run':>8} {'share':>6}")
        for name, dur in sorted(sums.items(), key=lambda item: -item[1])[: args.top]:
            print(f"{name[:48]:<48} {dur / args.runs / 1000:8.2f} {dur / total:6.1%}")
    print(f"\nkernel time {total / args.runs / 1000:.2f} ms per run of batch {args.batch}, {args.threads} threads")


if __name__ == "__main__":
    main()
