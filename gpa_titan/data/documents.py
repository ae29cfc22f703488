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
when the reader reaches it; so does a full pass that gives a reader no document (shards
of blank lines, fewer documents than readers), instead of passing over the files forever.

``HFStreamingDocuments`` streams ``allenai/c4`` (config ``en``) from the Hugging Face
hub with ``datasets`` and uses its own resumable state.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import logging
import os
import zlib
from collections.abc import Iterator
from typing import Any

SPLIT_PATTERNS = {"train": "c4-train.*.json.gz", "validation": "c4-validation.*.json.gz"}

logger = logging.getLogger(__name__)


class DataConfigError(ValueError):
    """A data setting points at something missing or unusable; the message says the fix."""


# Files that may sit next to shards and are not data (the demo's tokenizer and marker, the
# tuning split's manifest, a Hugging Face tokenizer's files): never reported as skipped shards.
METADATA_FILES = {"gpa_titan_demo.json", "tuning_split.json", "special_tokens_map.json", "config.json",
                  "generation_config.json"}
SHARD_LIKE_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".parquet", ".gz")
_warned_skipped: set[tuple[str, tuple[str, ...]]] = set()


def _matches_a_split(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in SPLIT_PATTERNS.values())


def _looks_like_a_shard(root: str, name: str) -> bool:
    """Whether ``name`` looks like data (a JSON/parquet/gzip file, or one named after C4) that is
    not read because it matches neither split's pattern."""
    if name.startswith(".") or name.startswith("tokenizer") or name in METADATA_FILES or _matches_a_split(name):
        return False
    return (name.endswith(SHARD_LIKE_SUFFIXES) or "c4" in name.lower()) and os.path.isfile(os.path.join(root, name))


def shown_names(names: list[str], first: int = 5) -> str:
    """``a, b, c`` or ``a, b, c, d, e … and 7 more``."""
    shown = ", ".join(names[:first])
    return shown + (f" … and {len(names) - first} more" if len(names) > first else "")


def _subfolders_holding(root: str, pattern: str, depth: int = 2, max_folders: int = 200) -> list[tuple[str, int]]:
    """(subfolder, number of files matching ``pattern``) for the subfolders of ``root`` (at most
    ``depth`` levels down) that hold such files; ``en`` (C4's English) first."""
    found, queue, visited = [], [(root, 0)], 0
    while queue and visited < max_folders:
        folder, level = queue.pop(0)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        visited += 1
        if level:
            count = sum(1 for e in entries if fnmatch.fnmatchcase(e.name, pattern))
            if count:
                found.append((folder, count))
        if level < depth:
            queue += [(e.path, level + 1) for e in entries if not e.name.startswith(".") and e.is_dir()]
    return sorted(found, key=lambda f: (os.path.basename(f[0]) != "en", f[0]))


