"""Run a command as a child process and measure its wall seconds and peak RSS (the child's own rusage)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class CommandFailed(Exception):
    """A measured command exited non-zero (the message carries its last stderr line)."""


@dataclass
class Measured:
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mb: float

    def json(self) -> dict[str, Any]:
        """The single JSON object the command printed on stdout."""
        if self.returncode != 0:
            tail = (self.stderr.strip().splitlines() or ["(no stderr)"])[-1]
            raise CommandFailed(f"`{' '.join(self.command)}` exited {self.returncode}: {tail}")
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as err:
            raise CommandFailed(f"`{' '.join(self.command)}` did not print one JSON object: {err}") from err


def run_measured(command: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run ``command`` to completion; CPU seconds and peak RSS come from ``os.wait4`` for that child alone."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(command, proc.returncode, stdout, stderr, round(wall, 3), round(cpu, 3), rss_mb(usage.ru_maxrss))


def rss_mb(maxrss: int) -> float:
    """``ru_maxrss`` (KiB on Linux, bytes on macOS) in MiB."""
    return round(maxrss / (2**20 if sys.platform == "darwin" else 2**10), 1)


def self_peak_rss_mb() -> float:
    """Peak RSS of this process so far."""
    return rss_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def deepmine_cli() -> list[str]:
    """The installed ``deepmine`` console script beside this interpreter, else ``python -m deepmine``."""
    script = Path(sys.executable).with_name("deepmine")
    return [str(script)] if script.exists() else [sys.executable, "-m", "deepmine"]


def process(measured: Measured) -> dict[str, Any]:
    """A measured child process as a JSON-ready record."""
    return {
        "wall_seconds": measured.wall_seconds,
        "cpu_seconds": measured.cpu_seconds,
        "peak_rss_mb": measured.peak_rss_mb,
        "command": " ".join(measured.command),
    }
