"""FSDP2 on 2 CPU ranks (gloo) gives the same weights as one unsharded process."""

import os

from helpers import REPO, torchrun


def test_fsdp2_two_ranks_match_unsharded():
    out = torchrun(2, [os.path.join(REPO, "tests", "dist", "fsdp_optimizer_worker.py")], timeout=900)
    assert "FSDP2 OK" in out.stdout, out.stdout
    for name in ("GPAAdamW fused", "GPAAdamW foreach", "DiLoCoAdamW fused", "DiLoCoAdamW foreach", "ScheduleFreeAdamW fused"):
        assert f"{name}: sharded == unsharded" in out.stdout
