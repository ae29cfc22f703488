"""Sources of documents, sharded deterministically across data-parallel ranks and workers.

``LocalC4Documents`` reads C4's published on-disk format (gzip'd JSON lines with a
``text`` field, files named ``c4-train.*.json.gz`` / ``c4-validation.*.json.gz``) from a
directory. With at least as many files as readers, each reader owns whole files
(file ``k`` belongs to reader ``k % readers``); with fewer files, every reader scans all
files and keeps every ``readers``-th document. Either way the split is a pure function
of (files, rank, world size, workers), and the position (epoch, file, line) is saved
so a resume continues at the next document.

``HFStreamingDocuments`` streams ``allenai/c4`` (config ``en``) from the Hugging Face
hub with ``datasets`` and uses its own resumable state.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
from collections.abc import Iterator
from typing import Any

SPLIT_PATTERNS = {"train": "c4-train.*.json.gz", "validation": "c4-validation.*.json.gz"}


class DataConfigError(ValueError):
    """A data setting points at something missing or unusable; the message says the fix."""


def find_shards(root: str, split: str, key: str = "[training] dataset_path") -> list[str]:
    """The sorted shard files of ``split`` under ``root``, or a clear error."""
    pattern = SPLIT_PATTERNS[split]
    if not os.path.isdir(root):
        raise DataConfigError(
            f"{key} = {root!r} does not exist or is not a directory. Point it at a folder "
            f"holding C4 shards ({pattern}), e.g. a local copy of allenai/c4's en/ folder."
        )
    files = sorted(glob.glob(os.path.join(root, pattern)))
    if not files:
        raise DataConfigError(
            f"{key} = {root!r} holds no files matching {pattern!r}. Copy C4's {split} shards "
            "there (huggingface-cli download allenai/c4 --repo-type dataset --include "
            f"'en/{pattern}'), or fix the path."
        )
    return files


class LocalC4Documents:
    """Documents from local C4 shards for reader ``reader`` of ``readers`` (see module doc).

    Args:
        files: shard paths, in a fixed order.
        reader (int): this reader's index (rank * num_workers + worker id).
        readers (int): the total number of readers.
        infinite (bool): start a new epoch at the end instead of stopping.
    """

    def __init__(self, files: list[str], reader: int, readers: int, infinite: bool) -> None:
        self.files, self.reader, self.readers, self.infinite = files, reader, readers, infinite
        self.by_file = len(files) >= readers
        # position: epoch, index into this reader's files, next line, documents passed
        self.epoch, self.file_pos, self.line, self.seen = 0, 0, 0, 0

    def __iter__(self) -> Iterator[str]:
        while True:
            files = self.files[self.reader :: self.readers] if self.by_file else self.files
            while self.file_pos < len(files):
                with gzip.open(files[self.file_pos], "rt", encoding="utf-8") as f:
                    for line_no, line in enumerate(f):
                        if line_no < self.line:
                            continue
                        self.line, index = line_no + 1, self.seen
                        self.seen += 1
                        if self.by_file or index % self.readers == self.reader:
                            yield json.loads(line)["text"]
                self.file_pos, self.line = self.file_pos + 1, 0
            if not self.infinite:
                return
            self.epoch, self.file_pos, self.line, self.seen = self.epoch + 1, 0, 0, 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "file_pos": self.file_pos, "line": self.line, "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.file_pos, self.line, self.seen = (
            state["epoch"], state["file_pos"], state["line"], state["seen"]
        )


class HFStreamingDocuments:
    """``allenai/c4`` (``en``) streamed from the Hugging Face hub, split by node.

    Args:
        split (str): "train" or "validation".
        rank (int), world (int): this data-parallel rank and their number.
        infinite (bool): start a new epoch at the end instead of stopping.
        path (str, default "allenai/c4"): the dataset repository on the hub.
    """

    def __init__(self, split: str, rank: int, world: int, infinite: bool, path: str = "allenai/c4") -> None:
        from datasets import load_dataset
        from datasets.distributed import split_dataset_by_node

        try:
            ds = load_dataset(path, name="en", split=split, streaming=True)
        except Exception as e:  # no network, no access, hub down
            raise DataConfigError(
                f"Could not open {path} (en, {split}) on the Hugging Face hub: {e}. On machines "
                "without internet, download the C4 shards once and set [training] dataset_path "
                "(and [validation] dataset_path) to their folder."
            ) from e
        self.data = split_dataset_by_node(ds, rank=rank, world_size=world)
        self.infinite, self.epoch = infinite, 0

    def __iter__(self) -> Iterator[str]:
        while True:
            for sample in self.data:
                yield sample["text"]
            if not self.infinite:
                return
            self.epoch += 1
            self.data.set_epoch(self.epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"data": self.data.state_dict(), "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.data.load_state_dict(state["data"])
        self.epoch = state["epoch"]
