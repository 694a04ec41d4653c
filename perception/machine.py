"""What this machine is, in the words every report uses (model cards, benchmarks, training runs)."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path


def hardware() -> str:
    """This machine's cores, CPU model and the SIMD extensions that decide CPU inference speed."""
    cpu, flags = platform.processor() or platform.machine(), ""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    if model := re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE):
        cpu = model.group(1).strip()
    if found := re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE):
        wanted = ("avx2", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_fp16")
        have = found.group(1).split()
        flags = " (" + " ".join(f for f in wanted if f in have) + ")"
    return f"{os.cpu_count()} cores of {cpu}{flags}"
