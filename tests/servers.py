"""The real service in a subprocess, for tests over loopback, and what they read from it (metrics,
/proc). httpx only: runs on the serving install (`pip install .[serve,dev]`), no aiohttp, no torch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class RunningServer:
    process: subprocess.Popen
    url: str
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env_overrides: dict[str, str], log: Path, timeout_s: float = 90.0) -> RunningServer:
    """``python -m service`` on a free loopback port (output to ``log``); returns once /readyz is 200."""
    port = free_port()
    env = {**os.environ, "PERCEPTION_HOST": "127.0.0.1", "PERCEPTION_PORT": str(port), **env_overrides}
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as handle:
        process = subprocess.Popen([sys.executable, "-m", "service"], env=env, stdout=handle, stderr=subprocess.STDOUT)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return RunningServer(process, url, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    process.wait()
    raise RuntimeError(f"the service was not ready in {timeout_s} s: {log.read_text()[-3000:]}")


def stop_server(server: RunningServer) -> int:
    """SIGTERM, then SIGKILL after 30 s; the exit code (a server already stopped just reports its own)."""
    server.process.terminate()
    try:
        return server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        return server.process.wait()


def metric(url: str, name: str, **labels) -> float:
    """A sample's value from /metrics (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + ("{" + want + "}" if want else " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def proc_status(pid: int) -> dict[str, int]:
    """RSS (kB) and thread count of a process, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            values[key] = int(rest.split()[0])
    return values
