"""Data sources that cannot give a reader a document, demo files in a user's folder, and what
the shard search reports (issue 15): an error naming the files and the fix, never an endless
pass over blank shards, and a folder of real data never written."""

import gzip
import importlib.util
import json
import logging
import os
import threading

import pytest
from torchtitan.config import ConfigManager

from gpa_titan.data.demo import MARKER, build_demo_assets
from gpa_titan.data.documents import DataConfigError, LocalC4Documents, find_shards
from gpa_titan.paths import DEBUG_CONFIG
from gpa_titan.titan.dataloader import build_dataloader, build_tokenizer, build_validation_batches
from helpers import REPO

TRAIN = "c4-train.{:05d}-of-{:05d}.json.gz"
KEY = "[training] dataset_path"


def within(seconds, fn, *args):
    """``fn(*args)``'s result (or its exception), or a failure if it runs longer than ``seconds``
    (a regression to an endless pass fails instead of hanging the suite)."""
    out = {}

    def target():
        try:
            out["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001  (handed to the test)
            out["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still reading after {seconds} s: an endless pass over the files"
    if "error" in out:
        raise out["error"]
    return out["value"]


def shard(folder, index, count, texts, blank_lines=0, split="train"):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"c4-{split}.{index:05d}-of-{count:05d}.json.gz")
    with gzip.open(path, "wt") as f:
        for text in texts:
            f.write(json.dumps({"text": text, "url": ""}) + "\n")
        f.write("\n" * blank_lines)
    return path


def first_documents(source, n):
    it = iter(source)
    return [next(it) for _ in range(n)]


def error_of(fn, *args, seconds=20):
    with pytest.raises(DataConfigError) as e:
        within(seconds, fn, *args)
    return str(e.value)


# ---------------------------------------------------------------------- a full pass without a document
@pytest.mark.parametrize("infinite", [True, False])
def test_a_shard_of_blank_lines_is_an_error_not_an_endless_pass(tmp_path, infinite):
    path = shard(tmp_path, 0, 1, [], blank_lines=3)
    source = LocalC4Documents([path], 0, 1, infinite=infinite, key=KEY)
    message = error_of(list, source)
    assert message.startswith(f"{KEY}: no document in a full pass over 1 shard (3 lines, all blank): {path}. ")
    assert "re-download the shards" in message and f"point {KEY} at a folder of C4 shards" in message


def test_one_blank_shard_on_two_readers_gives_both_the_same_message(tmp_path):
    path = shard(tmp_path, 0, 1, [], blank_lines=4)
    messages = [error_of(list, LocalC4Documents([path], r, 2, infinite=True, key=KEY)) for r in range(2)]
    assert messages[0] == messages[1], "the same cause gives every rank the same message"
    assert messages[0].startswith(f"{KEY}: no document in a full pass over 1 shard (4 lines, all blank): {path}")


def test_fewer_documents_than_readers_says_so(tmp_path):
    path = shard(tmp_path, 0, 1, ["the only document"], blank_lines=2)
    assert within(20, first_documents, LocalC4Documents([path], 0, 2, infinite=True), 3) == ["the only document"] * 3
    message = error_of(list, LocalC4Documents([path], 1, 2, infinite=True, key=KEY))
    assert message.startswith(
        f"{KEY}: the shards hold 1 document in all, fewer than the 2 readers (data-parallel ranks x dataloader "
        f"workers), so some readers get none: {path}. "
    )
    assert "use fewer data-parallel ranks or dataloader workers" in message


def test_a_reader_whose_own_shards_are_blank_is_named_with_them(tmp_path):
    good = shard(tmp_path, 0, 2, ["a", "b"])
    blank = shard(tmp_path, 1, 2, [], blank_lines=5)
    assert within(20, first_documents, LocalC4Documents([good, blank], 0, 2, infinite=True), 5) == list("abab") + ["a"]
    for infinite in (True, False):
        message = error_of(list, LocalC4Documents([good, blank], 1, 2, infinite=infinite, key=KEY))
        assert message.startswith(
            f"{KEY}: reader 1 of 2 (readers = data-parallel ranks x dataloader workers) found no document in a "
            f"full pass over its 1 shard (5 lines, all blank): {blank}. "
        )
        assert good not in message and "remove them from the folder" in message


# ---------------------------------------------------------------------- the start-up probe
def config(*args):
    return ConfigManager().parse_args(["--job.config_file", DEBUG_CONFIG, *args])


def c4_config(data, *args):
    return config("--training.dataset", "c4", "--training.dataset_path", str(data),
                  "--validation.dataset", "c4", "--validation.dataset_path", str(data), *args)


class CharTokenizer:
    def encode(self, text, add_bos=True, add_eos=True):
        return [1] * add_bos + [ord(c) % 50 + 2 for c in text] + [0] * add_eos


def test_build_dataloader_fails_at_start_up_on_blank_shards_with_one_message_per_cause(tmp_path):
    path = shard(tmp_path, 0, 1, [], blank_lines=3)
    cfg = c4_config(tmp_path)
    one = error_of(build_dataloader, 1, 0, CharTokenizer(), cfg)
    assert one == f"{KEY}: no document in a full pass over 1 shard (3 lines, all blank): {path}. " + one.split(
        ". ", 1)[1]
    two = [error_of(build_dataloader, 2, rank, CharTokenizer(), cfg) for rank in range(2)]
    assert two[0] == two[1] == one


def test_build_dataloader_probes_every_worker_of_its_rank(tmp_path):
    shard(tmp_path, 0, 1, ["one", "two", "three"])
    cfg = c4_config(tmp_path, "--training.dataloader.num_workers", "2")
    within(20, build_dataloader, 2, 0, CharTokenizer(), cfg)  # readers 0 and 1 of 4 get a document each
    message = error_of(build_dataloader, 2, 1, CharTokenizer(), cfg)  # reader 3 of 4 gets none
    assert message.startswith(f"{KEY}: the shards hold 3 documents in all, fewer than the 4 readers")


def snapshot(folder):
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = (open(path, "rb").read() if os.path.isfile(path) else None,
                                                  os.stat(path).st_mtime_ns)
    return out


def test_a_c4_folder_is_only_read_and_its_shard_counts_are_logged(tmp_path, caplog):
    data, tokenizer = tmp_path / "c4", tmp_path / "tok"
    for i in range(3):
        shard(data, i, 3, [f"doc {i} {j} " * 8 for j in range(20)])
    shard(data, 0, 1, [f"held out {j} " * 8 for j in range(20)], split="validation")
    build_demo_assets(str(tokenizer), documents=40)
    before = snapshot(data), snapshot(tokenizer)
    cfg = c4_config(data, "--model.hf_assets_path", str(tokenizer), "--validation.steps", "1",
                    "--validation.local_batch_size", "2", "--validation.seq_len", "16")
    caplog.set_level(logging.INFO)
    tok = build_tokenizer(cfg)
    next(iter(within(30, build_dataloader, 1, 0, tok, cfg)))
    within(30, build_validation_batches, 1, 0, tok, cfg)
    assert (snapshot(data), snapshot(tokenizer)) == before, "dataset = \"c4\" never writes"
    assert f"{KEY} = {str(data)!r}: 3 train shards (c4-train.*.json.gz)" in caplog.messages
    assert f"[validation] dataset_path = {str(data)!r}: 1 validation shard (c4-validation.*.json.gz)" in caplog.messages


# ---------------------------------------------------------------------- the shard search
def test_files_that_look_like_shards_but_are_skipped_are_named(tmp_path, caplog):
    shard(tmp_path, 0, 1, ["x"])
    skipped = ["c4-train.00000-of-01024.json", "c4-train-00000.json.gz", "c4-train.00001-of-01024.json.gz.tmp"]
    for name in [*skipped, "tokenizer.json", "tokenizer_config.json", MARKER, "notes.txt"]:
        (tmp_path / name).write_text("{}")
    caplog.set_level(logging.INFO)
    assert find_shards(str(tmp_path), "train") == [str(tmp_path / TRAIN.format(0, 1))]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"{KEY} = {str(tmp_path)!r}: 3 file(s) look like shards but match neither 'c4-train.*.json.gz' nor "
        f"'c4-validation.*.json.gz', so they are not read: {', '.join(sorted(skipped))}. C4 shards are gzip'd "
        "JSON lines named like c4-train.00000-of-01024.json.gz: rename or gzip these to have them read, or move "
        "them out of the folder."
    ]
    for i in range(6):
        (tmp_path / f"part-{i}.parquet").write_text("")
    caplog.clear()
    find_shards(str(tmp_path), "train")
    assert "9 file(s) look like shards" in caplog.text and "… and 4 more." in caplog.text


