"""Print the README's table of model flavors: shapes and parameter counts.

    python scripts/model_table.py

Counts come from instantiating TorchTitan's Llama 3 Transformer on the meta device.
"Non-embedding" excludes the token embedding and the (untied) output projection.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from torchtitan.models.llama3 import Transformer  # noqa: E402

from gpa_titan.models import FLAVORS  # noqa: E402


def counts(flavor: str) -> dict:
    args = FLAVORS[flavor]
    with torch.device("meta"):
        model = Transformer(args)
    total = sum(p.numel() for p in model.parameters())
    embedding = model.tok_embeddings.weight.numel() + model.output.weight.numel()
    ffn = model.layers["0"].feed_forward.w1.weight.shape[0]
    return dict(layers=args.n_layers, dim=args.dim, heads=args.n_heads, kv_heads=args.n_kv_heads or args.n_heads,
                ffn=ffn, vocab=args.vocab_size, total=total, non_embedding=total - embedding)


def main() -> None:
    print("| flavor | layers | dim | heads | kv heads | FFN | vocab | total params | non-embedding params |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for flavor in FLAVORS:
        c = counts(flavor)
        print(f"| {flavor} | {c['layers']} | {c['dim']} | {c['heads']} | {c['kv_heads']} | {c['ffn']} | "
              f"{c['vocab']:,} | {c['total'] / 1e6:,.1f}M | {c['non_embedding'] / 1e6:,.1f}M |")


if __name__ == "__main__":
    main()
