"""TrainSpec builders for the tokenizer, the training dataloader and the fixed validation set.

Datasets (``[training] dataset`` / ``[validation] dataset``):

- ``"c4"``: C4 English. With ``dataset_path`` set, local shards in C4's on-disk format
  under that folder (for compute nodes without internet); without it, streamed from
  the Hugging Face hub (``allenai/c4``, ``en``).
- ``"demo"``: the offline demo corpus (``gpa_titan.data.demo``), generated into
  ``dataset_path`` on first use.
"""

from __future__ import annotations

import os
from dataclasses import asdict

import torch
from torchtitan.components.dataloader import ParallelAwareDataloader
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.tools.logging import logger

from gpa_titan.data.demo import build_demo_assets
from gpa_titan.data.documents import DataConfigError, HFStreamingDocuments, LocalC4Documents, find_shards
from gpa_titan.data.packing import PackedTokenDataset

from .tokenizers import load_tokenizer

DATASETS = ("c4", "demo")
DEFAULT_DEMO_PATH = "assets/demo"


def _check_dataset(name: str, section: str) -> None:
    if name not in DATASETS:
        raise DataConfigError(f"[{section}] dataset = {name!r} is not known; choose one of {list(DATASETS)}")


def _document_factory(job_config, section: str, split: str, infinite: bool):
    cfg = getattr(job_config, section)
    _check_dataset(cfg.dataset, section)
    path = cfg.dataset_path
    if cfg.dataset == "demo":
        path = build_demo_assets(path or DEFAULT_DEMO_PATH, documents=job_config.data.demo_documents)
    if path:
        files = find_shards(path, split, key=f"[{section}] dataset_path")
        return lambda reader, readers: LocalC4Documents(files, reader, readers, infinite)
    HFStreamingDocuments(split, 0, 1, infinite)  # fail at start-up, not at the first batch
    return lambda reader, readers: HFStreamingDocuments(split, reader, readers, infinite)


def build_tokenizer(job_config) -> BaseTokenizer:
    """TorchTitan's HuggingFaceTokenizer from ``[model] hf_assets_path``.

    For the demo dataset the tokenizer is generated there if missing. Other tokenizer
    formats are handled by ``gpa_titan.titan.tokenizers``.
    """
    path = job_config.model.hf_assets_path
    if job_config.training.dataset == "demo" and not os.path.exists(os.path.join(path, "tokenizer.json")):
        build_demo_assets(path, documents=job_config.data.demo_documents)
    return load_tokenizer(path)


class ReshardableDataloader(ParallelAwareDataloader):
    """TorchTitan's dataloader, but a checkpoint written by a different number of
    data-parallel ranks restarts the data from the beginning (with a warning that says
    so) instead of failing: the split of documents over ranks depends on their number."""

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict and state_dict.get("world_size") not in (None, self.dp_world_size):
            logger.warning(
                f"The checkpoint's data position was written by {state_dict['world_size']} data-parallel "
                f"ranks and this run has {self.dp_world_size}: the data restarts from the beginning "
                "(model, optimizer and schedule are restored exactly)."
            )
            return
        super().load_state_dict(state_dict)


def build_dataloader(dp_world_size: int, dp_rank: int, tokenizer: BaseTokenizer, job_config, infinite: bool = True):
    """The training dataloader: packed sequences, sharded by data-parallel rank."""
    make_source = _document_factory(job_config, "training", "train", infinite)
    dataset = PackedTokenDataset(make_source, tokenizer, job_config.training.seq_len, dp_rank, dp_world_size)
    return ReshardableDataloader(
        dataset,
        dp_rank=dp_rank,
        dp_world_size=dp_world_size,
        batch_size=job_config.training.local_batch_size,
        **asdict(job_config.training.dataloader),
    )


def build_validation_batches(
    dp_world_size: int, dp_rank: int, tokenizer: BaseTokenizer, job_config
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The fixed validation set of this rank: ``[validation] steps`` batches of
    ``local_batch_size`` sequences, read once from the start of the validation split.

    The same tokens are used at every evaluation, by every optimizer, and after a
    resume; every rank holds the same number of batches. Too little validation text for
    the requested size is an error (nothing is silently shortened).
    """
    cfg = job_config.validation
    make_source = _document_factory(job_config, "validation", "validation", infinite=False)
    dataset = PackedTokenDataset(make_source, tokenizer, cfg.seq_len, dp_rank, dp_world_size)
    needed = cfg.steps * cfg.local_batch_size
    inputs, labels = [], []
    for sample, label in dataset:
        inputs.append(sample["input"])
        labels.append(label)
        if len(inputs) == needed:
            break
    if len(inputs) < needed:
        raise DataConfigError(
            f"The validation split has only {len(inputs)} sequences of {cfg.seq_len} tokens for rank "
            f"{dp_rank} of {dp_world_size}, but [validation] steps = {cfg.steps} with local_batch_size = "
            f"{cfg.local_batch_size} needs {needed}. Lower [validation] steps or local_batch_size."
        )
    logger.info(f"Fixed validation set: {cfg.steps} batches x {cfg.local_batch_size} x {cfg.seq_len} tokens per rank")
    bs = cfg.local_batch_size
    return [(torch.stack(inputs[i : i + bs]), torch.stack(labels[i : i + bs])) for i in range(0, needed, bs)]
