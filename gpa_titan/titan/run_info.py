"""Makes every run's dump folder describe itself: resolved config, launches, git revision, versions."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from typing import Any

from gpa_titan.paths import REPO_ROOT
from gpa_titan.runs import RUN_INFO, read_run_info

PACKAGES = ("torch", "torchtitan", "gpa_titan", "triton", "datasets", "tokenizers", "wandb", "tensorboard")


def git_revision(repo_dir: str) -> dict[str, str | bool | None]:
    def git(*args):
        try:
            return subprocess.run(
                ["git", "-C", repo_dir, *args], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD") or None
    return {"commit": commit, "dirty": bool(git("status", "--porcelain")) if commit else None}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def write_run_info(dump_folder: str, config: dict, differences: list[tuple[str, Any, Any]] = ()) -> str:
    """Write ``run_info.json`` (the run's resolved config and its history of launches: time,
    command, host, ranks, Slurm job, git revision, package versions, and any keys a launch
    changed) and ``config.json`` (the resolved config alone) into ``dump_folder``; return the
    first path. A launch is appended to the history, never written over it."""
    os.makedirs(dump_folder, exist_ok=True)
    path = os.path.join(dump_folder, RUN_INFO)
    launch = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
        "host": socket.gethostname(),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "git": git_revision(REPO_ROOT),
        "versions": versions(),
        "changed": [{"key": k, "from": a, "to": b} for k, a, b in differences],
    }
    launches = (read_run_info(dump_folder) or {}).get("launches", [])
    info = {"config": config, "launches": [*launches, launch]}
    with open(path + ".tmp", "w") as f:
        json.dump(info, f, indent=2, default=str)
    os.replace(path + ".tmp", path)  # a reader never sees half a file
    with open(os.path.join(dump_folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2, default=str)
    return path
