"""``perception bench`` / ``benchmarks/run.py``: model-only, multi-task vs single-task, the service end
to end (cores shared with the load generator, and pinned apart from it), a plain FastAPI + ONNX
Runtime server and a PyTorch-eager one, measured on this machine; JSON, Markdown and a PNG plot.

    .venv/bin/perception bench --random-init --out benchmarks/results        # ~8 minutes on 2 cores
    .venv/bin/perception bench --model models/drivenet --quick                # ~3 minutes, newest version

The service runs in its own default configuration (``service.settings``) unless ``--max-batch`` and
the like override it. Ratios are measured side by side in one process with interleaved repeats
(medians), so a busy neighbour slows both sides alike; absolute figures on a shared machine are
noisy, and the load average at the start is recorded with them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort

from perception.bench.arguments import SECTIONS, parse_bench_arguments
from perception.bench.endtoend import eager_section, frame_work_cpu, plain_section, say, service_section
from perception.bench.load import LoadGenerator
from perception.bench.pinning import PinError, PinPlan, cpu_list, pin_plan
from perception.bench.plan import PLANS, Plan
from perception.bench.report import evaluate_targets, write_markdown, write_plot
from perception.bench.service_config import ServiceConfig, service_config
from perception.contract import MODEL_FILE, ModelError, ModelMetadata, resolve_model_path
from perception.export.single_task import export_random_init, multi_vs_single_task
from perception.export.variants import make_int8
from perception.machine import hardware
from perception.runtime import allowed_cores
from perception.timing import FRAMES_DIR, letterboxed_frames, throughput_and_in_flight
from service.variants import choose

REPO = Path(__file__).resolve().parents[2]
EAGER_SCRIPT = REPO / "benchmarks" / "eager_server.py"
PLAIN_SCRIPT = REPO / "benchmarks" / "plain_ort_server.py"


def main(argv: list[str]) -> int:
    """``perception bench ARGS`` (what ``benchmarks/run.py`` runs)."""
    return bench_command(parse_bench_arguments(argv))


def bench_command(args: argparse.Namespace) -> int:
    plan = PLANS["tiny" if args.tiny else "quick" if args.quick else "full"]
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    if unknown := set(sections) - set(SECTIONS):
        raise SystemExit(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    try:
        pin = pin_plan(getattr(args, "pin", "auto"), allowed_cores())
    except PinError as exc:
        raise SystemExit(str(exc)) from None
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="perception-bench-") as tmp:
        report = run(args, plan, sections, pin, Path(tmp))
    json_path, md_path, png_path = (args.out / f"{args.name}.{ext}" for ext in ("json", "md", "png"))
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    markdown = write_markdown(report, md_path, png_path.name)
    write_plot(report, png_path)
    print(markdown)
    print(f"wrote {json_path}, {md_path} and {png_path}")
    return 0


def pinning_note(spec: str, pin: PinPlan | None) -> str:
    if pin:
        return f"pinned run: {pin.describe()}, {len(pin.server)} intra-op thread(s) (--pin {spec})"
    if spec.strip().lower() == "off":
        return "pinned run skipped (--pin off): only the shared-cores figure is reported"
    cores = allowed_cores()
    return (
        f"pinned run skipped: this process may run on {len(cores)} core(s) ({cpu_list(cores)}), too few to "
        "give the load generator one the server does not use; only the shared-cores figure is reported"
    )


def run(args: argparse.Namespace, plan: Plan, sections: list[str], pin: PinPlan | None, tmp: Path) -> dict:
    started = time.time()
    config = service_config(args)
    threads = config.threads
    notes: list[str] = []
    report: dict = {"machine": machine(), "settings": {}, "notes": notes, "sections": sections}
    say(f"{report['machine']['cpu']}, load average {report['machine']['load_average_start']}")

    model_dir = model_folder(args, config, tmp, notes)
    paths = {"fp32": model_dir / MODEL_FILE}
    session = ort.InferenceSession(str(paths["fp32"]), providers=["CPUExecutionProvider"])
    meta = ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map)
    del session
    report["model"] = {"path": str(model_dir), "name": meta.name, "version": meta.version,
                       "input": [meta.input_height, meta.input_width], "random_init": args.random_init,
                       "recipe_hash": meta.recipe_hash}  # fmt: skip

    gpu = "CUDAExecutionProvider" in ort.get_available_providers() and Path("/dev/nvidiactl").exists()
    if not gpu:
        notes.append("FP16 and TensorRT skipped: no GPU on this machine (FP16 on a CPU runs through casts)")
    paths |= precision_variants(args.variant, model_dir, gpu, plan, tmp)
    served, why = served_variant(args.variant, model_dir, paths, config)
    notes.append(f"served: {served} ({why}); the service's batch policy: {config.policy}")
    pin_spec = getattr(args, "pin", "auto")
    pinning = {"spec": pin_spec, "note": pinning_note(pin_spec, pin)}
    if pin:
        pinning |= {"server": list(pin.server), "load_generator": list(pin.load)}
    report["settings"] = {"threads": threads, "max_batch": config.max_batch, "gpu": gpu, "served_variant": served,
                          "concurrent_batches": config.concurrent_batches,
                          "max_queue_delay_ms": config.max_queue_delay_ms, "sources": config.sources,
                          "provider": config.provider, "policy": config.policy, "variant_reason": why,
                          "pin": pinning, "plan": plan.__dict__}  # fmt: skip

    notes.append("in-process sessions use the service's ONNX Runtime options (perception/runtime.py), spinning off")
    if "service" in sections:
        notes.append(pinning["note"])
    if "plain" in sections:
        notes.append(f"plain ORT baseline (benchmarks/plain_ort_server.py): the served file, {threads} intra-op "
                     "threads, one run per request in FastAPI's thread pool, full-resolution decode")  # fmt: skip
    if "eager" in sections:
        notes.append(f"eager baseline: torch intra-op threads {args.eager_threads or 'default'} (on this shared "
                     "machine torch's default of one OpenMP thread per core ran about 10× slower)")  # fmt: skip
    frames = letterboxed_frames(meta.input_height, meta.input_width)
    focal = meta.canonical_focal_px
    if "model" in sections:
        say(f"model only: {', '.join(paths)} at batch {plan.batch_sizes}")
        report["model_only"] = model_only(paths, frames, focal, plan, threads, config.concurrent_batches)
    if "tasks" in sections:
        say("multi-task vs three single-task networks")
        report["tasks"] = tasks_section(model_dir, paths["fp32"], frames, focal, plan, threads, tmp)
    images = [p.read_bytes() for p in sorted(FRAMES_DIR.glob("*.jpg"))]
    with contextlib.ExitStack() as stack:
        generator = (
            stack.enter_context(closing(LoadGenerator())) if {"service", "plain", "eager"} & {*sections} else None
        )
        if "service" in sections:
            report["service"] = service_section(paths[served], frames, focal, config, plan, images,
                                                args.multi_frames, generator, tmp / "service.log")  # fmt: skip
            say("the service's decode and encode, each timed alone")
            report["service"]["frame_work_cpu_ms"] = frame_work_cpu(paths[served], images, plan.repeats)
            if pin:
                pinned_generator = stack.enter_context(closing(LoadGenerator(pin.load)))
                report["service_pinned"] = service_section(paths[served], frames, focal, config, plan, images,
                                                           args.multi_frames, pinned_generator,
                                                           tmp / "service-pinned.log", pin)  # fmt: skip
        if "plain" in sections:
            say("plain FastAPI + ONNX Runtime baseline")
            report["plain"] = plain_section(PLAIN_SCRIPT, paths[served], threads, plan, images, generator,
                                            tmp / "plain.log")  # fmt: skip
        if "eager" in sections:
            if (model_dir / "model.safetensors").is_file() and EAGER_SCRIPT.is_file():
                say("PyTorch-eager baseline")
                report["eager"] = eager_section(EAGER_SCRIPT, model_dir, args.eager_threads, plan, images, generator,
                                                tmp / "eager.log")  # fmt: skip
            else:
                notes.append("eager baseline skipped: needs model.safetensors beside the model and benchmarks/")
    report["targets"] = evaluate_targets(report)
    report["machine"]["load_average_end"] = list(os.getloadavg())
    report["seconds"] = round(time.time() - started, 1)
    return report


@contextlib.contextmanager
def closing(generator: LoadGenerator) -> Iterator[LoadGenerator]:
    """The load generator's process, shut down on the way out."""
    try:
        yield generator
    finally:
        generator.close()


