"""Runs that cannot silently go wrong: divergence stops the run without a non-finite
checkpoint, the final model is always validated, tensor parallelism validates."""

import glob
import os
import subprocess

import torch
import torch.distributed.checkpoint as dcp

from helpers import REPO, VAL_LOSS, process_env, run_trainer, scalars, tiny_args, trainer_cmd


def test_divergence_stops_the_run_and_keeps_only_finite_checkpoints(tmp_path, demo_assets):
    dump = str(tmp_path / "run")
    args = tiny_args(dump, demo_assets, 60, "--optimizer.lr", "100", "--lr_scheduler.warmup_steps", "40",
                     "--checkpoint.interval", "3", "--checkpoint.keep_latest_k", "2")
    proc = subprocess.run(trainer_cmd(1, args), cwd=REPO, env=process_env(), capture_output=True, text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out[-3000:]
    assert proc.stderr.count("error: training diverged:") == 1 and "Traceback" not in proc.stderr, out[-3000:]
    steps = sorted(int(p.rsplit("-", 1)[1]) for p in glob.glob(os.path.join(dump, "checkpoint", "step-*")))
    assert steps, "the run wrote no checkpoint before diverging: the test proves nothing"
    for step in steps:  # every checkpoint on disk holds finite weights
        reader = dcp.FileSystemReader(os.path.join(dump, "checkpoint", f"step-{step}"))
        metadata = reader.read_metadata()
        keys = [k for k in metadata.state_dict_metadata if k.startswith("model.") or "." in k][:3]
        state = {k: torch.empty(metadata.state_dict_metadata[k].size) for k in keys
                 if hasattr(metadata.state_dict_metadata[k], "size")}
        dcp.load(state, storage_reader=reader)
        assert all(torch.isfinite(v).all() for v in state.values()), f"step-{step} holds non-finite weights"
    losses = scalars(dump, "loss_metrics/global_avg_loss")
    assert max(losses) < 60 and all(v == v for v in losses.values()), "no non-finite loss was logged"


def test_the_final_model_is_validated_whatever_the_interval(tmp_path, demo_assets):
    dump = str(tmp_path / "run")
    proc = run_trainer(1, tiny_args(dump, demo_assets, 12, "--checkpoint.no-enable"))
    assert sorted(scalars(dump, VAL_LOSS)) == [1, 10, 12]
    out = proc.stdout + proc.stderr
    assert "Run complete at step 12/12" in out
    assert "validation loss: final" in out and f"plot: python scripts/plot_runs.py {dump}" in out
    assert "step 12/12, ETA" in out


def test_tensor_parallel_run_validates(tmp_path, demo_assets):
    """TP degree 2 on 2 gloo ranks, loss parallel on: the validation loss is a DTensor."""
    dump = str(tmp_path / "run")
    run_trainer(2, tiny_args(dump, demo_assets, 12, "--checkpoint.no-enable",
                             "--parallelism.tensor_parallel_degree", "2",
                             "--parallelism.data_parallel_shard_degree", "1"))
    val = scalars(dump, VAL_LOSS)
    assert sorted(val) == [1, 10, 12] and val[12] < val[1]
