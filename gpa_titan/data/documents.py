"""Sources of documents, sharded deterministically across data-parallel ranks and workers.

``LocalC4Documents`` reads C4's published on-disk format (gzip'd JSON lines with a
``text`` field, files named ``c4-train.*.json.gz`` / ``c4-validation.*.json.gz``) from a
directory. With at least as many files as readers, each reader owns whole files
(file ``k`` belongs to reader ``k % readers``); with fewer files, every reader scans all
files and keeps every ``readers``-th document. Either way the split is a pure function
of (files, rank, world size, workers), and the position (epoch, file, line) is saved
so a resume continues at the next document. A shard that cannot be read (not gzip,
truncated, corrupt, a line that is not a JSON object with a ``text`` string) raises
``DataConfigError`` naming the file, the line (and uncompressed byte offset) and the fix,
when the reader reaches it.

``HFStreamingDocuments`` streams ``allenai/c4`` (config ``en``) from the Hugging Face
hub with ``datasets`` and uses its own resumable state.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import zlib
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


FIX_SHARD = "Re-download this shard, or remove it from its folder to train without it."
FIX_FORMAT = (
    "C4 shards are gzip'd JSON lines, one object with a \"text\" string per line: check the file's "
    "format (or how it was written), re-download it, or remove it from its folder."
)


def _shard_lines(path: str) -> Iterator[tuple[int, bytes, int]]:
    """(0-based line number, raw line, uncompressed byte offset of its start) of a gzip'd
    shard; a missing, unreadable, non-gzip, corrupt or truncated file raises
    ``DataConfigError`` naming the file, where reading stopped, and the fix."""
    try:
        f = gzip.open(path, "rb")
    except OSError as e:
        raise DataConfigError(
            f"{path}: cannot be opened ({e.strerror or e}). The list of shards was taken at start-up: "
            "restore the file, or restart the run so that the list is taken again."
        ) from e
    if os.path.getsize(path) == 0:
        f.close()
        raise DataConfigError(
            f"{path}: line 1 (byte 0): the file is empty (0 bytes; an interrupted download?). " + FIX_SHARD
        )
    line_no, offset = 0, 0
    with f:
        lines = iter(f)
        while True:
            try:
                raw = next(lines)
            except StopIteration:
                return
            except gzip.BadGzipFile as e:
                with open(path, "rb") as head:
                    start = head.read(8)
                if not start.startswith(b"\x1f\x8b"):
                    raise DataConfigError(
                        f"{path}: line 1 (byte 0): not a gzip file (it starts with {start!r}). " + FIX_FORMAT
                    ) from e
                raise DataConfigError(
                    f"{path}: corrupt gzip data after line {line_no} (uncompressed byte offset {offset}): {e}. "
                    + FIX_SHARD
                ) from e
            except EOFError as e:
                raise DataConfigError(
                    f"{path}: the file is truncated: its gzip data ends after line {line_no} (uncompressed byte "
                    f"offset {offset}), in the middle of the stream (an interrupted download or copy?). " + FIX_SHARD
                ) from e
            except (OSError, zlib.error) as e:
                raise DataConfigError(
                    f"{path}: corrupt gzip data after line {line_no} (uncompressed byte offset {offset}): {e}. "
                    + FIX_SHARD
                ) from e
            yield line_no, raw, offset
            line_no, offset = line_no + 1, offset + len(raw)


def _json_type(value) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), "null")


def _document_text(path: str, line: int, offset: int, raw: bytes) -> str:
    """The ``text`` of the JSON object on ``line`` (1-based) of ``path``, or a
    ``DataConfigError`` naming the file, line and byte offset, what is wrong, and the fix."""
    where = f"{path}: line {line} (uncompressed byte offset {offset})"
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DataConfigError(f"{where}: not UTF-8 text ({e.reason} at byte {offset + e.start}). " + FIX_FORMAT) from e
    except json.JSONDecodeError as e:
        shown = raw[:60].decode("utf-8", "replace").rstrip("\n")
        raise DataConfigError(
            f"{where}: not a JSON object ({e.msg.removesuffix(' at')} at column {e.colno}; the line starts "
            f"{shown!r}). " + FIX_FORMAT
        ) from e
    if not isinstance(doc, dict) or "text" not in doc:
        found = f"keys {sorted(doc)[:8]}" if isinstance(doc, dict) else f"a JSON {_json_type(doc)}"
        raise DataConfigError(f"{where}: no \"text\" field (found {found}). " + FIX_FORMAT)
    if not isinstance(doc["text"], str):
        raise DataConfigError(
            f"{where}: \"text\" is a JSON {_json_type(doc['text'])}, not a string. " + FIX_FORMAT
        )
    return doc["text"]


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
                for line_no, raw, offset in _shard_lines(files[self.file_pos]):
                    if line_no < self.line:
                        continue
                    self.line = line_no + 1
                    if not raw.strip():  # a blank line holds no document (every reader skips it)
                        continue
                    index = self.seen
                    self.seen += 1
                    if self.by_file or index % self.readers == self.reader:
                        yield _document_text(files[self.file_pos], line_no + 1, offset, raw)
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
