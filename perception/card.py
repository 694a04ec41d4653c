"""The model card: what a model folder holds, how it was made, and what it scores on held-out data.

Written by ``perception export`` into ``models/<name>/<version>/card.md``. Other tools add their own
sections between their own markers (precision variants, the study), which a rewrite keeps.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from perception.data.registry import LICENCES
from perception.evaluate import markdown_table
from perception.evaluate.command import report
from perception.evaluate.protocols import protocol_for
from perception.model.pretrained import SOURCES


def gflops(net: nn.Module, height: int, width: int) -> float:
    """GFLOPs of one forward pass at ``height`` x ``width`` (torch's counter: 2 FLOPs per multiply-add)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net.eval()(torch.zeros(1, 3, height, width))
    return counter.get_total_flops() / 1e9


def training_summary(run: Path) -> dict:
    """Steps, wall time and command of the run that produced the weights (if its folder is known)."""
    summary: dict = {}
    metrics = run / "metrics.csv"
    if metrics.exists():
        with metrics.open() as f:
            rows = list(csv.DictReader(f))
        if rows:
            summary["steps"] = int(rows[-1]["step"])
            summary["wall_time_h"] = float(rows[-1].get("elapsed_s") or rows[-1].get("time_s") or 0) / 3600
            summary["final_losses"] = {
                k: float(v) for k, v in rows[-1].items() if k in ("det_cls", "det_box", "seg", "depth")
            }
    info = run / "run.json"
    if info.exists():
        summary |= json.loads(info.read_text())
    return summary


def backbone_kwargs(model: dict) -> str:
    """The backbone's extra arguments and where its weights started, for the Model line ('' when none)."""
    parts = [f"{key}={value}" for key, value in (model.get("backbone_kwargs") or {}).items()]
    if model.get("pretrained"):
        parts.append(f"started from {model['pretrained']} weights")
    return f" ({', '.join(parts)})" if parts else ""


def render(name: str, version: str, config: dict, metrics: dict, training: dict, facts: dict) -> str:
    lines = [
        f"# {name} {version}",
        "",
        "One network, one pass: object detection, semantic segmentation and metric depth from a camera frame.",
        "",
        *provenance(config),
        "",
        "## Files",
        "- `model.onnx`: uint8 RGB [B, 3, H, W] + focal length in, detections (after NMS), class map and",
        "  depth in metres out; `model.onnx.sha256`: its checksum; `model.safetensors` + `config.json`: the",
        "  weights and recipe, to fine-tune from (`perception train CONFIG --init model.safetensors`).",
        "",
        "## Model",
        f"- input {config['model']['input_width']}×{config['model']['input_height']}, backbone "
        f"`{config['model']['backbone']}`{backbone_kwargs(config['model'])}, tasks {config['model']['tasks']}",
        "- feature pyramid at strides 8-32; anchor-free detection head (separable convolutions) at strides "
        f"{config['model']['det_strides']}; one stride-4 decoder shared by segmentation and depth (backbone "
        "stride-4 features + pyramid stride 8), its outputs upsampled to the input size"
        f"{fine_level(config)}; "
        f"{config['model'].get('head_activation', 'silu')} activations in the heads",
        f"- {facts['gflops']:.2f} GFLOPs per frame (torch FlopCounterMode: 2 FLOPs per multiply-add), "
        f"{facts['params_m']:.2f} M parameters",
        f"- ONNX Runtime CPU latency, batch 1: {facts['latency_ms']:.1f} ms median ({facts['hardware']})",
        "",
        "## Training",
        f"- data: {data_sources(config['data'])}, seed {config['data']['seed']}",
        f"- task weighting: `{config['train'].get('weighting', 'fixed')}`, task weights "
        f"{config['train'].get('task_weights')}",
        f"- steps: {training.get('steps', '?')} × batch {config['train']['batch_size']}; wall time "
        f"{training.get('wall_time_h', 0):.2f} h on {training.get('hardware', facts['hardware'])}",
        f"- command: `{training.get('command', 'perception train CONFIG')}`",
        f"- recipe hash {facts['recipe_hash']}",
        "",
        f"## Held-out metrics ({metrics.get('frames', 0)} frames of `{metrics.get('data', {}).get('split', 'test')}`, "
        "never trained on)",
        "",
        markdown_table(metrics),
        "",
        f"Export command: `{facts['export_command']}`",
    ]
    return "\n".join(lines)


def write_section(card: Path, name: str, body: str, first: bool = False) -> None:
    """Put ``body`` between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``card`` (created if
    missing), replacing an earlier copy and keeping every other section; a new section goes at the
    end, or at the top with ``first``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body}\n{end}"
    text = card.read_text() if card.is_file() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    elif first:
        text = block + ("\n\n" + text if text else "\n")
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + block + "\n"
    card.write_text(text)


def provenance(config: dict) -> list[str]:
    """What the weights have seen (the real data sets and the licences they come under) and where the
    backbone started."""
    data = config["data"]
    sources = [s["dataset"] for s in data.get("sources") or [{"dataset": data["dataset"]}]]
    real = [name for name in dict.fromkeys(sources) if LICENCES.get(name, "").endswith("(non-commercial)")]
    if real:
        lines = [
            "**Trained on real camera frames** besides the built-in synthetic world: "
            + "; ".join(f"`{name}`, {LICENCES[name]}" for name in real)
            + ". Those terms bind these weights: research and non-commercial use only.",
        ]
    else:
        lines = [
            "**Seen only synthetic scenes** (the built-in driving world, `docs/synthetic-data.md`). On real cameras,",
            "fine-tune it first (`docs/data.md`).",
        ]
    backbone, pretrained = config["model"]["backbone"], config["model"].get("pretrained", "")
    if pretrained == "imagenet" and backbone in SOURCES:
        source = SOURCES[backbone]
        lines += ["", f"Backbone started from ImageNet weights (`{source.distribution}`; {source.licence})."]
    elif pretrained:
        lines += ["", f"Backbone started from the weights in `{pretrained}`."]
    return lines


def real_frames(results: dict[str, dict]) -> str:
    """The card's "Real frames" section: one summary row per real data set, then each set's table
    under its protocol."""
    lines = [
        "## Real frames",
        "",
        "The exported `model.onnx` scored on real labelled frames under each set's protocol (`docs/data.md`",
        '"Real evaluation"); KITTI and nuScenes: boxes at least 16 px tall, LiDAR pixels 1-80 m.',
        "",
        "| set | frames | mIoU | car AP50 | pedestrian AP50 | AbsRel | AbsRel, median-scaled | δ<1.25 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    for name, metrics in results.items():
        seg, det, depth = (metrics.get(task, {}) for task in ("segmentation", "detection", "depth"))
        per_class = det.get("per_class_AP50", {})
        row = [seg.get("mIoU"), per_class.get("car"), per_class.get("pedestrian"), depth.get("AbsRel"),
               depth.get("AbsRel_median_scaled"), depth.get("delta1")]  # fmt: skip
        split = metrics["data"]["split"]
        lines.append(f"| {name} {split} | {metrics['frames']} | " + " | ".join(map(cell, row)) + " |")
    for name, metrics in results.items():
        lines += ["", report(metrics, protocol_for(name))]
    return "\n".join(lines)


def fine_level(config: dict) -> str:
    """The card's words for a stride-4 detection level, which reads the dense decoder."""
    return ", its features also the detection head's stride-4 level" if 4 in config["model"]["det_strides"] else ""


def data_sources(data: dict) -> str:
    """The training sources and their weights, e.g. "`synthetic` (train) × 0.7, `camvid` (train) × 0.3"."""
    sources = data.get("sources") or [{"dataset": data["dataset"], "split": data.get("train_split", "train")}]
    return ", ".join(
        f"`{s['dataset']}` ({s.get('split', 'train')})" + (f" × {s['weight']:g}" if "weight" in s else "")
        for s in sources
    )
