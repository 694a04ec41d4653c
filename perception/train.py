"""``perception train CONFIG``: the training loop.

Mixed precision, EMA weights, warm-up + cosine schedule, resumable checkpoints every few minutes,
fine-tuning from earlier weights, a progress bar, TensorBoard, a metrics CSV and a PNG of the
curves. Runs distributed when started by ``torchrun`` (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from timm.utils import ModelEmaV3
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from perception.config import Config, load_config
from perception.data.loader import TensorDataset, collate, targets_to
from perception.losses import task_losses
from perception.model.net import MultiTaskNet
from perception.weighting import build_weighting, per_task, shared_parameters

CHECKPOINT = "last.pt"
WEIGHTS = "model.safetensors"


def train_command(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.set)
    out = args.out or Path("runs") / args.config.stem
    train(config, out, resume=args.resume, init=args.init)
    return 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_datasets(config: Config) -> TensorDataset:
    from perception.data.registry import open_dataset
    from perception.data.transforms import training_transform

    data = config.data
    source = open_dataset(
        data.dataset,
        Path(data.root) if data.root else None,
        data.train_split,
        length=data.train_length,
        size=(config.model.input_height, config.model.input_width),
        seed=data.seed,
    )
    transform = training_transform(config)
    return TensorDataset(source, transform, seed=config.train.seed)


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on norms and biases."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def load_weights(model: nn.Module, path: Path) -> list[str]:
    """Load weights for fine-tuning, skipping tensors whose shape differs (e.g. a new class list).
    Returns the names that were not loaded."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("ema") or state["model"]
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