def find_shards(root: str, split: str, key: str = "[training] dataset_path") -> list[str]:
    """The sorted shard files of ``split`` under ``root``, or a clear error.

    Files that look like shards but match neither split's pattern (``c4-train.00000-of-01024.json``
    not gzip'd, a ``.tmp`` left by a download, another naming) are named in a warning (once per
    folder and process); when ``root`` holds no shard of ``split`` but a subfolder does, the error
    names that subfolder."""
    pattern = SPLIT_PATTERNS[split]
    if not os.path.isdir(root):
        raise DataConfigError(
            f"{key} = {root!r} does not exist or is not a directory. Point it at a folder "
            f"holding C4 shards ({pattern}), e.g. a local copy of allenai/c4's en/ folder."
        )
    names = sorted(os.listdir(root))
    files = [os.path.join(root, n) for n in names if fnmatch.fnmatchcase(n, pattern)]
    skipped = [n for n in names if _looks_like_a_shard(root, n)]
    if skipped and (os.path.abspath(root), tuple(skipped)) not in _warned_skipped:
        _warned_skipped.add((os.path.abspath(root), tuple(skipped)))
        logger.warning(
            f"{key} = {root!r}: {len(skipped)} file(s) look like shards but match neither "
            f"{SPLIT_PATTERNS['train']!r} nor {SPLIT_PATTERNS['validation']!r}, so they are not read: "
            f"{shown_names(skipped)}. C4 shards are gzip'd JSON lines named like c4-train.00000-of-01024.json.gz: "
            "rename or gzip these to have them read, or move them out of the folder."
        )
    if not files:
        subfolders = _subfolders_holding(root, pattern)
        if subfolders:
            (best, count), others = subfolders[0], [os.path.relpath(f, root) for f, _ in subfolders[1:]]
            raise DataConfigError(
                f"{key} = {root!r} holds no files matching {pattern!r}, but its subfolder "
                f"{os.path.relpath(best, root)!r} holds {count}: set {key} = {best!r}"
                + (f" (other subfolders holding such files: {shown_names(others)})." if others else ".")
            )
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

    A full pass over this reader's files that yields no document (shards of blank lines, fewer
    documents than readers) raises ``DataConfigError`` naming the files and the fix, infinite
    or not, instead of starting another pass: the message is the same for every reader when
    they all read the same files, and names the reader only when its files are its own.

    Args:
        files: shard paths, in a fixed order.
        reader (int): this reader's index (rank * num_workers + worker id).
        readers (int): the total number of readers.
        infinite (bool): start a new epoch at the end instead of stopping.
        key (str | None, default None): the setting that named the files (for messages).
    """

    def __init__(self, files: list[str], reader: int, readers: int, infinite: bool, key: str | None = None) -> None:
        self.files, self.reader, self.readers, self.infinite, self.key = files, reader, readers, infinite, key
        self.by_file = len(files) >= readers
        # position: epoch, index into this reader's files, next line, documents passed
        self.epoch, self.file_pos, self.line, self.seen = 0, 0, 0, 0

    def __iter__(self) -> Iterator[str]:
        while True:
            files = self.files[self.reader :: self.readers] if self.by_file else self.files
            full_pass = self.file_pos == 0 and self.line == 0  # not a pass resumed half way
            lines, found = 0, False
            while self.file_pos < len(files):
                for line_no, raw, offset in _shard_lines(files[self.file_pos]):
                    if line_no < self.line:
                        continue
                    self.line = line_no + 1
                    lines += 1
                    if not raw.strip():  # a blank line holds no document (every reader skips it)
                        continue
                    index = self.seen
                    self.seen += 1
                    if self.by_file or index % self.readers == self.reader:
                        found = True
                        yield _document_text(files[self.file_pos], line_no + 1, offset, raw)
                self.file_pos, self.line = self.file_pos + 1, 0
            if full_pass and not found:
                raise DataConfigError(self._no_document(files, lines))
            if not self.infinite:
                return
            self.epoch, self.file_pos, self.line, self.seen = self.epoch + 1, 0, 0, 0

    def _no_document(self, files: list[str], lines: int) -> str:
        """Why a full pass over ``files`` gave this reader no document, and the fix."""
        where = f"{self.key}: " if self.key else ""
        count = f"{len(files)} shard{'s' * (len(files) != 1)}"
        listed = shown_names(files, first=3)
        content = f"{lines} line{'s' * (lines != 1)}, all blank" if lines else "no lines at all"
        if files != self.files:  # this reader's own files (whole files per reader)
            return (
                f"{where}reader {self.reader} of {self.readers} (readers = data-parallel ranks x dataloader workers) "
                f"found no document in a full pass over its {count} ({content}): {listed}. With at least as many "
                f"shards as readers each reader reads whole shards (shard k goes to reader k % {self.readers}), so "
                "every shard must hold documents: re-download these shards, or remove them from the folder."
            )
        if self.seen == 0:  # every reader reads these files: the same message on every rank
            return (
                f"{where}no document in a full pass over {count} ({content}): {listed}. A C4 shard holds one "
                "JSON object with a \"text\" string per line: re-download the shards or check how they were "
                f"written, or point {self.key or 'the data path'} at a folder of C4 shards."
            )
        return (
            f"{where}the shards hold {self.seen} document{'s' * (self.seen != 1)} in all, fewer than the "
            f"{self.readers} readers (data-parallel ranks x dataloader workers), so some readers get none: "
            f"{listed}. Add documents, or use fewer data-parallel ranks or dataloader workers."
        )

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
