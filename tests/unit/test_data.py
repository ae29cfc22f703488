"""Local C4 shards: deterministic sharding over ranks and workers, resume, clear errors."""

import gzip
import json
import os

import pytest

from gpa_titan.data.documents import DataConfigError, LocalC4Documents, find_shards
from gpa_titan.data.packing import PackedTokenDataset
from helpers import REPO


def write_shards(root, n_files, docs_per_file, split="train"):
    os.makedirs(root, exist_ok=True)
    texts = []
    for f in range(n_files):
        path = os.path.join(root, f"c4-{split}.{f:05d}-of-{n_files:05d}.json.gz")
        with gzip.open(path, "wt") as fh:
            for d in range(docs_per_file):
                text = f"file {f} doc {d} " + "word " * (d % 7)
                texts.append(text)
                fh.write(json.dumps({"text": text, "timestamp": "", "url": ""}) + "\n")
    return texts


@pytest.mark.parametrize("n_files,readers", [(3, 2), (1, 2), (4, 4), (2, 6)])
def test_readers_partition_the_documents(tmp_path, n_files, readers):
    texts = write_shards(str(tmp_path), n_files, 10)
    files = find_shards(str(tmp_path), "train")
    seen = [list(LocalC4Documents(files, r, readers, infinite=False)) for r in range(readers)]
    flat = [t for s in seen for t in s]
    assert sorted(flat) == sorted(texts), "every document exactly once over all readers"
    assert all(seen), "no reader is left without data"
    again = [list(LocalC4Documents(files, r, readers, infinite=False)) for r in range(readers)]
    assert again == seen, "deterministic"


@pytest.mark.parametrize("n_files,readers", [(3, 2), (1, 2)])
def test_resume_continues_with_the_next_document(tmp_path, n_files, readers):
    write_shards(str(tmp_path), n_files, 10)
    files = find_shards(str(tmp_path), "train")
    source = LocalC4Documents(files, 1, readers, infinite=True)
    it = iter(source)
    for _ in range(7):
        next(it)
    state = source.state_dict()
    expected = [next(it) for _ in range(20)]  # crosses files and an epoch boundary
    resumed = LocalC4Documents(files, 1, readers, infinite=True)
    resumed.load_state_dict(state)
    it2 = iter(resumed)
    assert [next(it2) for _ in range(20)] == expected


class CharTokenizer:
    def encode(self, text, add_bos=True, add_eos=True):
        return [1] * add_bos + [ord(c) % 50 + 2 for c in text] + [0] * add_eos


def test_packed_dataset_resume_is_exact(tmp_path):
    write_shards(str(tmp_path), 2, 30)
    files = find_shards(str(tmp_path), "train")

    def make(reader, readers):
        return LocalC4Documents(files, reader, readers, infinite=True)

    ds = PackedTokenDataset(make, CharTokenizer(), seq_len=16, rank=0, world=2)
    it = iter(ds)
    for _ in range(5):
        next(it)
    state = ds.state_dict()
    expected = [next(it)[1] for _ in range(10)]
    ds2 = PackedTokenDataset(make, CharTokenizer(), seq_len=16, rank=0, world=2)
    ds2.load_state_dict(state)
    it2 = iter(ds2)
    got = [next(it2)[1] for _ in range(10)]
    assert all((a == b).all() for a, b in zip(expected, got))
    x, y = next(iter(PackedTokenDataset(make, CharTokenizer(), seq_len=16, rank=0, world=2)))
    assert x["input"].shape == (16,) and (x["input"][1:] == y[:-1]).all()


def test_missing_path_names_the_key(tmp_path):
    with pytest.raises(DataConfigError, match=r"\[validation\] dataset_path = .*does not exist"):
        find_shards(str(tmp_path / "nope"), "validation", key="[validation] dataset_path")


def test_empty_folder_says_what_to_put_there(tmp_path):
    with pytest.raises(DataConfigError, match=r"holds no files matching 'c4-train\.\*\.json\.gz'"):
        find_shards(str(tmp_path), "train")


@pytest.mark.skipif(
    not os.path.isdir(os.path.join(REPO, "..", "shared", "data", "peps")), reason="no ../shared/data/peps"
)
def test_reads_real_c4_format_when_present():
    files = find_shards(os.path.join(REPO, "..", "shared", "data", "peps"), "validation")
    docs = list(LocalC4Documents(files, 0, 1, infinite=False))
    assert len(docs) > 10 and all(isinstance(d, str) and d for d in docs)
