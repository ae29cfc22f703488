"""Local C4 shards: deterministic sharding over ranks and workers, resume, clear errors."""

import gzip
import json
import os
import random
import re
import string

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


# ---------------------------------------------------------------------- unreadable shards
def read_all(path):
    """Every document of one shard, as one reader; (documents read, the error or None)."""
    docs = []
    try:
        for doc in LocalC4Documents([str(path)], 0, 1, infinite=False):
            docs.append(doc)
    except DataConfigError as e:
        return docs, str(e)
    return docs, None


def write_lines(path, lines):
    with gzip.open(path, "wb") as fh:
        fh.write(b"".join(lines))
    return path


def test_truncated_shard_names_file_line_and_fix(tmp_path):
    rng = random.Random(0)
    path = tmp_path / "c4-train.00000-of-00001.json.gz"
    # incompressible text, so that the first half of the file holds many complete lines
    lines = [json.dumps({"text": "".join(rng.choices(string.ascii_letters, k=200))}).encode() + b"\n"
             for _ in range(2000)]
    write_lines(path, lines)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    docs, error = read_all(path)
    assert error is not None, "a truncated shard must not end quietly"
    assert str(path) in error and "truncated" in error and "Re-download this shard" in error
    line = int(re.search(r"ends after line (\d+) \(uncompressed byte offset (\d+)\)", error).group(1))
    offset = int(re.search(r"byte offset (\d+)", error).group(1))
    assert 0 < len(docs) <= line < 2000, (len(docs), line)
    assert offset == sum(len(raw) for raw in lines[:line])
    assert docs == [json.loads(raw)["text"] for raw in lines[: len(docs)]]


def test_file_that_is_not_gzip_names_the_file(tmp_path):
    path = tmp_path / "c4-train.00000-of-00001.json.gz"
    path.write_text('{"text": "plain JSON lines, never compressed"}\n')
    docs, error = read_all(path)
    assert docs == [] and error is not None
    assert error.startswith(f"{path}: line 1 (byte 0): not a gzip file (it starts with b'{{\"text\"")
    assert "check the file's format" in error


def test_empty_file_names_the_file(tmp_path):
    path = tmp_path / "c4-train.00000-of-00001.json.gz"
    path.write_bytes(b"")
    docs, error = read_all(path)
    assert docs == [] and error.startswith(f"{path}: line 1 (byte 0): the file is empty")


def test_line_without_text_names_file_line_and_offset(tmp_path):
    good = json.dumps({"text": "first"}).encode() + b"\n"
    path = write_lines(tmp_path / "c4-train.00000-of-00001.json.gz",
                       [good, good, json.dumps({"content": "x", "url": ""}).encode() + b"\n", good])
    docs, error = read_all(path)
    assert docs == ["first", "first"]
    assert error.startswith(f"{path}: line 3 (uncompressed byte offset {2 * len(good)}): no \"text\" field")
    assert "['content', 'url']" in error and "check the file's format" in error


def test_line_that_is_not_json_names_file_line_and_offset(tmp_path):
    good = json.dumps({"text": "a"}).encode() + b"\n"
    path = write_lines(tmp_path / "c4-validation.00000-of-00001.json.gz", [good, b'{"text": "cut off\n', good])
    docs, error = read_all(path)
    assert docs == ["a"]
    assert error.startswith(f"{path}: line 2 (uncompressed byte offset {len(good)}): not a JSON object")
    assert "the line starts '{\"text\": \"cut off'" in error


@pytest.mark.parametrize(
    "line,found", [(b'["a list"]\n', "found a JSON array"), (b'{"text": null}\n', "is a JSON null")]
)
def test_line_of_the_wrong_shape_names_it(tmp_path, line, found):
    path = write_lines(tmp_path / "c4-train.00000-of-00001.json.gz", [line])
    _, error = read_all(path)
    assert error.startswith(f"{path}: line 1 (uncompressed byte offset 0)") and found in error


def test_corrupt_gzip_data_names_the_file(tmp_path):
    path = write_lines(tmp_path / "c4-train.00000-of-00001.json.gz", [json.dumps({"text": "doc"}).encode() + b"\n"])
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # the CRC in the trailer
    path.write_bytes(bytes(data))
    _, error = read_all(path)
    assert error is not None and error.startswith(f"{path}: corrupt gzip data after line")
    assert "Re-download this shard" in error


def test_blank_lines_are_skipped_by_every_reader(tmp_path):
    path = write_lines(tmp_path / "c4-train.00000-of-00001.json.gz",
                       [json.dumps({"text": str(i)}).encode() + b"\n" + (b"\n" if i % 3 == 0 else b"")
                        for i in range(10)])
    seen = [list(LocalC4Documents([str(path)], r, 2, infinite=False)) for r in range(2)]
    assert sorted(seen[0] + seen[1], key=int) == [str(i) for i in range(10)]


def test_line_that_is_not_utf8_names_file_line_and_offset(tmp_path):
    good = json.dumps({"text": "a"}).encode() + b"\n"
    path = write_lines(tmp_path / "c4-train.00000-of-00001.json.gz", [good, b'{"text": "caf\xe9"}\n'])
    docs, error = read_all(path)
    assert docs == ["a"]
    assert error.startswith(f"{path}: line 2 (uncompressed byte offset {len(good)}): not UTF-8 text")
    assert f"at byte {len(good) + 13}" in error


def test_shard_removed_after_start_up_names_the_file(tmp_path):
    write_shards(str(tmp_path), 2, 3)
    files = find_shards(str(tmp_path), "train")
    os.remove(files[1])
    docs, error = [], None
    try:
        for doc in LocalC4Documents(files, 0, 1, infinite=False):
            docs.append(doc)
    except DataConfigError as e:
        error = str(e)
    assert len(docs) == 3 and error.startswith(f"{files[1]}: cannot be opened (No such file or directory)")


def test_error_from_a_dataloader_worker_is_printed_as_its_own_message(tmp_path):
    """With [training.dataloader] num_workers > 0 the error is re-raised from the worker with
    its traceback in the message; the entry point's one-line form keeps only the message."""
    from torch.utils.data import DataLoader

    from gpa_titan.titan.main import one_line

    path = write_lines(tmp_path / "c4-train.00000-of-00001.json.gz", [b'{"url": "x"}\n'])

    def make(reader, readers):
        return LocalC4Documents([str(path)], reader, readers, infinite=False)

    loader = DataLoader(PackedTokenDataset(make, CharTokenizer(), seq_len=8, rank=0, world=1), num_workers=1)
    with pytest.raises(DataConfigError) as e:
        next(iter(loader))
    assert "Traceback" in str(e.value), "torch puts the worker's traceback into the message"
    assert one_line(e.value).startswith(f"{path}: line 1 (uncompressed byte offset 0): no \"text\" field")
    assert "\n" not in one_line(e.value) and "Traceback" not in one_line(e.value)
