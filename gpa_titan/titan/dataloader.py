"""TrainSpec builders for the tokenizer, the training dataloader and the fixed validation set.

Datasets (``[training] dataset`` / ``[validation] dataset``):

- ``"c4"``: C4 English. With ``dataset_path`` set, local shards in C4's on-disk format
  under that folder (for compute nodes without internet); without it, streamed from
  the Hugging Face hub (``allenai/c4``, ``en``).
- ``"demo"``: the offline demo corpus (``gpa_titan.data.demo``), generated into
  ``dataset_path`` on first use: a missing or empty folder, or a demo folder it made; a
  folder holding anything else (real C4 shards) is an error, never written. A ``"c4"``
  folder is only read.

The number of shards found for each split is logged; a training source that cannot give
this rank's readers a first document (shards of blank lines, fewer documents than readers)
is an error at start-up, not a hang at the first batch.
"""

from __future__ import annotations

import os
from dataclasses import asdict

import torch
from torchtitan.components.dataloader import ParallelAwareDataloader
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.tools.logging import logger

from gpa_titan.data.demo import build_demo_assets, demo_folder_state
from gpa_titan.data.documents import (
    SPLIT_PATTERNS,
    DataConfigError,
    HFStreamingDocuments,
    LocalC4Documents,
    find_shards,
)
from gpa_titan.data.packing import PackedTokenDataset

from .tokenizers import load_tokenizer

DATASETS = ("c4", "demo")
DEFAULT_DEMO_PATH = "assets/demo"


def _check_dataset(name: str, section: str) -> None:
    if name not in DATASETS:
        raise DataConfigError(f"[{section}] dataset = {name!r} is not known; choose one of {list(DATASETS)}")


def _document_factory(job_config, section: str, split: str, infinite: bool):
    """(make_source(reader, readers, infinite=infinite), whether the sources read local shards)."""
    cfg = getattr(job_config, section)
    _check_dataset(cfg.dataset, section)
    path, key = cfg.dataset_path, f"[{section}] dataset_path"
    if cfg.dataset == "demo":
        path = build_demo_assets(path or DEFAULT_DEMO_PATH, documents=job_config.data.demo_documents, key=key)
    if path:
        files = find_shards(path, split, key=key)
        logger.info(f"{key} = {path!r}: {len(files)} {split} shard{'s' * (len(files) != 1)} "
                    f"({SPLIT_PATTERNS[split]})")

        def make_local(reader: int, readers: int, infinite: bool = infinite) -> LocalC4Documents:
            return LocalC4Documents(files, reader, readers, infinite, key=key)

        return make_local, True
    HFStreamingDocuments(split, 0, 1, infinite)  # fail at start-up, not at the first batch
    return (lambda reader, readers: HFStreamingDocuments(split, reader, readers, infinite)), False


def probe_first_documents(make_source, dp_rank: int, dp_world_size: int, num_workers: int) -> None:
    """Read, from a fresh source that stops after one pass, the first document of each of this
    rank's readers (one per dataloader worker): real C4 reads one line each. A source that has
    none raises its ``DataConfigError`` here, at start-up, rather than at the first batch."""
    workers = max(1, num_workers)
    for worker in range(workers):
        documents = iter(make_source(dp_rank * workers + worker, dp_world_size * workers, infinite=False))
        next(documents, None)
        documents.close()


def _user_tokenizer(path: str) -> bool:
    """Whether ``path`` is a tokenizer file, or a folder of other files holding one (read, never written)."""
    if os.path.isfile(path):
        return True
    names = ("tokenizer.json", "tokenizer.model", os.path.join("original", "tokenizer.model"))
    return demo_folder_state(path) == "other" and any(os.path.exists(os.path.join(path, n)) for n in names)


def build_tokenizer(job_config) -> BaseTokenizer:
    """TorchTitan's HuggingFaceTokenizer from ``[model] hf_assets_path``.

    For the demo dataset the demo tokenizer is generated there if missing (into a missing or
    empty folder or a demo folder only; a folder already holding a tokenizer of its own is
    just read). Other tokenizer formats are handled by ``gpa_titan.titan.tokenizers``.
    """
    path = job_config.model.hf_assets_path
    if job_config.training.dataset == "demo" and not _user_tokenizer(path):
        build_demo_assets(path, documents=job_config.data.demo_documents, key="[model] hf_assets_path")
    return load_tokenizer(path)


def build_dataloader(dp_world_size: int, dp_rank: int, tokenizer: BaseTokenizer, job_config, infinite: bool = True):
    """The training dataloader: packed sequences, sharded by data-parallel rank."""
    make_source, local = _document_factory(job_config, "training", "train", infinite)
    if local:
        probe_first_documents(make_source, dp_rank, dp_world_size, job_config.training.dataloader.num_workers)
    dataset = PackedTokenDataset(make_source, tokenizer, job_config.training.seq_len, dp_rank, dp_world_size)
    # a checkpoint of another number of data-parallel ranks is refused, or its data position skipped on purpose,
    # before anything is loaded (EvalWeightsCheckpointer._check_data_position)
    return ParallelAwareDataloader(
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
    make_source, _ = _document_factory(job_config, "validation", "validation", infinite=False)
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
