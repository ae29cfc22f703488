"""The training entry point: TorchTitan's ``main()`` with ``GPATrainer``.

Works unchanged with ``torchrun --nproc_per_node=N -m gpa_titan.train ...`` on CUDA (NCCL)
and on CPU (gloo). A single process without torchrun gets a one-rank environment.

A settings mistake ends the run with one line, ``error: <message>`` on stderr, and exit code 2
(3 for a diverged run, 4 for a preempted run that had nothing to save), instead of a
traceback: the config file is checked before TorchTitan reads it (``settings_check``), and
the start-up checks' own errors (``short_errors``) are caught around the trainer.

On several ranks the message is printed once: every failing rank posts it to the job's
rendezvous store; rank 0 prints its own, and another rank prints its message (as
``error: [rank N] ...``) only when rank 0 has not posted the same one within a few
seconds, so an error that only rank 1 meets (a shard or validation split of its own) is
never lost, and one that every rank meets is not repeated. Under ``torchrun`` the failing
rank's exit ends the other ranks; the launcher's failure summary repeats the one line
(written to its error file) instead of a traceback.
"""

from __future__ import annotations

import os
import socket
import sys
import traceback

from gpa_titan.runs import EXIT_DIVERGED, EXIT_PEER_FAILED, EXIT_PREEMPTED_UNSAVED, EXIT_SETTINGS

from .settings_check import SettingsError, check_settings

# how a collective fails when another rank has exited (gloo; NCCL ranks are ended by torchrun first)
PEER_LOST = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")
TORCHTITAN_CONFIG = os.path.join("torchtitan", "config", "job_config.py")  # its dataclasses assert on some values
AGREE_SECONDS = 10  # how long another rank waits for rank 0 to post the same error before printing its own


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


def _rendezvous_store():
    """The job's key-value store when several ranks run under an initialised process group."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return None
    try:
        return dist.distributed_c10d._get_default_store()
    except (RuntimeError, ValueError):
        return None


def _error_key(rank: int) -> str:
    return f"gpa_titan/error/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/{rank}"


def _rank0_posted(store, message: str) -> bool:
    """Whether rank 0 posts the same message within ``AGREE_SECONDS``."""
    from datetime import timedelta

    try:
        store.wait([_error_key(0)], timedelta(seconds=AGREE_SECONDS))
        return store.get(_error_key(0)).decode() == message
    except Exception:  # timed out, or the store is gone (rank 0 ended the job)
        return False


def _write_launcher_error_file(line: str) -> None:
    """Give torchrun's failure summary the one line instead of a traceback (TorchTitan's
    ``@record`` wrote the traceback there)."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    import json
    import time

    record = {"message": {"message": line, "extraInfo": {"py_callstack": line, "timestamp": str(int(time.time()))}}}
    try:
        with open(path, "w") as f:
            json.dump(record, f)
    except OSError:
        pass


def fail(error: BaseException, code: int = EXIT_SETTINGS) -> None:
    """Print ``error: <message>`` once for the job (see the module doc) and exit with ``code``."""
    rank = int(os.environ.get("RANK", "0"))
    message = one_line(error)
    store = _rendezvous_store()
    line = f"error: {message}"
    if rank == 0:
        if store is not None:
            try:
                store.set(_error_key(0), message)
            except Exception:
                pass
        print(line, file=sys.stderr, flush=True)
    elif store is not None and not _rank0_posted(store, message):
        line = f"error: [rank {rank}] {message}"
        print(line, file=sys.stderr, flush=True)
    # without a store (before the process group exists) every rank meets the same settings error
    _write_launcher_error_file(line)
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
    from .trainer import GPATrainer, PreemptedUnsaved

    try:
        torchtitan_main(GPATrainer)
    except short_errors() as e:
        fail(e)
    except DivergenceError as e:
        fail(e, EXIT_DIVERGED)
    except PreemptedUnsaved as e:
        fail(e, EXIT_PREEMPTED_UNSAVED)
    except (AssertionError, ValueError) as e:  # raised by TorchTitan's config dataclasses while parsing
        config_check = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.endswith(TORCHTITAN_CONFIG)]
        if not config_check:
            raise
        fail(SettingsError(
            f"TorchTitan's own config check refused the settings: {e or 'an assertion without a message'} "
            f"(torchtitan/config/job_config.py, line {config_check[-1].lineno}); fix that setting in the config "
            "file or on the command line"
        ))
    except Exception as e:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and any(marker in str(e) for marker in PEER_LOST):
            _write_launcher_error_file("stopped: another rank failed first (see its error: line or traceback)")
            raise SystemExit(EXIT_PEER_FAILED) from None
        raise
