"""On 2 CPU ranks (gloo), the generic GPA on FSDP2-sharded parameters gives the weights of one
plain process; its TorchTitan-style DCP checkpoint (flattened by parameter FQN) loads into one
process (resharding 2 ranks -> 1) with the base's state as the parameters' state; torch's Muon
is refused on sharded parameters."""

import json
import os

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from gpa_titan.optim import GPA
from helpers import REPO, run, torchrun_cmd

WORKER = os.path.join(REPO, "tests", "integration", "gpa_fsdp_worker.py")
TOL = 2e-6
OPTIONS = StateDictOptions(flatten_optimizer_state_dict=True)


def test_two_ranks_match_one_plain_process_and_reshard_to_one(tmp_path):
    results_path, checkpoint = tmp_path / "results.json", tmp_path / "checkpoint"
    run(torchrun_cmd(2, [WORKER, str(results_path), str(checkpoint)]), timeout=900)
    results = json.loads(results_path.read_text())
    assert "handles_sharded_matrices = True" in results.pop("Muon refused")
    assert sorted(results) == ["GPA(AdamW)", "GPA(SGD momentum)"]
    for name, result in results.items():
        assert result["steps"] == 10, name
        assert result["max_diff"] <= TOL, f"{name}: sharded and unsharded weights differ by {result['max_diff']:.3e}"

    # 2 ranks -> 1: load the sharded checkpoint into a plain model and a fresh GPA
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 7), torch.nn.Tanh(), torch.nn.Linear(7, 1))
    opt = GPA(model.parameters(), base="AdamW", lr=3e-2, weight_decay=0.1, betas=(0.9, 0.95), mu_x=0.9, mu_y=0.8)
    state = {"model": get_model_state_dict(model), "optimizer": get_optimizer_state_dict(model, opt, options=OPTIONS)}
    dcp.load(state, checkpoint_id=str(checkpoint), no_dist=True)  # one process, no process group
    set_model_state_dict(model, state["model"])
    set_optimizer_state_dict(model, opt, optim_state_dict=state["optimizer"], options=OPTIONS)
    plain = torch.load(checkpoint / "plain.pt", weights_only=False)
    assert not opt.training and opt.base_optimizer.state is opt.state
    for key, want in plain["optimizer"].items():
        got = state["optimizer"][key]
        if torch.is_tensor(want):
            assert (got - want).abs().max().item() <= TOL, key
        else:
            assert got == want, key
    assert {"state.0.weight.z", "state.0.weight.exp_avg", "state.0.weight.exp_avg_sq",
            "state.0.weight.step"} <= set(plain["optimizer"])
    for p, (name, want) in zip(model.parameters(), plain["model"].items(), strict=True):
        assert (p.detach() - want).abs().max().item() <= TOL, name