def served_variant(flag: str, model_dir: Path, paths: dict[str, Path], config: ServiceConfig) -> tuple[str, str]:
    """The variant the service runs and why: ``--variant`` when it names one, else the one the service
    itself would serve from this folder on its provider (added to ``paths`` when not measured yet)."""
    if flag != "auto":
        if flag not in paths:
            raise SystemExit(f"--variant {flag}: {model_dir} has no {flag} variant to serve")
        return flag, f"--variant {flag}"
    try:
        choice = choose(model_dir, config.provider, config.settings.variant, config.settings.tolerance)
    except ModelError as exc:
        raise SystemExit(f"the service would not serve {model_dir}: {exc}") from None
    variant = choice.variant or "fp32"
    paths.setdefault(variant, choice.path)
    return variant, f"the service's own choice: {choice.reason}"


def model_folder(args: argparse.Namespace, config: ServiceConfig, tmp: Path, notes: list[str]) -> Path:
    """The version folder measured: ``--model`` (a model.onnx, a version folder, or a model folder
    whose newest version is taken, as the service does), the default architecture exported from
    random weights with ``--random-init``, or else the model the service serves by default."""
    if not args.random_init:
        if not args.model:
            notes.append(f"model: the service's default, {config.settings.model}")
        try:
            return resolve_model_path(Path(args.model or config.settings.model)).parent
        except ModelError as exc:
            raise SystemExit(f"no model to measure: {exc}") from None
    say("exporting the default architecture from random weights")
    notes.append("model: the default architecture exported from random-init weights (same cost as trained)")
    return export_random_init(tmp / "random-init")


