"""Tokenizers behind TorchTitan's ``BaseTokenizer`` interface, chosen by what the path holds.

``[model] hf_assets_path`` may name:

- a folder with ``tokenizer.json`` (Hugging Face format, e.g. Llama 3's or the demo's):
  TorchTitan's own ``HuggingFaceTokenizer``;
- a ``tokenizer.model`` in Meta's original Llama 3 tiktoken format (base64 token + rank
  per line), or a folder holding one (also under ``original/``): ``TikTokenLlama3``;
- a SentencePiece ``.model`` (e.g. Llama 2's 32K vocabulary), or a folder holding
  ``tokenizer.model`` in that format: ``SentencePieceTokenizer``.

``scripts/download_tokenizer.py`` fetches the Llama 3 / Llama 2 files from the hub.
"""

from __future__ import annotations

import os

from torchtitan.components.tokenizer import BaseTokenizer, HuggingFaceTokenizer

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_NUM_RESERVED_SPECIAL = 256


class TikTokenLlama3(BaseTokenizer):
    """Meta's original Llama 3 ``tokenizer.model`` (tiktoken BPE + 256 special tokens).

    Args:
        path (str): the ``tokenizer.model`` file.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        ranks = load_tiktoken_bpe(path)
        n = len(ranks)
        names = [
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|reserved_special_token_0|>",
            "<|reserved_special_token_1|>",
            "<|finetune_right_pad_id|>",
            "<|step_id|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eom_id|>",
            "<|eot_id|>",
            "<|python_tag|>",
        ]
        names += [f"<|reserved_special_token_{i}|>" for i in range(2, 2 + LLAMA3_NUM_RESERVED_SPECIAL - len(names))]
        self.special = {name: n + i for i, name in enumerate(names)}
        self.model = tiktoken.Encoding(
            name=os.path.basename(path), pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks, special_tokens=self.special
        )
        self.bos_id = self.special["<|begin_of_text|>"]
        self.eos_id = self.special["<|end_of_text|>"]

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = False) -> list[int]:
        ids = self.model.encode(text, disallowed_special=())
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: list[int]) -> str:
        return self.model.decode(ids)

    def get_vocab_size(self) -> int:
        return self.model.n_vocab


class SentencePieceTokenizer(BaseTokenizer):
    """A SentencePiece model such as Llama 2's 32K-token ``tokenizer.model``.

    Args:
        path (str): the ``.model`` file.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        import sentencepiece as spm

        self.model = spm.SentencePieceProcessor(model_file=path)
        self.bos_id, self.eos_id = self.model.bos_id(), self.model.eos_id()
        if self.bos_id < 0 or self.eos_id < 0:
            raise ValueError(f"SentencePiece model {path} defines no BOS/EOS token; train it with bos_id/eos_id set")

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = False) -> list[int]:
        ids = self.model.encode(text)
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: list[int]) -> str:
        return self.model.decode(ids)

    def get_vocab_size(self) -> int:
        return self.model.vocab_size()


def _is_sentencepiece(path: str) -> bool:
    # tiktoken files are text lines "base64 rank"; SentencePiece models are protobuf binaries.
    with open(path, "rb") as f:
        head = f.read(256)
    try:
        first = head.decode("ascii").splitlines()[0].split()
        return not (len(first) == 2 and first[1].isdigit())
    except (UnicodeDecodeError, IndexError):
        return True


def load_tokenizer(path: str) -> BaseTokenizer:
    """The tokenizer at ``path`` (see the module doc), or an error that says what to do."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "tokenizer.json")):
            return HuggingFaceTokenizer(path)
        for candidate in (os.path.join(path, "tokenizer.model"), os.path.join(path, "original", "tokenizer.model")):
            if os.path.exists(candidate):
                return load_tokenizer(candidate)
    elif os.path.isfile(path) and path.endswith(".model"):
        return SentencePieceTokenizer(path) if _is_sentencepiece(path) else TikTokenLlama3(path)
    raise FileNotFoundError(
        f"[model] hf_assets_path = {path!r} holds no tokenizer (tokenizer.json, tokenizer.model, or "
        "original/tokenizer.model). Fetch one with `python scripts/download_tokenizer.py "
        "--repo meta-llama/Llama-3.1-8B --out assets/tokenizer/llama3` (needs HF_TOKEN), or fix the path."
    )
