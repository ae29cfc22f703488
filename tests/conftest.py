import math
import os
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))


def warmup_cosine(step: int, total: int, peak: float, warmup_frac: float = 0.1) -> float:
    """The paper's schedule: linear warmup over 10% of the steps, then cosine to 0."""
    warmup = max(1, int(total * warmup_frac))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


class QuadraticProblem:
    """Gradients g_t(w) = a * (w - c) + noise_t, fixed per step, so they never vanish
    (AdamW's direction stays well conditioned) yet depend on where they are taken."""

    shapes = [(16, 8), (8,), (4, 4, 3), (33,)]

    def __init__(self, steps: int, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.init = [torch.randn(s, generator=gen) for s in self.shapes]
        self.a = [torch.rand(s, generator=gen, dtype=torch.float64) * 1.5 + 0.5 for s in self.shapes]
        self.c = [torch.randn(s, generator=gen, dtype=torch.float64) for s in self.shapes]
        self.noise = [[0.5 * torch.randn(s, generator=gen, dtype=torch.float64) for s in self.shapes] for _ in range(steps)]

    def grads(self, weights, t: int):
        return [
            (a * (w.to(torch.float64) - c) + n).to(w.dtype)
            for w, a, c, n in zip(weights, self.a, self.c, self.noise[t])
        ]


@pytest.fixture
def problem():
    return QuadraticProblem(steps=120)
