"""A tuning split carved from the training documents, so that hyperparameters are chosen on
text that is neither trained on nor the validation split the final comparison reports.

``carve_tuning_split(data, out)`` writes a folder in C4's on-disk format (the layout
``documents.find_shards`` reads): ``c4-validation.00000-of-00001.json.gz`` holds the carved
documents and ``c4-train.00000-of-00001.json.gz`` all other training documents, in their
original order; the data's own validation split is not copied. Which documents are carved is
a pure function of their text: the ``fraction`` of the training documents (at least one)
with the smallest SHA-256 of their text (ties by position), so the choice does not depend
on the order or the number of shards. Lines are copied byte for byte (every key C4 has), the
gzip files carry no timestamp (the same data give the same bytes), and
``tuning_split.json`` records what was done; a folder that already holds this split of this
data is left as it is.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os

from .documents import DataConfigError, _document_text, _shard_lines, find_shards

MANIFEST = "tuning_split.json"
TRAIN_FILE = "c4-train.00000-of-00001.json.gz"
TUNING_FILE = "c4-validation.00000-of-00001.json.gz"


def _source_signature(files: list[str]) -> list[dict]:
    return [{"file": os.path.abspath(p), "bytes": os.path.getsize(p)} for p in files]


def carved_indices(texts: list[str], fraction: float) -> list[int]:
    """Indices (ascending) of the documents that form the tuning split: the ``fraction`` of
    them (rounded, at least 1, at most all but one) with the smallest SHA-256 of their text."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction={fraction!r} must lie in (0, 1)")
    if len(texts) < 2:
        raise DataConfigError(f"{len(texts)} training document(s): a tuning split needs at least 2")
    count = min(len(texts) - 1, max(1, round(fraction * len(texts))))
    ranked = sorted(range(len(texts)), key=lambda i: (hashlib.sha256(texts[i].encode("utf-8")).hexdigest(), i))
    return sorted(ranked[:count])


def _write_gzip(path: str, lines: list[bytes]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
        for line in lines:
            f.write(line if line.endswith(b"\n") else line + b"\n")
    os.replace(tmp, path)


def carve_tuning_split(data_dir: str, out_dir: str, fraction: float = 0.05) -> dict:
    """Write the tuning split of ``data_dir``'s training documents into ``out_dir`` (see the
    module doc) and return its manifest (counts, the source files, the carved documents)."""
    files = find_shards(data_dir, "train", key="--data")
    wanted = {"source": _source_signature(files), "fraction": fraction}
    manifest_path = os.path.join(out_dir, MANIFEST)
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
        if {k: manifest.get(k) for k in wanted} == wanted and all(
                os.path.exists(os.path.join(out_dir, name)) for name in (TRAIN_FILE, TUNING_FILE)):
            return manifest
    lines, texts = [], []
    for path in files:
        for line_no, raw, offset in _shard_lines(path):
            if not raw.strip():
                continue
            texts.append(_document_text(path, line_no + 1, offset, raw))
            lines.append(raw)
    carved = carved_indices(texts, fraction)
    chosen = set(carved)
    os.makedirs(out_dir, exist_ok=True)
    _write_gzip(os.path.join(out_dir, TRAIN_FILE), [line for i, line in enumerate(lines) if i not in chosen])
    _write_gzip(os.path.join(out_dir, TUNING_FILE), [lines[i] for i in carved])
    manifest = {
        **wanted,
        "documents": len(lines),
        "train_documents": len(lines) - len(carved),
        "tuning_documents": len(carved),
        "tuning_characters": sum(len(texts[i]) for i in carved),
        "carved_positions": carved,
        "rule": "the fraction (rounded, >= 1) of training documents with the smallest sha256(text); "
                "train keeps the rest in order",
    }
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest
