"""Where the data lives and what the benchmark ran on: data root, git commit, machine, package versions."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "benchmarks"
WORK_DIR = BENCH_DIR / "work"
RESULTS_DIR = BENCH_DIR / "results"
EXTRA_PACKAGES = ("lightgbm", "psutil")


class MissingDataError(Exception):
    """A data file the benchmark needs is not there (the message is one line)."""


def data_root() -> Path:
    """``$DEEPMINE_DATA``, else ``../shared/datasets`` relative to the repository root."""
    configured = os.environ.get("DEEPMINE_DATA")
    return Path(configured).expanduser() if configured else REPO_ROOT.parent / "shared" / "datasets"


def require_files(folder: str, names: list[str]) -> list[Path]:
    """The paths of ``names`` in ``$DEEPMINE_DATA/folder``; a one-line error naming the first missing one."""
    root = data_root()
    paths = [root / folder / name for name in names]
    for path in paths:
        if not path.is_file():
            source = "DEEPMINE_DATA" if os.environ.get("DEEPMINE_DATA") else "DEEPMINE_DATA unset, default"
            raise MissingDataError(
                f"data file '{path}' is missing ({source} = {root}); set DEEPMINE_DATA to the folder "
                f"that holds '{folder}/'"
            )
    return paths


def git_commit() -> dict[str, object]:
    """HEAD's commit and whether the working tree differs from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "HEAD") or "unknown"
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def source_digest() -> str:
    """A hash of the package's source files, to notice code changing while a benchmark runs."""
    digest = hashlib.sha256()
    for path in sorted((REPO_ROOT / "src").rglob("*.py")):
        digest.update(str(path.relative_to(REPO_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, object]:
    """Cores (logical, and those this process may use), the CPU model, memory and the OS."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info: dict[str, object] = {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu_model": cpu_model(),
        "arch": platform.machine(),
        "os": platform.platform(terse=True),
    }
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return info


def versions() -> dict[str, str]:
    """deepmine's own list (deepmine.versions.package_versions) plus the peers' packages."""
    from deepmine.versions import package_versions

    return package_versions(tuple(EXTRA_PACKAGES))
