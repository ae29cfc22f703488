"""Weights & Biases that never blocks: offline mode when the service cannot be reached."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from torchtitan.tools.logging import logger


def wandb_reachable(timeout: float = 2.0) -> bool:
    url = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def configure_wandb(job_config) -> None:
    """If W&B logging is on and ``WANDB_MODE`` is unset, go offline when the server is
    unreachable (sync later with ``wandb sync``); a user-set ``WANDB_MODE`` always wins."""
    if not job_config.metrics.enable_wandb or os.environ.get("WANDB_MODE"):
        return
    if not wandb_reachable():
        os.environ["WANDB_MODE"] = "offline"
        logger.warning("W&B server unreachable: logging offline (run `wandb sync` later)")
    os.environ.setdefault("WANDB_DIR", job_config.job.dump_folder)
