"""From ``Sample`` sources to batches of tensors for training and evaluation: ``collate`` gives
uint8 images and ``Targets``, the collated batch's labels that the losses read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from perception.classes import IGNORE_INDEX
from perception.data.sample import Sample

Transform = Callable[[Sample, np.random.Generator], Sample]


@dataclass
class Targets:
    """A collated batch's labels. Lists hold one entry per image; flags say who has what."""

    boxes: list[Tensor]  # [N_i, 4] model pixels
    labels: list[Tensor]  # [N_i]
    has_boxes: Tensor  # bool [B]
    semantic: Tensor  # long [B, H, W], IGNORE_INDEX where unlabelled
    has_semantic: Tensor  # bool [B]
    depth: Tensor  # float [B, H, W] metres, 0 where invalid
    has_depth: Tensor  # bool [B]
    focal_px: Tensor  # float [B] at model resolution


class TensorDataset(Dataset):
    """Applies a transform to each sample (seeded by epoch and index, so runs repeat) and turns it
    into tensors. All samples must come out of the transform at the same size."""

    def __init__(self, source: Sequence[Sample], transform: Transform, seed: int = 0):
        self.source = source
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        return sample_to_tensors(self.transform(self.source[index], rng))


def sample_to_tensors(sample: Sample) -> dict:
    h, w = sample.size
    return {
        "image": torch.from_numpy(np.ascontiguousarray(sample.image.transpose(2, 0, 1))),
        "focal_px": torch.tensor(float(sample.camera.fx)),
        # a source without boxes trains no detection on this sample (has_boxes False), never "no objects"
        "boxes": torch.from_numpy(np.asarray(sample.boxes if sample.has_boxes else [], np.float32).reshape(-1, 4)),
        "labels": torch.from_numpy(np.asarray(sample.labels if sample.has_boxes else [], np.int64)),
        "has_boxes": sample.has_boxes,
        "semantic": torch.from_numpy(
            sample.semantic.astype(np.int64) if sample.has_semantic else np.full((h, w), IGNORE_INDEX, np.int64)
        ),
        "has_semantic": sample.has_semantic,
        "depth": torch.from_numpy(
            sample.depth.astype(np.float32) if sample.has_depth else np.zeros((h, w), np.float32)
        ),
        "has_depth": sample.has_depth,
    }


def collate(items: list[dict]) -> tuple[torch.Tensor, Targets]:
    """Stack a list of ``sample_to_tensors`` dicts into (uint8 images [B, 3, H, W], Targets)."""
    images = torch.stack([it["image"] for it in items])
    targets = Targets(
        boxes=[it["boxes"] for it in items],
        labels=[it["labels"] for it in items],
        has_boxes=torch.tensor([it["has_boxes"] for it in items]),
        semantic=torch.stack([it["semantic"] for it in items]),
        has_semantic=torch.tensor([it["has_semantic"] for it in items]),
        depth=torch.stack([it["depth"] for it in items]),
        has_depth=torch.tensor([it["has_depth"] for it in items]),
        focal_px=torch.stack([it["focal_px"] for it in items]),
    )
    return images, targets


def targets_to(targets: Targets, device: torch.device) -> Targets:
    return Targets(
        boxes=[b.to(device) for b in targets.boxes],
        labels=[lab.to(device) for lab in targets.labels],
        has_boxes=targets.has_boxes.to(device),
        semantic=targets.semantic.to(device),
        has_semantic=targets.has_semantic.to(device),
        depth=targets.depth.to(device),
        has_depth=targets.has_depth.to(device),
        focal_px=targets.focal_px.to(device),
    )
