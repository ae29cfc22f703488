"""Makes every run's dump folder describe itself: resolved config, git revision, versions."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata

from gpa_titan.paths import REPO_ROOT

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


def write_run_info(job_config, dump_folder: str) -> str:
    """Write ``run_info.json`` (resolved config, git, versions, host, command) and
    ``config.json`` (resolved config alone) into ``dump_folder``; return the first path."""
    os.makedirs(dump_folder, exist_ok=True)
    config = job_config.to_dict()
    info = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
        "host": socket.gethostname(),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "git": git_revision(REPO_ROOT),
        "versions": versions(),
        "config": config,
    }
    path = os.path.join(dump_folder, "run_info.json")
    with open(path, "w") as f:
        json.dump(info, f, indent=2, default=str)
    with open(os.path.join(dump_folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2, default=str)
    return path
