"""ONNX Runtime sessions made the one way: the options the service serves with, which every timing
on the training side (benchmarks, precision variants, the model card) uses too.

Torch-free: the service imports this module.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort


def session_options(intra_op_threads: int = 0) -> ort.SessionOptions:
    """The served session's options, also used wherever a model is timed (bench, variants, card):
    full graph optimisation, ``intra_op_threads`` threads (0: one per core), one inter-op thread."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads or (os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    # Idle intra-op threads sleep instead of spinning: spinning took the cores that decode and
    # encode (the frames thread pool) need between runs (benchmarks/results).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def cpu_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    """A CPU session on ``path`` with the service's options."""
    return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
