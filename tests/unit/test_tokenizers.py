"""Tokenizer formats: Hugging Face tokenizer.json, Llama 3 tiktoken, SentencePiece."""

import base64
import gzip
import json
import os

import pytest

from gpa_titan.titan.tokenizers import SentencePieceTokenizer, TikTokenLlama3, load_tokenizer

TEXT = "The green rose plants the seed near the pond."


def test_hugging_face_format(demo_assets):
    tok = load_tokenizer(demo_assets)
    ids = tok.encode(TEXT, add_bos=True, add_eos=True)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert tok.decode(ids[1:-1]) == TEXT


def test_tiktoken_llama3_format(tmp_path):
    # a tiktoken BPE file: the 256 bytes plus a few merges, "base64 rank" per line
    ranks = [bytes([b]) for b in range(256)] + [b"th", b"the", b" the", b"ee", b"ro"]
    path = tmp_path / "tokenizer.model"
    path.write_text("".join(f"{base64.b64encode(t).decode()} {i}\n" for i, t in enumerate(ranks)))
    tok = load_tokenizer(str(tmp_path))
    assert isinstance(tok, TikTokenLlama3)
    assert tok.get_vocab_size() == len(ranks) + 256
    assert (tok.bos_id, tok.eos_id) == (len(ranks), len(ranks) + 1)
    ids = tok.encode(TEXT, add_bos=True, add_eos=True)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id and tok.decode(ids[1:-1]) == TEXT
    assert ranks.index(b" the") in ids


def test_sentencepiece_format(tmp_path, demo_assets):
    import sentencepiece as spm

    with gzip.open(os.path.join(demo_assets, "c4-train.00000-of-00001.json.gz"), "rt") as f:
        sentences = [json.loads(line)["text"] for line in f][:400]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_prefix=str(tmp_path / "sp"), vocab_size=200,
        bos_id=1, eos_id=2, unk_id=0, pad_id=-1,
    )
    tok = load_tokenizer(str(tmp_path / "sp.model"))
    assert isinstance(tok, SentencePieceTokenizer)
    assert tok.get_vocab_size() == 200
    ids = tok.encode(TEXT, add_bos=True, add_eos=True)
    assert ids[0] == 1 and ids[-1] == 2 and tok.decode(ids[1:-1]) == TEXT


def test_missing_tokenizer_says_how_to_get_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="download_tokenizer.py"):
        load_tokenizer(str(tmp_path))