def test_no_shards_but_a_subfolder_holding_them_names_the_subfolder(tmp_path):
    for i in range(2):
        shard(tmp_path / "c4" / "en", i, 2, ["x"])
    shard(tmp_path / "c4" / "realnewslike", 0, 1, ["y"])
    root = str(tmp_path / "c4")
    with pytest.raises(DataConfigError) as e:
        find_shards(root, "train")
    assert str(e.value) == (
        f"{KEY} = {root!r} holds no files matching 'c4-train.*.json.gz', but its subfolder 'en' holds 2: set "
        f"{KEY} = {os.path.join(root, 'en')!r} (other subfolders holding such files: realnewslike)."
    )


# ---------------------------------------------------------------------- the demo generator's folder
def c4_folder(folder):
    for i in range(3):
        shard(folder, i, 3, [f"real document {i}"])
    shard(folder, 0, 1, ["held out"], split="validation")
    return snapshot(folder)


@pytest.mark.parametrize("section", ["training", "validation"])
def test_the_demo_never_writes_into_a_folder_of_c4_shards(tmp_path, section):
    before = c4_folder(tmp_path / "c4")
    cfg = config(f"--{section}.dataset", "demo", f"--{section}.dataset_path", str(tmp_path / "c4"),
                 "--data.demo_documents", "40")
    build = build_dataloader if section == "training" else build_validation_batches
    message = error_of(build, 1, 0, CharTokenizer(), cfg)
    assert snapshot(tmp_path / "c4") == before, "left byte for byte as it was"
    key = f"[{section}] dataset_path"
    assert message.startswith(
        f"{key} = {str(tmp_path / 'c4')!r} holds 4 C4 shards (c4-train.00000-of-00003.json.gz, "
        "c4-train.00001-of-00003.json.gz, c4-train.00002-of-00003.json.gz … and 1 more): the demo generator "
        "writes its corpus and tokenizer only into a missing or empty folder, or one holding a demo it generated "
        f"(marked by {MARKER}), and never into a folder holding other files. "
    )
    assert f'set [{section}] dataset = "c4"' in message and f"point {key} at a missing or empty folder" in message


