"""Llama flavors on TorchTitan's Llama 3 architecture (``torchtitan.models.llama3.Transformer``).

``FLAVORS`` below is the one table of shapes; each flavor's shape and parameter counts are
printed from it by ``model_table()`` (``python scripts/model_table.py``; the README's model
table is that output, checked by a test), so no copy of the table is kept here. "debug" is the
offline CPU demo's, "small" the CPU convergence benchmark's, "160M" the paper's small model
(Llama 2's 32K tokenizer), "1B" and "8B" Llama 3.2 1B's and Llama 3 8B's shapes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torchtitan.models.llama3 import Transformer, TransformerModelArgs


@dataclass
class LlamaArgs(TransformerModelArgs):
    """TorchTitan's Llama 3 args; ``[model] vocab_size`` (when not -1) overrides the flavor's."""

    def update_from_config(self, job_config, **kwargs) -> None:
        super().update_from_config(job_config, **kwargs)
        vocab_size = getattr(job_config.model, "vocab_size", -1)
        if vocab_size != -1:
            self.vocab_size = vocab_size


def _llama(dim: int, layers: int, heads: int, kv_heads: int, vocab: int, multiple_of: int,
           ffn_dim_multiplier: float | None = None) -> LlamaArgs:
    return LlamaArgs(dim=dim, n_layers=layers, n_heads=heads, n_kv_heads=kv_heads, vocab_size=vocab,
                     multiple_of=multiple_of, ffn_dim_multiplier=ffn_dim_multiplier, rope_theta=500000)


FLAVORS: dict[str, LlamaArgs] = {
    "debug": _llama(dim=128, layers=4, heads=4, kv_heads=2, vocab=1024, multiple_of=64),
    "small": _llama(dim=256, layers=4, heads=4, kv_heads=2, vocab=4096, multiple_of=64),
    "160M": _llama(dim=768, layers=12, heads=12, kv_heads=12, vocab=32000, multiple_of=256, ffn_dim_multiplier=1.5),
    "1B": _llama(dim=2048, layers=16, heads=32, kv_heads=8, vocab=128256, multiple_of=256, ffn_dim_multiplier=1.5),
    "8B": _llama(dim=4096, layers=32, heads=32, kv_heads=8, vocab=128256, multiple_of=1024, ffn_dim_multiplier=1.3),
}


def flavor_args(flavor: str, job_config=None) -> LlamaArgs:
    """A copy of ``FLAVORS[flavor]`` (updated from ``job_config`` when given): the shared
    table itself is never modified."""
    if flavor not in FLAVORS:
        raise ValueError(f"[model] flavor = {flavor!r} is not known; choose one of {sorted(FLAVORS)}")
    args = copy.deepcopy(FLAVORS[flavor])
    if job_config is not None:
        args.update_from_config(job_config)
    return args


def parameter_counts(flavor: str) -> dict[str, int]:
    """Shape and parameter counts of a flavor, from TorchTitan's Transformer on the meta device.
    "non_embedding" excludes the token embedding and the (untied) output projection."""
    args = flavor_args(flavor)
    with torch.device("meta"):
        model = Transformer(args)
    total = sum(p.numel() for p in model.parameters())
    embedding = model.tok_embeddings.weight.numel() + model.output.weight.numel()
    ffn = model.layers["0"].feed_forward.w1.weight.shape[0]
    return dict(
        layers=args.n_layers,
        dim=args.dim,
        heads=args.n_heads,
        kv_heads=args.n_kv_heads or args.n_heads,
        ffn=ffn,
        vocab=args.vocab_size,
        total=total,
        non_embedding=total - embedding,
    )


def model_table() -> str:
    """The README's markdown table of flavors (``python scripts/model_table.py`` prints it)."""
    lines = [
        "| flavor | layers | dim | heads | kv heads | FFN | vocab | total params | non-embedding params |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for flavor in FLAVORS:
        c = parameter_counts(flavor)
        lines.append(
            f"| {flavor} | {c['layers']} | {c['dim']} | {c['heads']} | {c['kv_heads']} | {c['ffn']} | "
            f"{c['vocab']:,} | {c['total'] / 1e6:,.1f}M | {c['non_embedding'] / 1e6:,.1f}M |"
        )
    return "\n".join(lines)
