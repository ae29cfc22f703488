"""The training entry point: TorchTitan's ``main()`` with ``GPATrainer``.

Works unchanged with ``torchrun --nproc_per_node=N -m gpa_titan.train ...`` on CUDA (NCCL)
and on CPU (gloo). A single process without torchrun gets a one-rank environment.

A settings mistake ends the run with one line, ``error: <message>`` on stderr (from rank 0;
every rank exits with code 2), instead of a traceback: the config file is checked before
TorchTitan reads it (``settings_check``), and the start-up checks' own errors
(``SHORT_ERRORS``) are caught around the trainer. A data error met during training (a
corrupt shard) is printed by whichever rank met it, since the others never see it.
"""

from __future__ import annotations

import os
import socket
import sys
import traceback

from .settings_check import SettingsError, check_settings

EXIT_SETTINGS = 2  # like argparse's usage errors
EXIT_DIVERGED = 3  # the divergence guard stopped the run (every rank sees the same values)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single_process_defaults() -> None:
    if "RANK" not in os.environ:  # plain `python -m gpa_titan.train`
        os.environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"})
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))


def short_errors() -> tuple[type[BaseException], ...]:
    """The error types whose message is the whole story (they name the key or file and the fix)."""
    from gpa_titan.data.documents import DataConfigError
    from gpa_titan.optim import HyperparameterError

    from .job_config import ConfigError

    return SettingsError, ConfigError, DataConfigError, HyperparameterError


def one_line(error: BaseException) -> str:
    """The error's message on one line (for an error re-raised from a DataLoader worker, the
    original message without the worker's traceback)."""
    text = str(error)
    if "\nOriginal Traceback" in text:
        last = text.rstrip().splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _during_training(error: BaseException) -> bool:
    """Whether ``error`` came out of ``Trainer.train`` (after start-up), where it may concern
    only this rank's data."""
    train_py = os.path.join("torchtitan", "train.py")
    return any(frame.name == "train" and frame.filename.endswith(train_py)
               for frame in traceback.extract_tb(error.__traceback__))


def fail(error: BaseException, code: int = EXIT_SETTINGS, every_rank_knows: bool = False) -> None:
    """Print ``error: <message>`` (rank 0, or this rank for an error met while training that
    only it may have seen) and exit with ``code``."""
    rank = os.environ.get("RANK", "0")
    if rank == "0":
        print(f"error: {one_line(error)}", file=sys.stderr, flush=True)
    elif _during_training(error) and not every_rank_knows:
        print(f"error: [rank {rank}] {one_line(error)}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def main() -> None:
    _single_process_defaults()
    try:
        check_settings(sys.argv[1:])  # TorchTitan's ConfigManager parses sys.argv[1:] too
    except SettingsError as e:
        fail(e)
    from .cpu_compat import apply_cpu_compat

    apply_cpu_compat()  # before TorchTitan binds the device for the Trainer
    from torchtitan.train import main as torchtitan_main

    from . import spec  # noqa: F401  (registers the "gpa_llama3" TrainSpec)
    from .monitor import DivergenceError
    from .trainer import GPATrainer

    try:
        torchtitan_main(GPATrainer)
    except short_errors() as e:
        fail(e)
    except DivergenceError as e:
        fail(e, EXIT_DIVERGED, every_rank_knows=True)
