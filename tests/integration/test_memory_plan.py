"""The memory plan: static memory measured on the sharded meta model equals a count by hand,
the activation estimate orders the AC modes, and the paper configs fit as they are chosen.

The paper configs are measured once, in one child process (about 10 s)."""

import dataclasses
import importlib.util
import math
import os
import re

import pytest
import torch

from gpa_titan.optim.registry import OPTIMIZERS
from gpa_titan.tools import memory_plan as mp
from helpers import REPO

# The flavors' shapes as the README states them (layers, dim, heads, kv heads, FFN, vocab),
# written out so the count below does not go through the model code.
SHAPES = {
    "160M": (12, 768, 12, 12, 3072, 32000),
    "1B": (16, 2048, 32, 8, 8192, 128256),
    "8B": (32, 4096, 32, 8, 14336, 128256),
}
KEY = {spec.name: spec.config_key for spec in OPTIMIZERS.values()}


@pytest.fixture(scope="module")
def statics() -> dict[str, mp.StaticMemory]:
    return {s.name: s for s in mp.measure_configs(mp.paper_configs())}


# the optimizers each size has a config of (Muon and GPA-Muon: 160M only)
SIZE_OPTIMIZERS = {"160M": {"adamw", "gpa", "diloco", "muon", "gpa_muon"}, "1B": {"adamw", "gpa", "diloco"},
                   "8B": {"adamw", "gpa", "diloco"}}


def by_size(statics, size: str) -> dict[str, mp.StaticMemory]:
    """The configs of one size by optimizer key ("adamw", "gpa", "diloco", ...)."""
    return {KEY[s.optimizer]: s for s in statics.values() if s.flavor == size}


