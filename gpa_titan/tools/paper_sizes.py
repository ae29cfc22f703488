"""The paper configs' hardware and size table (no TorchTitan): one entry per model size, read by
``scripts/make_configs.py`` (the configs) and the memory plan (``NODES``, ``GPUS_PER_NODE``)."""

from __future__ import annotations

import math

from gpa_titan.optim.table4 import PAPER_MU_Y, PAPER_STEPS

GPUS_PER_NODE = 8
GPU = "H100 80GB"
HSDP = "(HSDP: shard within a node, replicate across nodes)"

# One entry per model size: the paper's setup where it gives one (see the comments).
# local_batch and ac: `python scripts/memory_plan.py --search`, the fewest recomputations that
# fit in 80 GiB with 10% free for DiLoCo-AdamW (the largest optimizer state), shared by all
# optimizers of a size (three; five at 160M, with Muon and GPA-Muon) so that a diff shows only the
# optimizer (tests/integration/test_memory_plan.py checks that they are still the search's choice).
SIZES = {
    "160m": dict(
        flavor="160M",
        nodes=1,
        paper=f"Llama-160M: 3.2B tokens, 128 x 2048 tokens per step, {PAPER_STEPS} steps (paper, Sec. 4)",
        tokenizer="./assets/tokenizer/llama2",
        tokenizer_note="Llama 2's 32K SentencePiece vocabulary (a 128K one would dominate a 160M model)",
        global_batch=128,
        local_batch=16,
        steps=PAPER_STEPS,
        lr=3e-3,
        betas=(0.9, 0.95),
        mu_y=PAPER_MU_Y,
        ac="none",
        val_freq=500,
        val_steps=20,
        ckpt_interval=1000,
    ),
    "1b": dict(
        flavor="1B",
        nodes=2,
        paper="Llama-1B: 50B tokens, 256 x 2048 tokens per step (paper, Sec. 4); AdamW betas (0.975, 0.95)",
        tokenizer="./assets/tokenizer/llama3",
        tokenizer_note="Llama 3's 128K tokenizer",
        global_batch=256,
        local_batch=16,
        steps=math.ceil(50e9 / (256 * 2048)),
        lr=1e-3,
        betas=(0.975, 0.95),
        mu_y=PAPER_MU_Y,
        ac="none",
        val_freq=1000,
        val_steps=20,
        ckpt_interval=2000,
    ),
    "8b": dict(
        flavor="8B",
        nodes=8,
        paper=(
            "Llama-8B: the paper gives no recipe we could use; ours is Chinchilla-style, 20 tokens "
            "per parameter (160B tokens) at 512 x 2048 = 1M tokens per step, Llama 3's 8B shape, "
            "lr 3e-4 as in Llama 3 8B pretraining"
        ),
        tokenizer="./assets/tokenizer/llama3",
        tokenizer_note="Llama 3's 128K tokenizer",
        global_batch=512,
        local_batch=4,
        steps=math.ceil(160e9 / (512 * 2048)),
        lr=3e-4,
        betas=(0.9, 0.95),
        mu_y=PAPER_MU_Y,
        ac="none",
        val_freq=2000,
        val_steps=10,
        ckpt_interval=1000,
    ),
}



def hardware(nodes: int) -> str:
    """A config's hardware line, e.g. "2 nodes x 8 H100 80GB (HSDP: ...)"."""
    return f"{nodes} node{'s' if nodes > 1 else ''} x {GPUS_PER_NODE} {GPU}" + (f" {HSDP}" if nodes > 1 else "")


for _size in SIZES.values():
    _size["hardware"] = hardware(_size["nodes"])
NODES = {size["flavor"]: size["nodes"] for size in SIZES.values()}  # the paper configs' nodes by flavor
