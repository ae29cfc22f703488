"""The tuning split carved from the training documents: which documents, in what order, in
C4's layout (read back by the project's own reader), reproducible, and reused when present."""

import gzip
import json
import os

import pytest

from gpa_titan.data.documents import DataConfigError, LocalC4Documents, find_shards
from gpa_titan.data.tuning_split import MANIFEST, carve_tuning_split, carved_indices


def write_c4(folder, split: str, docs: list[str], shards: int = 1) -> None:
    os.makedirs(folder, exist_ok=True)
    for k in range(shards):
        with gzip.open(os.path.join(folder, f"c4-{split}.{k:05d}-of-{shards:05d}.json.gz"), "wt") as f:
            for i, text in enumerate(docs[k::shards]):
                f.write(json.dumps({"text": text, "timestamp": "2019-04-25", "url": f"u{k}-{i}"}) + "\n")


def read(folder, split):
    return list(LocalC4Documents(find_shards(str(folder), split), 0, 1, infinite=False))


DOCS = [f"document number {i}: " + "word " * (i % 7) for i in range(100)]


def test_carves_the_fraction_with_the_smallest_hashes_and_keeps_the_rest_in_order(tmp_path):
    write_c4(tmp_path / "data", "train", DOCS)
    write_c4(tmp_path / "data", "validation", ["held out"])
    manifest = carve_tuning_split(str(tmp_path / "data"), str(tmp_path / "split"), 0.05)
    tuning, train = read(tmp_path / "split", "validation"), read(tmp_path / "split", "train")
    assert len(tuning) == 5 and manifest["tuning_documents"] == 5 and manifest["train_documents"] == 95
    assert sorted(tuning + train) == sorted(DOCS) and "held out" not in tuning + train  # a partition, no real val
    assert train == [d for d in DOCS if d not in tuning]  # original order
    assert [DOCS[i] for i in manifest["carved_positions"]] == tuning
    assert [DOCS[i] for i in carved_indices(DOCS, 0.05)] == tuning


def test_the_choice_depends_on_the_text_only(tmp_path):
    """Shuffled documents over 3 shards carve the same documents."""
    write_c4(tmp_path / "a", "train", DOCS)
    shuffled = DOCS[::-1]
    write_c4(tmp_path / "b", "train", shuffled, shards=3)
    carve_tuning_split(str(tmp_path / "a"), str(tmp_path / "sa"), 0.1)
    carve_tuning_split(str(tmp_path / "b"), str(tmp_path / "sb"), 0.1)
    assert sorted(read(tmp_path / "sa", "validation")) == sorted(read(tmp_path / "sb", "validation"))
    assert len(read(tmp_path / "sa", "validation")) == 10


def test_lines_are_copied_byte_for_byte_and_files_are_reproducible(tmp_path):
    write_c4(tmp_path / "data", "train", DOCS)
    carve_tuning_split(str(tmp_path / "data"), str(tmp_path / "s1"), 0.2)
    carve_tuning_split(str(tmp_path / "data"), str(tmp_path / "s2"), 0.2)
    for name in ("c4-train.00000-of-00001.json.gz", "c4-validation.00000-of-00001.json.gz"):
        assert (tmp_path / "s1" / name).read_bytes() == (tmp_path / "s2" / name).read_bytes()
    with gzip.open(tmp_path / "s1" / "c4-validation.00000-of-00001.json.gz", "rt") as f:
        first = json.loads(f.readline())
    assert set(first) == {"text", "timestamp", "url"}


def test_an_existing_split_is_reused_and_a_changed_one_rewritten(tmp_path):
    write_c4(tmp_path / "data", "train", DOCS)
    out = tmp_path / "split"
    carve_tuning_split(str(tmp_path / "data"), str(out), 0.05)
    marker = out / "c4-train.00000-of-00001.json.gz"
    os.utime(marker, (1, 1))
    carve_tuning_split(str(tmp_path / "data"), str(out), 0.05)
    assert os.path.getmtime(marker) == 1  # same data and fraction: untouched
    manifest = carve_tuning_split(str(tmp_path / "data"), str(out), 0.1)
    assert manifest["tuning_documents"] == 10 and len(read(out, "validation")) == 10
    assert json.loads((out / MANIFEST).read_text())["fraction"] == 0.1


def test_bounds_and_errors(tmp_path):
    assert len(carved_indices(["a", "b", "c"], 0.01)) == 1  # at least one
    assert len(carved_indices(["a", "b"], 0.99)) == 1  # at least one stays for training
    with pytest.raises(ValueError, match="fraction"):
        carved_indices(DOCS, 0.0)
    with pytest.raises(DataConfigError, match="at least 2"):
        carved_indices(["only"], 0.5)
    with pytest.raises(DataConfigError, match="no files matching"):
        carve_tuning_split(str(tmp_path), str(tmp_path / "out"))
