"""``perception study``: does sharing pay? Multi-task training under each task-weighting method
against three single-task networks, with the same data, budget and seeds, scored on held-out data.

Every run lives in its own folder and resumes from its checkpoint, so a study interrupted by the
end of a session continues where it stopped when the same command is run again.

Δm (Maninis et al. 2019; Vandenhende et al. 2021) is the mean relative change of every metric
against the single-task networks, sign-corrected so that higher is better:
Δm = 100 / N · Σ_i s_i (M_i − M_single,i) / M_single,i, with s_i = −1 where lower is better.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from perception.card import write_section
from perception.config import TASKS, Config, load_config
from perception.contract import MODEL_FILE
from perception.evaluate import score, torch_predictor
from perception.export.single_task import export_random_init, multi_vs_single_task
from perception.timing import letterboxed_frames
from perception.train import CHECKPOINT, WEIGHTS, train

# (task, metric, higher is better)
METRICS = (
    ("detection", "mAP50", True),
    ("detection", "mAP", True),
    ("segmentation", "mIoU", True),
    ("depth", "AbsRel", False),
    ("depth", "RMSE", False),
    ("depth", "delta1", True),
)


def run_configs(base: Config, methods: list[str], seeds: list[int]) -> dict[str, Config]:
    """Every run of the study by name: single_<task>_s<seed> and multi_<method>_s<seed>."""
    runs: dict[str, Config] = {}
    for seed in seeds:
        for task in TASKS:
            model = replace(base.model, tasks=[task])
            train = replace(base.train, seed=seed, weighting="fixed")
            runs[f"single_{task}_s{seed}"] = replace(base, model=model, train=train)
        for method in methods:
            kwargs = dict(base.train.weighting_kwargs) if method == base.train.weighting else {}
            if method == "dwa":  # DWA compares loss windows ("epochs"): 20 of them whatever the budget
                kwargs.setdefault("window", max(10, base.train.steps // 20))
            train = replace(base.train, seed=seed, weighting=method, weighting_kwargs=kwargs)
            runs[f"multi_{method}_s{seed}"] = replace(base, train=train)
    return runs


def flat_metrics(metrics: dict) -> dict[str, float]:
    return {f"{task}.{name}": metrics[task][name] for task, name, _ in METRICS if task in metrics}


def delta_m(multi: dict[str, float], single: dict[str, float]) -> float:
    """Δm in percent over the metrics both sides have."""
    terms = []
    for task, name, higher in METRICS:
        key = f"{task}.{name}"
        if key in multi and key in single and single[key]:
            sign = 1.0 if higher else -1.0
            terms.append(sign * (multi[key] - single[key]) / abs(single[key]))
    return 100.0 * sum(terms) / len(terms) if terms else float("nan")


def train_and_score(name: str, config: Config, root: Path, eval_count: int) -> dict:
    """Train (or resume, or skip when finished) one run and score it on the held-out split."""
    folder = root / name
    result_file = folder / "result.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    started = time.monotonic()
    train(config, folder, resume=(folder / CHECKPOINT).exists())
    root = Path(config.data.root) if config.data.root else None
    metrics = score(*torch_predictor(folder / WEIGHTS), config.data.dataset, root, "test", eval_count)
    with (folder / "metrics.csv").open() as f:
        last = list(csv.DictReader(f))[-1]
    elapsed = float(last.get("elapsed_s") or time.monotonic() - started)
    result = {
        "name": name,
        "metrics": flat_metrics(metrics),
        "train_hours": elapsed / 3600,
        "steps": config.train.steps,
        "weighting": config.train.weighting,
        "tasks": config.model.tasks,
    }
    result_file.write_text(json.dumps(result, indent=2))
    return result


def summarise(results: dict[str, dict], methods: list[str], seeds: list[int]) -> dict:
    """Per method: metrics (mean over seeds), Δm per seed, mean and spread, training cost."""
    single = {}
    for seed in seeds:
        merged: dict[str, float] = {}
        for task in TASKS:
            merged |= results[f"single_{task}_s{seed}"]["metrics"]
        single[seed] = merged
    rows = {"single-task (3 networks)": {
        "metrics": mean_metrics([single[s] for s in seeds]), "delta_m": [0.0 for _ in seeds],
        "train_hours": sum(results[f"single_{t}_s{s}"]["train_hours"] for t in TASKS for s in seeds) / len(seeds),
    }}  # fmt: skip
    for method in methods:
        runs = [results[f"multi_{method}_s{s}"] for s in seeds]
        rows[method] = {
            "metrics": mean_metrics([r["metrics"] for r in runs]),
            "delta_m": [delta_m(r["metrics"], single[s]) for r, s in zip(runs, seeds, strict=True)],
            "train_hours": statistics.mean(r["train_hours"] for r in runs),
        }
    return rows


def mean_metrics(items: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.mean(m[k] for m in items) for k in items[0]}


def markdown(rows: dict, seeds: list[int], latency: dict | None, budget: str) -> str:
    keys = [f"{t}.{n}" for t, n, _ in METRICS]
    head = "| method | " + " | ".join(k.split(".")[1] for k in keys) + " | Δm % (mean ± sd) | train h |"
    lines = [budget, "", head, "|" + " --- |" * (len(keys) + 3)]
    for method, row in rows.items():
        dm = row["delta_m"]
        spread = statistics.stdev(dm) if len(dm) > 1 else 0.0
        cells = " | ".join(f"{row['metrics'].get(k, float('nan')):.3f}" for k in keys)
        lines.append(f"| {method} | {cells} | {statistics.mean(dm):+.2f} ± {spread:.2f} | {row['train_hours']:.2f} |")
    lines.append("")
    lines.append(
        f"Seeds: {seeds}. Detection mAP on the held-out synthetic test split; AbsRel and RMSE lower is better."
    )
    if latency:
        lines.append(
            f"Latency (ONNX Runtime, batch 1, {latency['input']}, median): one multi-task pass "
            f"{latency['multi_ms']:.1f} ms; three single-task passes back to back {latency['singles_ms']:.1f} ms; "
            f"ratio {latency['ratio']:.2f}."
        )
    return "\n".join(lines)


def plot(rows: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [f"{t}.{n}" for t, n, _ in METRICS]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.2))
    names = list(rows)
    for ax, key in zip(axes, keys, strict=True):
        ax.bar(range(len(names)), [rows[n]["metrics"].get(key, 0) for n in names], color="tab:blue")
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(key, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def multitask_latency(config: Config, height: int, width: int) -> dict:
    """One multi-task pass against the three single-task networks run back to back (ONNX Runtime,
    batch 1, the study's architecture at ``height`` x ``width``, interleaved repeats in one process):
    the bench's measure. Weights do not change the cost, so the networks are exported untrained:
    a study with a reduced input size still reports the latency at the size that ships."""
    model = replace(config.model, input_height=height, input_width=width, tasks=list(TASKS))
    with tempfile.TemporaryDirectory() as tmp:
        folder = export_random_init(Path(tmp), replace(config, model=model))
        frames = letterboxed_frames(height, width)
        timed = multi_vs_single_task(folder, folder / MODEL_FILE, frames, model.canonical_focal_px,
                                     os.cpu_count() or 1, Path(tmp))  # fmt: skip
    row = timed["latency_ms"]
    return {"multi_ms": row["multi-task"], "singles_ms": timed["three_single_ms"], "ratio": timed["ratio"],
            "each_ms": row, "input": f"{width}x{height}"}  # fmt: skip


def study_command(args: argparse.Namespace) -> int:
    base = load_config(args.config, args.set)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    results = {name: train_and_score(name, cfg, args.out, args.eval_count)
               for name, cfg in run_configs(base, methods, seeds).items()}  # fmt: skip
    rows = summarise(results, methods, seeds)
    latency = None
    if not args.no_latency:
        width, height = (int(v) for v in args.latency_size.lower().split("x"))
        latency = multitask_latency(base, height, width)
    sets = "".join(f" --set {o}" for o in args.set or [])
    budget = (f"Study budget (reduced from the bundled recipe): {base.train.steps} steps × batch "
              f"{base.train.batch_size} at {base.model.input_width}×{base.model.input_height} per run, "
              f"{args.eval_count} held-out frames per score, `perception study {args.config} "
              f"--seeds {args.seeds} --methods {args.methods} --eval-count {args.eval_count}{sets}`.")  # fmt: skip
    table = markdown(rows, seeds, latency, budget)
    (args.out / "study.json").write_text(json.dumps({"rows": rows, "latency": latency, "seeds": seeds,
                                                     "budget": budget}, indent=2))  # fmt: skip
    (args.out / "study.md").write_text(table + "\n")
    plot(rows, args.out / "study.png")
    if args.card:
        write_section(args.card, "study", f"## Does sharing pay? (the study)\n\n{table}")
    print(table)
    return 0
