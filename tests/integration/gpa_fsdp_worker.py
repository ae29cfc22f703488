"""Run under `torchrun --nproc_per_node=2 gpa_fsdp_worker.py RESULTS.json CHECKPOINT_DIR`: the
generic GPA (``gpa_titan.optim.GPA``) on FSDP2 DTensors vs. one plain copy, on 2 gloo ranks.

Every rank trains the same tiny MLP, sharded with FSDP2 (an uneven and an empty shard
included), and an unsharded copy on the full batch; after every step, in train and in eval
mode, the largest difference between the two sets of weights is measured. A non-elementwise
base (torch's Muon) must be refused on the sharded parameters. The GPA-over-AdamW run is then
checkpointed the way TorchTitan does (DCP, optimizer state flattened by parameter FQN, in eval
mode) into CHECKPOINT_DIR, and rank 0 writes the plain copy's weights and optimizer state next
to it (``plain.pt``), for the test to load the 2-rank checkpoint into 1 process and compare.
"""

import json
import os
import sys

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard

from gpa_titan.optim import GPA

CASES = {
    "GPA(AdamW)": dict(base="AdamW", lr=3e-2, weight_decay=0.1, betas=(0.9, 0.95), mu_x=0.9, mu_y=0.8),
    "GPA(SGD momentum)": dict(base="SGD", lr=3e-2, momentum=0.9, weight_decay=0.01, mu_x=0.99, mu_y=0.5),
}
CHECKPOINTED = "GPA(AdamW)"
STEPS = 10
OPTIONS = StateDictOptions(flatten_optimizer_state_dict=True)


def build():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 7),  # 7 rows over 2 ranks: uneven shards
        torch.nn.Tanh(),
        torch.nn.Linear(7, 1),  # 1 row: rank 1's shard is empty
    )


def shard(model, mesh):
    for layer in (model[0], model[2]):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.set_force_sum_reduction_for_comms(True)  # gloo has no AVG/PREMUL_SUM
    return model


def full(t):
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def main(results_path: str, checkpoint_dir: str) -> int:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    data = torch.randn(STEPS, 8, 6, generator=torch.Generator().manual_seed(1))
    target = torch.randn(STEPS, 8, 1, generator=torch.Generator().manual_seed(2))
    per_rank = data.shape[1] // world
    results = {}
    for name, hp in CASES.items():
        sharded, plain = shard(build(), mesh), build()
        opt, plain_opt = GPA(sharded.parameters(), **hp), GPA(plain.parameters(), **hp)
        worst = 0.0
        for t in range(STEPS):
            lo, hi = rank * per_rank, (rank + 1) * per_rank
            torch.nn.functional.mse_loss(sharded(data[t, lo:hi]), target[t, lo:hi]).backward()
            opt.step()
            opt.zero_grad()
            torch.nn.functional.mse_loss(plain(data[t]), target[t]).backward()
            plain_opt.step()
            plain_opt.zero_grad()
            for mode in ("train", "eval"):
                getattr(opt, mode)()
                getattr(plain_opt, mode)()
                got = [full(p.detach()) for p in sharded.parameters()]
                want = [p.detach() for p in plain.parameters()]
                worst = max(worst, max((a - b).abs().max().item() for a, b in zip(got, want, strict=True)))
            opt.train()
            plain_opt.train()
        results[name] = {"max_diff": worst, "steps": STEPS}
        if name == CHECKPOINTED:
            opt.eval()
            plain_opt.eval()
            state = {"model": get_model_state_dict(sharded), "optimizer": get_optimizer_state_dict(sharded, opt,
                                                                                                 options=OPTIONS)}
            dcp.save(state, checkpoint_id=checkpoint_dir)
            if rank == 0:
                torch.save({"model": plain.state_dict(), "optimizer": get_optimizer_state_dict(
                    plain, plain_opt, options=OPTIONS)}, os.path.join(checkpoint_dir, "plain.pt"))
    try:
        GPA([p for p in shard(build(), mesh).parameters() if p.ndim == 2], base="Muon")
        results["Muon refused"] = ""
    except ValueError as error:
        results["Muon refused"] = str(error)
    if rank == 0:
        with open(results_path, "w") as f:
            json.dump(results, f, indent=2)
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as distributed_optimizer_worker.py: no C++ static destructors after gloo
