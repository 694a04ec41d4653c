"""The backbone A/B table (docs/backbones.md "The A/B"): each arm of ``configs/backbone/`` that has been
trained, side by side on the real frames, on synthetic test, in cost and in speed.

Train the arms first (equal budget, one recipe):

    for config in configs/backbone/*.toml; do
      arm=$(basename $config .toml)
      perception train $config --out runs/ab-$arm
      for ds in camvid kitti nuscenes; do
        perception eval runs/ab-$arm/model.safetensors --dataset $ds --out runs/ab-$arm/eval-$ds
      done
    done
    python benchmarks/backbone_ab.py            # --runs runs --synthetic 64 --out docs/backbone-ab

Per arm it exports the trained weights to ONNX (verified against torch), makes the INT8 variant the
service serves on CPU, scores FP32 and INT8 on ``--synthetic`` held-out synthetic test frames and
INT8 on CamVid val (the FP32 real figures are the run's ``perception eval`` files), and times FP32
and INT8 at batch 1 round-robin over the arms, so that load on a shared machine falls on all alike.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from perception.card import gflops
from perception.config import load_config
from perception.contract import INPUT_FOCAL, INPUT_IMAGES
from perception.evaluate.runners import onnx_predictor, score
from perception.export import export_model
from perception.export.variants import make_int8
from perception.machine import hardware
from perception.model import MultiTaskNet
from perception.runtime import cpu_session

REPO = Path(__file__).resolve().parent.parent
ARMS = tuple(sorted(p.stem for p in (REPO / "configs" / "backbone").glob("*.toml")))  # one config per arm
REAL = ("camvid", "kitti", "nuscenes")


def real_figures(run: Path) -> dict:
    """The headline real figures of the run's ``perception eval`` files (absent: not evaluated)."""
    out = {}
    for name in REAL:
        path = run / f"eval-{name}" / "metrics.json"
        if path.exists():
            out[name] = json.loads(path.read_text())
    return out


def seconds_per_step(run: Path) -> float:
    """Training wall seconds per step, from the run's metrics CSV (its last row)."""
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["time_s"]) / int(rows[-1]["step"])


def score_file(model: Path, dataset: str, count: int | None) -> dict:
    return score(*onnx_predictor(model), dataset, count=count)


def latencies_ms(models: dict[str, Path], height: int, width: int, rounds: int = 7, runs: int = 10) -> dict:
    """Median batch-1 latency per model, timed round-robin (``runs`` runs per model per round)."""
    feed = {INPUT_IMAGES: np.random.default_rng(0).integers(0, 256, (1, 3, height, width), dtype=np.uint8),
            INPUT_FOCAL: np.array([500.0], np.float32)}  # fmt: skip
    sessions = {name: cpu_session(path, 0) for name, path in models.items()}
    for s in sessions.values():
        for _ in range(3):
            s.run(None, feed)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, s in sessions.items():
            started = time.perf_counter()
            for _ in range(runs):
                s.run(None, feed)
            times[name].append((time.perf_counter() - started) / runs * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def headline(metrics: dict, dataset: str) -> dict:
    if dataset == "camvid":
        return {"mIoU": metrics["segmentation"]["mIoU"]}
    if dataset == "synthetic":
        return {"mAP50": metrics["detection"]["mAP50"], "mIoU": metrics["segmentation"]["mIoU"],
                "AbsRel": metrics["depth"]["AbsRel"]}  # fmt: skip
    det = metrics["detection"]["per_class_AP50"]
    return {"car AP50": det.get("car", float("nan")), "AbsRel": metrics["depth"]["AbsRel"],
            "AbsRel med": metrics["depth"].get("AbsRel_median_scaled", float("nan"))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=REPO / "runs", help="folder holding ab-<arm>/ runs")
    parser.add_argument("--synthetic", type=int, default=64, help="held-out synthetic test frames")
    parser.add_argument("--out", type=Path, help="write ab.json and ab.md here")
    args = parser.parse_args()

    arms = [a for a in ARMS if (args.runs / f"ab-{a}" / "model.safetensors").exists()]
    rows, models = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for arm in arms:
            run = args.runs / f"ab-{arm}"
            config = load_config(REPO / "configs" / "backbone" / f"{arm}.toml")
            height, width = config.model.input_height, config.model.input_width
            folder = Path(tmp) / arm / "1"
            export_model(run / "model.safetensors", folder)
            fp32, int8 = folder / "model.onnx", make_int8(folder / "model.onnx", folder / "int8")
            models |= {f"{arm} fp32": fp32, f"{arm} int8": int8}
            net = MultiTaskNet(config.model)
            real = real_figures(run)
            rows[arm] = {
                "GFLOPs": round(gflops(net, height, width), 2),
                "GFLOPs 640x384": round(gflops(net, 384, 640), 2),
                "train s/step": round(seconds_per_step(run), 2),
                "real": {name: headline(m, name) for name, m in real.items()},
                "synthetic fp32": headline(score_file(fp32, "synthetic", args.synthetic), "synthetic"),
                "synthetic int8": headline(score_file(int8, "synthetic", args.synthetic), "synthetic"),
                "camvid int8": headline(score_file(int8, "camvid", None), "camvid"),  # every val frame
            }
            print(f"{arm}: {json.dumps(rows[arm])}", flush=True)
        latency = latencies_ms(models, height, width)
    for arm in arms:
        rows[arm]["ms fp32"], rows[arm]["ms int8"] = latency[f"{arm} fp32"], latency[f"{arm} int8"]
    table = markdown(rows, height, width, args.synthetic)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "ab.json").write_text(json.dumps({"machine": hardware(), "arms": rows}, indent=2) + "\n")
        (args.out / "ab.md").write_text(table + "\n")


def markdown(rows: dict, height: int, width: int, synthetic: int) -> str:
    def f(value: float, digits: int = 3) -> str:
        return "–" if value != value else f"{value:.{digits}f}"  # NaN: not measured

    lines = [
        f"Machine: {hardware()}; ONNX Runtime CPU, batch 1, every intra-op thread; input {width}x{height}.",
        "",
        "| arm | CamVid val mIoU (INT8) | KITTI car AP50 | KITTI AbsRel (med.) | nuScenes car AP50 | "
        f"nuScenes AbsRel (med.) | synthetic {synthetic}: mAP50 / mIoU / AbsRel (INT8 mIoU) | GFLOPs (at 640x384) | "
        "ms FP32 / INT8 | train s/step |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arm, r in rows.items():
        real = r["real"]
        camvid = real.get("camvid", {}).get("mIoU", float("nan"))
        kitti, nus = real.get("kitti", {}), real.get("nuscenes", {})
        syn, syn8 = r["synthetic fp32"], r["synthetic int8"]
        lines.append(
            f"| {arm} | {f(camvid)} ({f(r['camvid int8']['mIoU'])}) | {f(kitti.get('car AP50', float('nan')))} | "
            f"{f(kitti.get('AbsRel', float('nan')))} ({f(kitti.get('AbsRel med', float('nan')))}) | "
            f"{f(nus.get('car AP50', float('nan')))} | {f(nus.get('AbsRel', float('nan')))} "
            f"({f(nus.get('AbsRel med', float('nan')))}) | {f(syn['mAP50'])} / {f(syn['mIoU'])} / "
            f"{f(syn['AbsRel'])} ({f(syn8['mIoU'])}) | {r['GFLOPs']:.2f} ({r['GFLOPs 640x384']:.2f}) | "
            f"{r['ms fp32']:.1f} / {r['ms int8']:.1f} | {r['train s/step']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
