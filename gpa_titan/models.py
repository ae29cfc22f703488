"""Llama flavors on TorchTitan's Llama 3 architecture (``torchtitan.models.llama3.Transformer``).

| flavor | layers | dim | heads | kv heads | FFN | vocab | meant for |
|---|---|---|---|---|---|---|---|
| debug | 4 | 128 | 4 | 2 | 384 | 1024 | the offline CPU demo and tests |
| small | 4 | 256 | 4 | 2 | 704 | 4096 | the CPU convergence benchmark (~5M parameters) |
| 160M | 12 | 768 | 12 | 12 | 3072 | 32000 | the paper's small model (Llama 2 tokenizer) |
| 1B | 16 | 2048 | 32 | 8 | 8192 | 128256 | Llama 3.2 1B's shape (Llama 3 tokenizer) |
| 8B | 32 | 4096 | 32 | 8 | 14336 | 128256 | Llama 3 8B (Llama 3 tokenizer) |

"160M" counts all parameters with untied 32K embeddings (162.4M; 113.3M without the
embedding and output matrices); the README table has every count, from
``scripts/model_table.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torchtitan.models.llama3 import TransformerModelArgs


@dataclass
class LlamaArgs(TransformerModelArgs):
    """TorchTitan's Llama 3 args; ``[model] vocab_size`` (when not -1) overrides the flavor's."""

    def update_from_config(self, job_config, **kwargs) -> None:
        super().update_from_config(job_config, **kwargs)
        vocab_size = getattr(job_config.model, "vocab_size", -1)
        if vocab_size != -1:
            self.vocab_size = vocab_size


FLAVORS: dict[str, LlamaArgs] = {
    "debug": LlamaArgs(dim=128, n_layers=4, n_heads=4, n_kv_heads=2, vocab_size=1024, multiple_of=64, rope_theta=500000),
    "small": LlamaArgs(dim=256, n_layers=4, n_heads=4, n_kv_heads=2, vocab_size=4096, multiple_of=64, rope_theta=500000),
    "160M": LlamaArgs(
        dim=768, n_layers=12, n_heads=12, n_kv_heads=12, vocab_size=32000, ffn_dim_multiplier=1.5, multiple_of=256, rope_theta=500000
    ),
    "1B": LlamaArgs(
        dim=2048, n_layers=16, n_heads=32, n_kv_heads=8, vocab_size=128256, ffn_dim_multiplier=1.5, multiple_of=256, rope_theta=500000
    ),
    "8B": LlamaArgs(
        dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, vocab_size=128256, ffn_dim_multiplier=1.3, multiple_of=1024, rope_theta=500000
    ),
}
