"""The training entry point: TorchTitan's ``main()`` with ``GPATrainer``.

Works unchanged with ``torchrun --nproc_per_node=N -m gpa_titan.train ...`` on CUDA (NCCL)
and on CPU (gloo). A single process without torchrun gets a one-rank environment.
"""

from __future__ import annotations

import os
import socket


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single_process_defaults() -> None:
    if "RANK" not in os.environ:  # plain `python -m gpa_titan.train`
        os.environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"})
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))


def main() -> None:
    _single_process_defaults()
    from .cpu_compat import apply_cpu_compat

    apply_cpu_compat()  # before TorchTitan binds the device for the Trainer
    from torchtitan.train import main as torchtitan_main

    from . import spec  # noqa: F401  (registers the "gpa_llama3" TrainSpec)
    from .trainer import GPATrainer

    torchtitan_main(GPATrainer)