def save_weights(model: nn.Module, config: Config, out: Path) -> None:
    """EMA weights as safetensors plus the config beside them: what export and fine-tuning read."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, out / WEIGHTS, metadata={"config": json.dumps(config.to_dict())})
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))


def infinite(loader: DataLoader, dataset: TensorDataset) -> Iterator:
    epoch = 0
    while True:
        dataset.epoch = epoch
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def train(config: Config, out: Path, resume: bool = False, init: Path | None = None, dataset=None) -> Path:
    """Train and return the run folder. ``dataset`` (a TensorDataset) overrides the config's data."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if torch.cuda.is_available() else None
    device = device or torch.device("cpu")
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    main_process = rank == 0
    tc = config.train
    seed_everything(tc.seed + rank)
    out.mkdir(parents=True, exist_ok=True)

    # channels-last convolutions: 1.2x faster on CPU (oneDNN), and what tensor cores want on GPU
    model = MultiTaskNet(config.model).to(device, memory_format=torch.channels_last)
    if init:
        skipped = load_weights(model, init)
        if main_process and skipped:
            print(f"fine-tuning from {init}: {len(skipped)} tensors not loaded (new shapes): {skipped[:5]}")
    ema = ModelEmaV3(model, decay=tc.ema_decay, use_warmup=True)
    optimizer = torch.optim.AdamW(param_groups(model, tc.weight_decay), lr=tc.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, tc.warmup_steps, tc.steps))
    weighting = build_weighting(tc.weighting, list(config.model.tasks), tc.task_weights, **tc.weighting_kwargs)
    weighting = weighting.to(device)
    shared, last_shared = shared_parameters(model)
    amp_dtype = torch.bfloat16 if tc.amp else None
    step = 0
    elapsed_before = 0.0  # training seconds of earlier sessions of this run
    ckpt_path = out / CHECKPOINT
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        ema.module.load_state_dict(ckpt["ema"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if "weighting" in ckpt:
            weighting.load_state_dict(ckpt["weighting"])
        step = ckpt["step"]
        elapsed_before = ckpt.get("elapsed_s", 0.0)
        torch.set_rng_state(ckpt["rng"])
        if main_process:
            print(f"resumed {ckpt_path} at step {step}")
    elif main_process:
        (out / "metrics.csv").unlink(missing_ok=True)

    dataset = dataset or build_datasets(config)
    sampler = DistributedSampler(dataset, world, rank, shuffle=True, seed=tc.seed) if distributed else None
    loader = DataLoader(
        dataset,
        batch_size=tc.batch_size // world,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=config.data.workers,
        collate_fn=collate,
        drop_last=True,
        persistent_workers=config.data.workers > 0,
        generator=torch.Generator().manual_seed(tc.seed + step),  # a resumed run sees new orders
    )
    ddp_model = DistributedDataParallel(model) if distributed else model

    writer = None
    if main_process:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(out / "tensorboard")
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        record_session(out, step, device, world)

    def save_checkpoint() -> None:
        if not main_process:
            return
        state = {
            "model": model.state_dict(),
            "ema": ema.module.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "weighting": weighting.state_dict(),
            "step": step,
            "elapsed_s": elapsed_before + time.monotonic() - started,
            "rng": torch.get_rng_state(),
            "config": config.to_dict(),
        }
        torch.save(state, out / (CHECKPOINT + ".tmp"))
        os.replace(out / (CHECKPOINT + ".tmp"), ckpt_path)  # never leave a half-written checkpoint
        save_weights(ema.module, config, out)
        plot_curves(out)

    model.train()
    batches = infinite(loader, dataset)
    progress = tqdm(total=tc.steps, initial=step, disable=not main_process, desc="train", dynamic_ncols=True)
    last_save = time.monotonic()
    started = time.monotonic()
    while step < tc.steps:
        images, targets = next(batches)
        images, targets = images.to(device, non_blocking=True), targets_to(targets, device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            outputs = ddp_model(model.normalise(images).contiguous(memory_format=torch.channels_last))
        losses = task_losses(outputs, targets, config.model.canonical_focal_px)
        by_task = per_task(losses)
        optimizer.zero_grad(set_to_none=True)
        weights = weighting.backward(by_task, shared, step, last_shared=last_shared)  # fills .grad
        total = sum(weights[t] * v.detach() for t, v in by_task.items())
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimizer.step()
        scheduler.step()
        ema.update(model, step=step)
        step += 1

        if main_process and (step % tc.log_every == 0 or step == tc.steps):
            row = {"step": step, "loss": float(total), **{k: v.item() for k, v in losses.items()}}
            row |= {f"w_{t}": w for t, w in weights.items()}
            row |= {
                "lr": scheduler.get_last_lr()[0],
                "grad_norm": grad_norm.item(),
                "time_s": time.monotonic() - started,
                "elapsed_s": elapsed_before + time.monotonic() - started,
            }
            for key, value in row.items():
                if key != "step":
                    writer.add_scalar(f"train/{key}", value, step)
            append_metrics(out / "metrics.csv", row)
            progress.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k in losses or k == "loss"})
        progress.update(1)
        if time.monotonic() - last_save > tc.checkpoint_every_s:
            save_checkpoint()
            last_save = time.monotonic()

    progress.close()
    save_checkpoint()
    if main_process:
        writer.close()
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return out


def append_metrics(path: Path, row: dict) -> None:
    """Append a row to metrics.csv; a row with new columns (e.g. a resumed run with another
    weighting) rewrites the file with the wider header."""
    rows: list[dict] = []
    header: list[str] = []
    if path.exists() and path.stat().st_size:
        with path.open() as f:
            header = next(csv.reader(f))
    if set(row) - set(header):
        if header:
            with path.open() as f:
                rows = list(csv.DictReader(f))
        header = header + [k for k in row if k not in header]
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
    with path.open("a", newline="") as f:
        csv.DictWriter(f, fieldnames=header, extrasaction="ignore").writerow(row)


def record_session(out: Path, step: int, device: torch.device, world: int) -> None:
    """run.json: the command and machine of every session of this run (the model card quotes them)."""
    import sys

    from perception.card import hardware

    path = out / "run.json"
    info = json.loads(path.read_text()) if path.exists() else {"sessions": []}
    command = "perception " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("perception") else " ".join(sys.argv)
    machine = f"{world} × {torch.cuda.get_device_name(device)}" if device.type == "cuda" else hardware()
    info["command"] = command
    info["hardware"] = machine
    info["sessions"].append({"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "from_step": step,
                             "hardware": machine, "command": command})  # fmt: skip
    path.write_text(json.dumps(info, indent=2))


def plot_curves(out: Path) -> None:
    """training_curves.png from metrics.csv: one panel per logged quantity."""
    path = out / "metrics.csv"
    if not path.exists():
        return
    with path.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in rows[0] if k not in ("step", "time_s", "elapsed_s")]
    fig, axes = plt.subplots(1, len(keys), figsize=(3 * len(keys), 2.6), squeeze=False)
    steps = [int(r["step"]) for r in rows]
    for ax, key in zip(axes[0], keys, strict=True):
        ax.plot(steps, [float(r[key]) for r in rows])
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        if key not in ("lr",):
            ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=90)
    plt.close(fig)


if __name__ == "__main__":  # torchrun --nproc_per_node=N -m perception.train CONFIG
    import sys

    from perception.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
