"""The shared grid (``scripts/bench_convergence.py`` without ``--study`` / ``--confirm``): every
optimizer at every ``--lrs`` x ``--inner-steps`` x ``--seeds``, the best lr per (optimizer, H)
by final validation loss, compared with AdamW's (``results.md``, ``results.json``,
``validation_loss.png``). A run folder is named by optimizer, H, lr and seed only; it is
reused only if it holds exactly this grid's run of it (``launcher.run_or_reuse``)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from gpa_titan.analysis.report import write_report
from gpa_titan.analysis.setting import SettingRuns, best_by_final_loss
from gpa_titan.optim.registry import OPTIMIZERS, STUDIED_OPTIMIZERS

from .launcher import BenchError, ensure_tokenizer, log, optimizer_cli, run_env, run_or_reuse
from .run_args import short_run_args


def run_name(optimizer: str, h: int | None, lr: float, seed: int) -> str:
    return f"{optimizer}" + (f"_H{h}" if h else "") + f"_lr{lr:g}_seed{seed}"


def grid_fields(a, optimizer: str, h: int | None, lr: float) -> dict:
    fields = {"name": optimizer, "lr": lr, "beta1": 0.9, "beta2": 0.95, "weight_decay": 0.1}
    spec = OPTIMIZERS[optimizer]
    # the study's fixed choices where they are not the class default (Muon: lr on AdamW's scale)
    fields |= {key: value for key, value in spec.fixed_in_studies.items() if value != spec.default(key)}
    if spec.takes_inner_steps:
        fields |= spec.h_fields(h, a.mu)
        chosen = dict(mu_y=a.mu_y, outer_lr=a.outer_lr, outer_momentum=a.mu)
        fields |= {key: value for key, value in chosen.items() if key in spec.fields}
    return fields


def grid_run_args(a, dump: str, tokenizer: str, optimizer: str, h: int | None, lr: float, seed: int) -> list[str]:
    """The trainer's arguments for one run of the grid (the whole setting: a rerun with another
    ``--mu-y`` or batch is another run, although its folder name is the same)."""
    return short_run_args(
        dump, data=a.data, tokenizer=tokenizer, steps=a.steps, seq_len=a.seq_len, batch=a.batch,
        val_batches=a.val_batches, val_every=a.val_every, log_freq=a.val_every, dataset="c4", flavor=a.flavor,
        vocab_size=a.vocab_size, seed=seed,
    ) + optimizer_cli(grid_fields(a, optimizer, h, lr))


def run_grid(a) -> int:
    optimizers = a.optimizers or list(STUDIED_OPTIMIZERS)
    os.makedirs(a.out, exist_ok=True)
    tokenizer = ensure_tokenizer(a.data, a.out, a.vocab_size, a.tokenizer_docs)
    env = run_env(a.device, None if a.threads_per_run == 0 else a.threads_per_run)
    plan = []
    for optimizer in optimizers:
        for h in (a.inner_steps if OPTIMIZERS[optimizer].takes_inner_steps else [None]):
            for lr in a.lrs:
                for seed in a.seeds:
                    plan.append((optimizer, h, lr, seed))

    def one(item):
        optimizer, h, lr, seed = item
        dump = os.path.join(a.out, "runs", run_name(optimizer, h, lr, seed))
        args = grid_run_args(a, dump, tokenizer, optimizer, h, lr, seed)
        result = run_or_reuse(dump, args, a.steps, env, lambda: log(f"{run_name(optimizer, h, lr, seed)} ..."))
        if result.diverged:
            raise BenchError(f"run {dump} diverged")
        return item, result.curve

    settings: dict[tuple, SettingRuns] = {}
    try:
        with ThreadPoolExecutor(max_workers=a.jobs) as pool:
            finished = list(pool.map(one, plan))
    except BenchError as e:
        raise SystemExit(f"error: {e}") from None
    for (optimizer, h, lr, _seed), curve in finished:
        fields = {k: v for k, v in grid_fields(a, optimizer, h, lr).items() if k != "name"}
        settings.setdefault((optimizer, h, lr), SettingRuns(optimizer, fields, a.steps)).curves.append(curve)

    best = best_by_final_loss(list(settings.values()))
    info = (f"{a.flavor} Llama, {a.steps} steps x {a.batch} x {a.seq_len} tokens = "
            f"{a.steps * a.batch * a.seq_len / 1e6:.2f}M tokens, seeds {a.seeds}, lr grid {a.lrs}, "
            f"data {os.path.basename(a.data.rstrip('/'))}, {a.device}")
    all_settings = [dict(optimizer=s.optimizer, inner_steps=s.h_column, lr=s.lr, finals=s.finals)
                    for s in settings.values()]
    baseline = "AdamW" if "AdamW" in optimizers else None  # without it: no speedup columns
    setup = {k: v for k, v in vars(a).items() if k not in ("study", "confirm")}
    table = write_report(a.out, best, info, baseline=baseline, extra={"setup": setup, "all_settings": all_settings})
    print(info)
    print(table)
    return 0