def precision_variants(variant: str, model_dir: Path, gpu: bool, plan: Plan, tmp: Path) -> dict[str, Path]:
    """The variants measured beside FP32: INT8 on a CPU (or when asked; made in ``tmp`` if the folder
    lacks it), FP16 on a GPU when the folder has it."""
    paths = {}
    if variant == "int8" or (variant == "auto" and not gpu):
        existing = model_dir / "int8" / MODEL_FILE
        if existing.is_file():
            paths["int8"] = existing
        else:
            say("making the INT8 variant (static QDQ, synthetic calibration frames) in a temporary folder")
            paths["int8"] = make_int8(model_dir, tmp / "int8", plan.calibration_frames)
    if gpu:
        existing = model_dir / "fp16" / MODEL_FILE
        if existing.is_file():
            paths["fp16"] = existing
    return paths


# --- machine -------------------------------------------------------------------------------------


def machine() -> dict:
    versions = {"python": platform.python_version(), "onnxruntime": ort.__version__, "numpy": np.__version__}
    for module in ("torch", "cv2", "fastapi", "uvicorn", "httpx"):
        with contextlib.suppress(ImportError):
            versions[module] = __import__(module).__version__
    return {
        "cpu": hardware(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "git": git_revision(),
    }


def git_revision() -> str:
    """The checkout's commit, with "+changes" when tracked files differ from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True)  # fmt: skip
    except OSError:
        return "unknown"
    return commit.stdout.strip() + ("+changes" if dirty.stdout.strip() else "") if commit.returncode == 0 else "unknown"


# --- sections ------------------------------------------------------------------------------------


def model_only(paths: dict[str, Path], frames: np.ndarray, focal: float, plan: Plan, threads: int,
               concurrency: int) -> dict:  # fmt: skip
    """{batch: {variant: {latency_ms, frames_per_s, frames_per_s_in_flight}}}: one run at a time, and
    (when ``concurrency`` > 1) that many in flight, as the service runs them; interleaved, medians."""
    return throughput_and_in_flight(paths, frames, focal, plan.batch_sizes, concurrency, plan.repeats,
                                    plan.min_seconds, threads)  # fmt: skip


def tasks_section(model_dir: Path, multi: Path, frames: np.ndarray, focal: float, plan: Plan, threads: int,
                  tmp: Path) -> dict:  # fmt: skip
    """One multi-task pass against the three single-task networks (all FP32, batch 1)."""
    return multi_vs_single_task(model_dir, multi, frames, focal, threads, tmp, plan.repeats, plan.min_seconds)
