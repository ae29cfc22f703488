"""FSDP2 on 2 CPU ranks (gloo) gives the same weights as one unsharded process."""

import json
import os

from helpers import REPO, run, torchrun_cmd

WORKER = os.path.join(REPO, "tests", "integration", "fsdp_optimizer_worker.py")
CASES = ("GPAAdamW fused", "GPAAdamW foreach", "DiLoCoAdamW fused", "DiLoCoAdamW foreach", "ScheduleFreeAdamW fused")
TOL = 2e-6


def test_fsdp2_two_ranks_match_unsharded(tmp_path):
    results_path = tmp_path / "results.json"
    run(torchrun_cmd(2, [WORKER, str(results_path)]), timeout=900)
    results = json.loads(results_path.read_text())
    assert sorted(results) == sorted(CASES)
    for name, result in results.items():
        assert result["steps"] == 10, name
        assert result["max_diff"] <= TOL, f"{name}: sharded and unsharded weights differ by {result['max_diff']:.3e}"
