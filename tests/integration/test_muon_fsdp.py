"""On 2 CPU ranks (gloo), Muon and GPA-Muon on FSDP2-sharded parameters (uneven and empty shards),
and Muon on other DTensor placements, give the weights of one plain process, with two all_to_alls per step that
move the bytes ``communication_bytes_per_step`` predicts."""

import json
import os

from helpers import REPO, run, torchrun_cmd

WORKER = os.path.join(REPO, "tests", "integration", "muon_fsdp_worker.py")
# Same gradients: the same bfloat16 Newton-Schulz inputs, so the same bits. Backward through FSDP2:
# float-rounding differences in the gradients, which bfloat16 Newton-Schulz may turn into one
# bfloat16 step (2^-8 relative) of an update entry, times lr 0.02.
TOLERANCE = {"fsdp2 same grads": 0.0, "fsdp2 backward": 1e-4, "gpa-muon fsdp2 same grads": 0.0,
             "shard(1) and replicate": 0.0}


def test_two_ranks_match_one_plain_process(tmp_path):
    results_path = tmp_path / "results.json"
    run(torchrun_cmd(2, [WORKER, str(results_path)]), timeout=900)
    results = json.loads(results_path.read_text())
    communication = results.pop("communication")
    assert sorted(results) == sorted(TOLERANCE)
    for name, result in results.items():
        assert result["steps"] == 10, name
        diff = result["max_diff"]
        assert diff <= TOLERANCE[name], f"{name}: sharded and plain weights differ by {diff:.3e}"
    for name in ("fsdp2 same grads", "fsdp2 backward", "gpa-muon fsdp2 same grads"):
        assert results[name]["all_to_all_calls"] == 2 * 10, name  # shards to owners, results back
        assert results[name]["bytes_sent_per_step"] == communication["sent"][0], name
    assert results["shard(1) and replicate"]["all_to_all_calls"] == 0  # gathered or local instead
