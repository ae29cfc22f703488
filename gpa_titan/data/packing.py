"""Tokenize documents and pack them into fixed-length training sequences."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.distributed.checkpoint.stateful import Stateful
from torch.utils.data import IterableDataset, get_worker_info


class PackedTokenDataset(IterableDataset, Stateful):
    """Documents -> tokens (with BOS/EOS) -> windows of ``seq_len + 1`` tokens.

    Yields ``({"input": tokens[:-1]}, tokens[1:])`` as TorchTitan's trainer expects. The
    state (the document source's position and the leftover tokens) is saved with the
    dataloader in every checkpoint, so a resume continues with the very next window.

    Args:
        make_source (Callable[[int, int], source]): builds the document source for
            (reader index, number of readers); called lazily in the worker that iterates.
        tokenizer: TorchTitan tokenizer (``encode(text, add_bos=, add_eos=)``).
        seq_len (int): tokens per training sequence.
        rank (int), world (int): data-parallel rank and size; dataloader workers split further.
    """

    def __init__(self, make_source: Callable, tokenizer, seq_len: int, rank: int, world: int) -> None:
        self.make_source, self.tokenizer, self.seq_len = make_source, tokenizer, seq_len
        self.rank, self.world = rank, world
        self._source = None
        self._buffer: list[int] = []
        self._pending_state: dict[str, Any] | None = None

    def _get_source(self):
        if self._source is None:
            info = get_worker_info()
            workers, worker = (info.num_workers, info.id) if info else (1, 0)
            self._source = self.make_source(self.rank * workers + worker, self.world * workers)
            if self._pending_state is not None:
                self._source.load_state_dict(self._pending_state)
                self._pending_state = None
        return self._source

    def __iter__(self) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        window = self.seq_len + 1
        for text in self._get_source():
            self._buffer.extend(self.tokenizer.encode(text, add_bos=True, add_eos=True))
            while len(self._buffer) >= window:
                x = torch.tensor(self._buffer[:window], dtype=torch.long)
                self._buffer = self._buffer[window:]
                yield {"input": x[:-1]}, x[1:]

    def state_dict(self) -> dict[str, Any]:
        source_state = self._source.state_dict() if self._source is not None else self._pending_state
        return {"source": source_state, "buffer": list(self._buffer)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._buffer = list(state["buffer"])
        self._source = None
        self._pending_state = state["source"]
