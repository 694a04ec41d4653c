"""The cores the service sizes its threads by: the CPU affinity, capped by a container's CPU limit
(``os.cpu_count()`` counts the host's cores in both cases)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from perception import runtime


@pytest.fixture
def eight_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)


def cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "cores"),
    [
        ({}, 8),  # no cgroup to read: the affinity
        ({"cpu.max": "max 100000\n"}, 8),  # cgroup v2, no limit
        ({"cpu.max": "150000 100000\n"}, 2),  # a 1.5-CPU limit: two threads, rounded up
        ({"cpu.max": "2000000 100000\n"}, 8),  # a limit above the affinity: the affinity
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, 8),  # v1, no limit
        ({"cpu.max": "garbage\n"}, 8),
    ],
)
def test_usable_cores_is_the_affinity_capped_by_the_cpu_limit(eight_cores, tmp_path, files, cores):
    assert runtime.usable_cores(cgroup(tmp_path, files)) == cores


def test_a_process_pinned_to_one_core_gets_one_thread(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(runtime, "CGROUP", tmp_path)
    assert runtime.session_options(0).intra_op_num_threads == 1
    assert runtime.session_options(3).intra_op_num_threads == 3  # a set thread count wins


def test_under_a_container_cpu_limit_the_service_sizes_its_pools_by_the_limit(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    limited = cgroup(tmp_path, {"cpu.max": "200000 100000\n"})
    assert runtime.usable_cores(limited) == 2
    monkeypatch.setattr(runtime, "CGROUP", limited)
    assert runtime.session_options().intra_op_num_threads == 2