def hand_count(size: str, shards: int) -> dict[str, int]:
    """Parameter tensors of TorchTitan's Llama and rank 0's shard of each (FSDP2 shards dim 0
    into ``shards`` chunks, the first rounded up, and pads every rank to that)."""
    layers, d, heads, kv_heads, f, vocab = SHAPES[size]
    kv = kv_heads * (d // heads)
    block = [(d, d), (kv, d), (kv, d), (d, d), (f, d), (d, f), (f, d), (d,), (d,)]
    tensors = [(vocab, d)] + block * layers + [(d,), (vocab, d)]
    local = sum(math.ceil(t[0] / shards) * math.prod(t[1:]) for t in tensors)
    return dict(tensors=len(tensors), total=sum(math.prod(t) for t in tensors), local=local, head_dim=d // heads)


def test_there_is_one_config_per_size_and_optimizer(statics):
    shipped = [os.path.splitext(p)[0] for p in os.listdir(os.path.join(REPO, "configs")) if p.startswith("llama_")]
    assert sorted(statics) == sorted(shipped)
    for size in SHAPES:
        assert set(by_size(statics, size)) == SIZE_OPTIMIZERS[size]


@pytest.mark.parametrize("size", SHAPES)
def test_static_memory_is_the_hand_count(statics, size):
    for s in by_size(statics, size).values():
        assert (s.gpus, s.dp_shard, s.dp_replicate) == (8 * mp.NODES[size], 8, mp.NODES[size])
        n = hand_count(size, s.dp_shard)
        assert s.total_params == n["total"]
        assert s.local_params == n["local"]
        rope = s.seq_len * n["head_dim"] // 2 * 8  # freqs_cis: complex64, unsharded
        assert s.param_bytes == 4 * n["local"] + rope
        assert s.grad_bytes == 4 * n["local"]  # fp32 reduce-scatter output, padded like the params
        # the padding is small: within 0.1% of an even split
        assert 0 <= n["local"] - n["total"] / s.dp_shard < 1e-3 * n["total"] / s.dp_shard


@pytest.mark.parametrize("size", SHAPES)
def test_optimizer_state_differs_by_fp32_copies_of_the_local_params(statics, size):
    opts = by_size(statics, size)
    local, tensors = hand_count(size, 8)["local"], hand_count(size, 8)["tensors"]
    adamw, gpa, diloco = opts["adamw"], opts["gpa"], opts["diloco"]
    assert adamw.optimizer_bytes == 2 * 4 * local + 4 * tensors  # exp_avg, exp_avg_sq, a scalar step each
    assert gpa.optimizer_bytes - adamw.optimizer_bytes == 4 * local - 4 * tensors  # + z, no step tensors
    assert diloco.optimizer_bytes - adamw.optimizer_bytes == 2 * 4 * local  # + outer, outer_momentum
    assert adamw.optimizer_bytes < gpa.optimizer_bytes < diloco.optimizer_bytes
    assert adamw.param_bytes == gpa.param_bytes == diloco.param_bytes


def test_muon_state_is_momentum_on_hidden_matrices_and_adamw_on_the_rest_and_gpa_adds_z(statics):
    """Muon and GPA-Muon's state on meta DTensors (the 160M configs): a momentum buffer per hidden
    matrix (7 per block), AdamW's exp_avg, exp_avg_sq and step for embeddings, output and norms;
    GPA-Muon adds z for every parameter."""
    opts = by_size(statics, "160M")
    layers, d, heads, kv_heads, f, vocab = SHAPES["160M"]
    kv = kv_heads * (d // heads)
    rows = lambda n: math.ceil(n / 8)  # noqa: E731  (rank 0's Shard(0) rows of 8)
    matrices = layers * (2 * rows(d) * d + 2 * rows(kv) * d + 2 * rows(f) * d + rows(d) * f)
    adamw_tensors = [(vocab, d), (vocab, d), *[(d,)] * (2 * layers + 1)]
    adamw_local = sum(rows(t[0]) * math.prod(t[1:]) for t in adamw_tensors)
    assert matrices + adamw_local == hand_count("160M", 8)["local"]
    muon, gpa_muon = opts["muon"], opts["gpa_muon"]
    assert muon.optimizer_bytes == 4 * matrices + 2 * 4 * adamw_local + 4 * len(adamw_tensors)
    assert muon.optimizer_tensors == 7 * layers + 3 * len(adamw_tensors)
    assert gpa_muon.optimizer_bytes - muon.optimizer_bytes == 4 * hand_count("160M", 8)["local"]  # + z
    assert muon.optimizer_bytes < opts["adamw"].optimizer_bytes < gpa_muon.optimizer_bytes < opts["gpa"].optimizer_bytes
    assert muon.param_bytes == gpa_muon.param_bytes == opts["adamw"].param_bytes


def test_layer_formula_by_hand():
    shape = mp.ModelShape(n_layers=32, dim=4096, n_heads=32, kv_dim=1024, ffn_dim=14336, vocab=128256)
    assert mp.layer_bytes_per_token(shape, "none", 2) == 2 * (6 * 4096 + 2 * 1024 + 3 * 14336) + 8 + 4 * 32
    assert mp.layer_bytes_per_token(shape, "selective", 2) == 2 * (3 * 4096 + 1024 + 14336) + 4 * 32
    assert mp.layer_bytes_per_token(shape, "full", 2) == 2 * 4096
    with pytest.raises(ValueError, match="memory_budget"):
        mp.layer_bytes_per_token(shape, "memory_budget", 2)


def test_activations_fall_with_recomputation_and_grow_with_the_batch(statics):
    for s in statics.values():
        for b in (1, 2, 4):
            none, sel, full = (mp.estimate_activations(s, b, mode, "op").total for mode in mp.AC_MODES)
            assert none > sel > full > 0, s.name
            assert mp.estimate_activations(s, 2 * b, "none").total > none
        # the logits dominate the 128K-vocab models' loss moment
        est = mp.estimate_activations(s, 1, "full")
        assert est.loss >= s.seq_len * s.shape.vocab * mp.LOSS_BYTES_COMPILED


def test_compiled_loss_needs_less_than_eager(statics):
    s = statics["llama_1b_gpa"]
    eager = dataclasses.replace(s, compiled_loss=False)
    assert mp.estimate_activations(eager).loss > mp.estimate_activations(s).loss


def test_search_prefers_fewer_recomputations_then_the_largest_batch(statics):
    s = statics["llama_8b_diloco"]
    assert mp.search(s, gpu_memory_gib=10_000).ac_mode == "none"
    assert mp.search(s, gpu_memory_gib=10_000).local_batch == max(mp.candidate_local_batches(s))
    assert mp.search(s, gpu_memory_gib=20) is None  # the static memory alone does not fit
    assert not mp.plan(s, 1, "none", gpu_memory_gib=35).fits()
    tight = mp.search(s, gpu_memory_gib=35)
    assert tight is not None and tight.ac_mode in ("selective", "full") and tight.fits()
    assert mp.candidate_local_batches(s) == [1, 2, 4, 8]  # 512 sequences over 64 GPUs


@pytest.mark.parametrize("size", SHAPES)
def test_paper_configs_fit_with_headroom_and_are_the_search_choice(statics, size):
    opts = by_size(statics, size)
    largest = max(opts.values(), key=lambda s: s.static_bytes)
    assert largest.optimizer == "DiLoCo-AdamW"
    choice = mp.search(largest)
    for s in opts.values():
        p = mp.plan(s)
        assert p.fits(mp.DEFAULT_HEADROOM), f"{s.name}: {p.total_bytes / mp.GIB:.1f} GiB"
        assert (s.ac_mode, s.local_batch) == (choice.ac_mode, choice.local_batch), s.name
        assert p.grad_accumulation is not None  # the global batch stays divisible
        header = open(s.config).read()
        assert "# " + mp.header_line(p) + "\n" in header, f"{s.name}: run python scripts/make_configs.py"


def run_script(capsys, *argv: str) -> list[str]:
    path = os.path.join(REPO, "scripts", "memory_plan.py")
    spec = importlib.util.spec_from_file_location("memory_plan_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(list(argv)) == 0
    return capsys.readouterr().out.rstrip("\n").split("\n")


def test_script_prints_one_row_per_config(statics, capsys):
    lines = run_script(capsys)
    assert lines[0].startswith("| config | GPUs |") and "headroom of 80 GiB" in lines[0]
    assert [line.split("|")[1].strip() for line in lines[2:]] == list(statics)
    assert not torch.distributed.is_initialized()  # measured in a child process
    search = run_script(capsys, "--search", "--gpu-memory-gib", "80")
    assert len(search) == 2 + len(statics) and all("none, local batch" in line for line in search[2:])


def test_readme_block_is_the_output_of_the_script(capsys):
    text = open(os.path.join(REPO, "README.md")).read()
    match = re.search(r"<!-- memory-plan: output of `([^`]+)` -->\n(.*?)\n<!-- /memory-plan -->", text, re.S)
    assert match, "README.md has no <!-- memory-plan --> block"
    assert match.group(1) == "python scripts/memory_plan.py"
    assert match.group(2) == "\n".join(run_script(capsys)), "run python scripts/memory_plan.py and paste its output"
