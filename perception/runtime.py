"""ONNX Runtime sessions made the one way: the options the service serves with, which every timing
on the training side (benchmarks, precision variants, the model card) uses too.

Torch-free: the service imports this module.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import onnxruntime as ort

CGROUP = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path | None = None) -> float | None:
    """The CPUs this process's cgroup may use (a container's CPU limit: cgroup v2 ``cpu.max``, or v1
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``); None without a limit or a cgroup to read."""
    root = CGROUP if root is None else root
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota, period = (int((root / "cpu" / name).read_text()) for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us"))
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def allowed_cores() -> tuple[int, ...]:
    """The cores this process may run on (all of them where affinity cannot be read)."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def usable_cores(root: Path | None = None) -> int:
    """The cores this process may keep busy: those its CPU affinity allows (``taskset``, a cpuset),
    at most its cgroup's CPU limit rounded up. ``os.cpu_count()`` counts the host's cores either way,
    and one thread per host core under a 2-CPU limit on a 64-core node only queues for the quota."""
    cores = len(allowed_cores())
    limit = cgroup_cpu_limit(root)
    return max(1, min(cores, math.ceil(limit)) if limit else cores)


def session_options(intra_op_threads: int = 0) -> ort.SessionOptions:
    """The served session's options, also used wherever a model is timed (bench, variants, card):
    full graph optimisation, ``intra_op_threads`` threads (0: one per usable core, :func:`usable_cores`),
    one inter-op thread."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads or usable_cores()
    options.inter_op_num_threads = 1
    # Idle intra-op threads sleep instead of spinning: spinning took the cores that decode and
    # encode (the frames thread pool) need between runs (benchmarks/results).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def cpu_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    """A CPU session on ``path`` with the service's options."""
    return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