def test_the_demo_tokenizer_is_never_written_into_a_folder_of_other_files(tmp_path):
    before = c4_folder(tmp_path / "c4")
    cfg = config("--model.hf_assets_path", str(tmp_path / "c4"), "--data.demo_documents", "40")
    message = error_of(build_tokenizer, cfg)
    assert snapshot(tmp_path / "c4") == before
    assert message.startswith(f"[model] hf_assets_path = {str(tmp_path / 'c4')!r} holds 4 C4 shards (")
    assert "to use a tokenizer of your own, put its tokenizer.json there" in message


def test_a_marked_demo_is_reused_and_one_of_other_parameters_rebuilt(tmp_path):
    out = tmp_path / "demo"
    build_demo_assets(str(out), documents=40, key=KEY)
    assert json.loads((out / MARKER).read_text())["documents"] == 40
    for name in os.listdir(out):
        os.utime(out / name, (1, 1))
    build_demo_assets(str(out), documents=40, key=KEY)
    assert all(os.path.getmtime(out / n) == 1 for n in os.listdir(out)), "reused as it is"
    build_demo_assets(str(out), documents=60, key=KEY)
    assert json.loads((out / MARKER).read_text())["documents"] == 60
    assert sum(1 for _ in gzip.open(out / TRAIN.format(0, 1))) == 57


def test_a_demo_folder_from_before_the_marker_is_rebuilt_but_look_alike_user_files_are_not(tmp_path):
    out = tmp_path / "demo"
    build_demo_assets(str(out), documents=40)
    os.remove(out / MARKER)
    os.makedirs(out / "tmpabc123")  # a build killed half way, by the generator before the marker
    build_demo_assets(str(out), documents=40)
    assert (out / MARKER).exists()

    mine = tmp_path / "mine"  # the same four names, a user's own shard and tokenizer
    shard(mine, 0, 1, ["my text"])
    shard(mine, 0, 1, ["my held-out text"], split="validation")
    (mine / "tokenizer.json").write_text("{}")
    (mine / "tokenizer_config.json").write_text('{"bos_token": "<s>"}')
    before = snapshot(mine)
    with pytest.raises(DataConfigError, match=r"holds 2 C4 shards .* and 2 other files \(tokenizer\.json, "):
        build_demo_assets(str(mine), documents=40, key=KEY)
    assert snapshot(mine) == before


def test_make_demo_data_refuses_a_folder_of_other_files(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("make_demo_data", os.path.join(REPO, "scripts", "make_demo_data.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    (tmp_path / "notes.txt").write_text("mine")
    assert script.main(["--out", str(tmp_path), "--documents", "40"]) == 2
    assert capsys.readouterr().err == (
        f"error: --out = {str(tmp_path)!r} holds 1 other file (notes.txt): the demo generator writes its corpus "
        "and tokenizer only into a missing or empty folder, or one holding a demo it generated (marked by "
        f"{MARKER}), and never into a folder holding other files. Choose a missing or empty folder for --out.\n"
    )
    assert os.listdir(tmp_path) == ["notes.txt"]
