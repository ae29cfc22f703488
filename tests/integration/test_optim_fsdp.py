"""On 2 CPU ranks (gloo), FSDP2-sharded optimizers and replicated (tensor-parallel) parameters
with Partial gradients give the same weights as one plain process."""

import json
import os

from helpers import REPO, run, torchrun_cmd

WORKER = os.path.join(REPO, "tests", "integration", "distributed_optimizer_worker.py")
CASES = (
    "GPAAdamW fused", "GPAAdamW foreach", "GPAAdamW triton", "DiLoCoAdamW fused", "DiLoCoAdamW foreach",
    "ScheduleFreeAdamW fused", "TP partial grads GPAAdamW fused", "TP partial grads GPAAdamW foreach",
    "TP partial grads DiLoCoAdamW fused", "TP partial grads ScheduleFreeAdamW fused",
)
TOL = 2e-6


def test_two_ranks_match_one_plain_process(tmp_path):
    results_path = tmp_path / "results.json"
    run(torchrun_cmd(2, [WORKER, str(results_path)]), timeout=900)
    results = json.loads(results_path.read_text())
    assert sorted(results) == sorted(CASES)
    for name, result in results.items():
        assert result["steps"] == 10, name
        assert result["max_diff"] <= TOL, f"{name}: sharded and unsharded weights differ by {result['max_diff']:.3e}"
