"""Which cores the server (with the raw in-process model) and the load generator get.

With every process free to run anywhere, the load generator takes turns on the server's cores, so
service ÷ raw model measures the load generator too. Pinned, the server and the raw model share one
set of cores and the load generator runs on others, and the ratio is the service's own overhead.

``--pin auto`` gives the load generator one core (the last one allowed: one asyncio process uses no
more) and the server all the others; ``--pin off`` pins nothing; ``--pin 0-2:3`` names both sets
(``SERVER_CORES:LOAD_CORES``, each a Linux CPU list such as ``0,2,4-7``). Linux only
(``os.sched_setaffinity``); elsewhere ``auto`` pins nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


class PinError(ValueError):
    """A ``--pin`` value that names no valid pair of core sets."""


@dataclass(frozen=True)
class PinPlan:
    server: tuple[int, ...]  # the server and the raw in-process model
    load: tuple[int, ...]  # the load generator

    def describe(self) -> str:
        return f"server and raw model on cores {cpu_list(self.server)}, load generator on {cpu_list(self.load)}"


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """``"0,2,4-6"`` → (0, 2, 4, 5, 6); raises PinError on anything else (empty, negative, a bad range)."""
    cores: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            low, high = int(first), int(last) if dash else int(first)
        except ValueError:
            raise PinError(f"{text!r} is not a CPU list (e.g. 0 or 0,2 or 0-3)") from None
        if low < 0 or high < low:
            raise PinError(f"{text!r}: {part.strip()!r} is not a core number or an increasing range")
        cores.update(range(low, high + 1))
    return tuple(sorted(cores))


def cpu_list(cores: Iterable[int]) -> str:
    """(0, 1, 2, 5) → ``"0-2,5"``."""
    ordered, runs = sorted(set(cores)), []
    for core in ordered:
        if runs and core == runs[-1][1] + 1:
            runs[-1][1] = core
        else:
            runs.append([core, core])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def pin_plan(spec: str, available: Iterable[int]) -> PinPlan | None:
    """The plan ``spec`` (``auto``, ``off`` or ``SERVER_CORES:LOAD_CORES``) asks for on ``available``
    cores; None when nothing is pinned (``off``, or ``auto`` with fewer than two cores). Raises
    PinError for a spec that cannot be followed here."""
    cores = tuple(sorted(set(available)))
    spec = spec.strip().lower()
    if spec == "off":
        return None
    if spec == "auto":
        return PinPlan(cores[:-1], cores[-1:]) if len(cores) >= 2 else None
    server_text, colon, load_text = spec.partition(":")
    if not colon or not server_text.strip() or not load_text.strip():
        raise PinError(f"--pin {spec!r}: give auto, off or SERVER_CORES:LOAD_CORES (e.g. 0:1 or 0-6:7)")
    server, load = parse_cpu_list(server_text), parse_cpu_list(load_text)
    if overlap := set(server) & set(load):
        raise PinError(f"--pin {spec!r}: the server's and the load generator's cores overlap ({cpu_list(overlap)})")
    if missing := (set(server) | set(load)) - set(cores):
        raise PinError(f"--pin {spec!r}: cores {cpu_list(missing)} are not available here (this process may "
                       f"run on {cpu_list(cores)})")  # fmt: skip
    return PinPlan(server, load)


@contextlib.contextmanager
def pinned(cores: Iterable[int]) -> Iterator[None]:
    """Run the calling thread, and every thread it starts meanwhile (ONNX Runtime's intra-op pool is
    made with the session), on ``cores``; the thread's own affinity is restored afterwards."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cores))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def pin_process(pid: int, cores: Iterable[int]) -> None:
    """Every thread of process ``pid`` onto ``cores`` (threads it starts later inherit it)."""
    wanted = set(cores)
    for tid in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid.name), wanted)


def process_cores(pid: int) -> tuple[int, ...]:
    """The cores any thread of process ``pid`` may run on (the union over its threads)."""
    cores: set[int] = set()
    for tid in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            cores |= os.sched_getaffinity(int(tid.name))
    return tuple(sorted(cores))
