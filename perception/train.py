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
import sys
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

from perception.config import TRAIN_HELP, Config, add_train_arguments, load_config
from perception.data.loader import TensorDataset, collate, targets_to
from perception.data.mixture import open_training_data
from perception.data.transforms import training_transform
from perception.evaluate.periodic import PeriodicEval, parse_eval_sets
from perception.losses import task_losses
from perception.machine import hardware
from perception.model import WEIGHTS, MultiTaskNet, load_weights, save_weights
from perception.weighting import TaskWeighting, build_weighting, per_task, shared_parameters

__all__ = ["CHECKPOINT", "WEIGHTS", "load_weights", "save_weights", "train", "train_command"]

CHECKPOINT = "last.pt"


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
    """The training samples: ``data.dataset`` alone, or the mixture of ``data.sources``, through the
    training transform (every source ends at the model's input size)."""
    return TensorDataset(open_training_data(config), training_transform(config), seed=config.train.seed)


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))


def bf16_is_native(device: torch.device, warn: bool = True) -> bool:
    """Whether bfloat16 autocast runs in hardware here. A CPU without AVX512-BF16/AMX emulates it: on
    a 2-core AVX2 EPYC one step took 13x as long as in fp32 (5.9 s against 0.45 s), so it is refused."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if not native and warn:
        print(f"train.amp: this CPU ({hardware()}) has no native bfloat16; training in float32")
    return native


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on norms and biases."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def infinite(loader: DataLoader, dataset: TensorDataset, first_epoch: int = 0) -> Iterator:
    """Batches for ever, epoch after epoch from ``first_epoch`` (a resumed run's, so its augmentation
    draws go on from where it stopped instead of repeating the first epoch's)."""
    epoch = first_epoch
    while True:
        dataset.epoch = epoch
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def start_processes() -> tuple[torch.device, int, int]:
    """This process's device, rank and world size; joins the process group when ``torchrun`` started
    more than one process."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if torch.cuda.is_available() else None
    device = device or torch.device("cpu")
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    return device, rank, world


def resume_from(ckpt_path: Path, device: torch.device, model: nn.Module, ema: ModelEmaV3,
                optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                weighting: TaskWeighting) -> tuple[int, float]:  # fmt: skip
    """Load a checkpoint's state into the run's objects; returns its step and training seconds so far."""
    ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
    model.load_state_dict(ckpt["model"])
    ema.module.load_state_dict(ckpt["ema"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if "weighting" in ckpt:
        weighting.load_state_dict(ckpt["weighting"])
    torch.set_rng_state(ckpt["rng"])
    return ckpt["step"], ckpt.get("elapsed_s", 0.0)


def training_loader(dataset: TensorDataset, config: Config, rank: int, world: int, step: int) -> DataLoader:
    """Batches of ``dataset`` for this process: its share of each batch, its part of the data when
    distributed, a new order for a resumed run. Workers are not persistent: each epoch starts
    them afresh from the dataset as ``infinite`` left it, so they see its new ``epoch`` (and new
    augmentation draws); persistent ones would keep the first epoch's copy for ever."""
    tc = config.train
    sampler = DistributedSampler(dataset, world, rank, shuffle=True, seed=tc.seed) if world > 1 else None
    return DataLoader(
        dataset,
        batch_size=tc.batch_size // world,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=config.data.workers,
        collate_fn=collate,
        drop_last=True,
        generator=torch.Generator().manual_seed(tc.seed + step),  # a resumed run sees new orders
    )


def write_checkpoint(out: Path, state: dict, ema_model: nn.Module, config: Config) -> None:
    """``last.pt`` (replaced atomically: never a half-written checkpoint), the EMA weights and the curves."""
    torch.save(state, out / (CHECKPOINT + ".tmp"))
    os.replace(out / (CHECKPOINT + ".tmp"), out / CHECKPOINT)
    save_weights(ema_model, config, out)
    plot_curves(out)


def train(config: Config, out: Path, resume: bool = False, init: Path | None = None, dataset=None) -> Path:
    """Train and return the run folder. ``dataset`` (a TensorDataset) overrides the config's data."""
    device, rank, world = start_processes()
    distributed = world > 1
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
    amp_dtype = torch.bfloat16 if tc.amp and bf16_is_native(device, main_process) else None
    step = 0
    elapsed_before = 0.0  # training seconds of earlier sessions of this run
    ckpt_path = out / CHECKPOINT
    if resume and ckpt_path.exists():
        step, elapsed_before = resume_from(ckpt_path, device, model, ema, optimizer, scheduler, weighting)
        if main_process:
            print(f"resumed {ckpt_path} at step {step}")
    elif main_process:
        (out / "metrics.csv").unlink(missing_ok=True)

    dataset = dataset or build_datasets(config)
    loader = training_loader(dataset, config, rank, world, step)
    # a rank's share of a batch may carry no label of a task (a mixture's CamVid frames have no boxes): that
    # head then takes no part in its loss, and DDP must be told to expect unused parameters
    ddp_model = DistributedDataParallel(model, find_unused_parameters=True) if distributed else model

    writer = None
    if main_process:
        from torch.utils.tensorboard import SummaryWriter  # optional heavy (tensorboard): the main process only

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
        write_checkpoint(out, state, ema.module, config)

    model.train()
    batches = infinite(loader, dataset, first_epoch=step // max(len(loader), 1))
    progress = tqdm(total=tc.steps, initial=step, disable=not main_process, desc="train", dynamic_ncols=True)
    held_out = PeriodicEval(tc.eval_every, parse_eval_sets(tc.eval_sets), config.model.input_height,
                            config.model.input_width)  # fmt: skip
    last_save = time.monotonic()
    started = time.monotonic()
    while step < tc.steps:
        images, targets = next(batches)
        images, targets = images.to(device, non_blocking=True), targets_to(targets, device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            outputs = ddp_model(model.normalise(images).contiguous(memory_format=torch.channels_last))
        losses = task_losses(outputs, targets, config.model.canonical_focal_px, tc.seg_hard_pixels)
        by_task = per_task(losses)
        optimizer.zero_grad(set_to_none=True)
        weights = weighting.backward(by_task, shared, step, last_shared=last_shared)  # fills .grad
        total = sum(weights[t] * v.detach() for t, v in by_task.items())
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimizer.step()
        scheduler.step()
        ema.update(model, step=step)
        step += 1

        evaluated: dict[str, float] = {}
        if main_process and held_out.due(step):  # the EMA weights on a few dozen held-out frames per set
            eval_started = time.monotonic()
            evaluated = held_out(ema.module)
            if evaluated:
                evaluated["eval/seconds"] = time.monotonic() - eval_started
                progress.write(f"step {step} held-out: " + ", ".join(f"{k[5:]} {v:.3f}" for k, v in evaluated.items()))
        if main_process and (step % tc.log_every == 0 or step == tc.steps or evaluated):
            row = {"step": step, "loss": float(total), **{k: v.item() for k, v in losses.items()}}
            row |= evaluated
            row |= {f"w_{t}": w for t, w in weights.items()}
            row |= {
                "lr": scheduler.get_last_lr()[0],
                "grad_norm": grad_norm.item(),
                "time_s": time.monotonic() - started,
                "elapsed_s": elapsed_before + time.monotonic() - started,
            }
            log_row(out, writer, row)
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


def log_row(out: Path, writer, row: dict) -> None:
    """One logged step: every value but the step to TensorBoard (held-out figures under their own
    ``eval/<set>/<metric>`` tags), the row to metrics.csv."""
    for key, value in row.items():
        if key != "step":
            writer.add_scalar(key if key.startswith("eval/") else f"train/{key}", value, row["step"])
    append_metrics(out / "metrics.csv", row)


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
    import matplotlib  # optional heavy (plotting): only when there are curves to draw

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in rows[0] if k not in ("step", "time_s", "elapsed_s")]
    fig, axes = plt.subplots(1, len(keys), figsize=(3 * len(keys), 2.6), squeeze=False)
    steps = [int(r["step"]) for r in rows]
    for ax, key in zip(axes[0], keys, strict=True):
        periodic = key.startswith("eval/")  # logged every eval_every steps only: the other rows are empty
        logged = [(step, float(r[key])) for step, r in zip(steps, rows, strict=True) if r[key]]
        ax.plot(*zip(*logged, strict=True), marker="." if periodic else None)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        if key not in ("lr",) and not periodic:
            ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """``torchrun --nproc_per_node=N -m perception.train CONFIG``: the arguments of ``perception train``."""
    parser = argparse.ArgumentParser(prog="perception.train", description=TRAIN_HELP)
    add_train_arguments(parser)
    return train_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
