"""Data-parallel training through torchrun: two CPU processes on the gloo backend."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO


@pytest.mark.slow
def test_torchrun_two_processes_train_one_model(tmp_path):
    out = tmp_path / "ddp"
    overrides = [
        "model.input_height=96", "model.input_width=160", "train.steps=6", "train.batch_size=4",
        "train.warmup_steps=2", "train.log_every=2", "data.workers=0", "data.train_length=64",
    ]  # fmt: skip
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "perception.train", str(REPO / "configs" / "study.toml"), "--out", str(out),
        *[arg for o in overrides for arg in ("--set", o)],
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["step"] == 6
    assert (out / "metrics.csv").read_text().count("\n") == 4  # header + steps 2, 4, 6: one writer only
