"""Reading runs and reporting them as the paper does: final validation loss, steps to
reach AdamW's final validation loss, speedup, and validation curves.

Used by ``scripts/bench_convergence.py`` and ``scripts/plot_runs.py``.
"""

from __future__ import annotations

import glob
import json
import math
import os
import statistics
from dataclasses import dataclass, field

VAL_LOSS = "validation_metrics/loss"
TRAIN_LOSS = "loss_metrics/global_avg_loss"


# ---------------------------------------------------------------------- reading logs
def read_tensorboard(run_dir: str, tag: str) -> dict[int, float]:
    """step -> value of ``tag`` from every TensorBoard file under ``run_dir`` (later files win,
    so a resumed run's values replace those it repeats)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[int, float] = {}
    paths = glob.glob(os.path.join(run_dir, "**", "events.out.tfevents.*"), recursive=True)
    for path in sorted(paths, key=os.path.getmtime):
        acc = EventAccumulator(path, size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            for event in acc.Scalars(tag):
                out[event.step] = event.value
    return out


def _wandb_records(path: str):
    """The raw records of a W&B run file: a 7-byte header (":W&B", magic, version), then
    LevelDB-log framing: 32 KiB blocks of records (crc32, length, type) with FULL, or
    FIRST/MIDDLE/LAST pieces of longer records."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # the rest of a block is zero padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            yield pending + chunk


def read_wandb_offline(run_dir: str, tag: str) -> dict[int, float]:
    """step -> value of ``tag`` from W&B offline run files (``*.wandb``) under ``run_dir``."""
    from wandb.proto import wandb_internal_pb2

    out: dict[int, float] = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "**", "*.wandb"), recursive=True)):
        for raw in _wandb_records(path):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(raw)
            if record.WhichOneof("record_type") != "history":
                continue
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            if tag in items and "_step" in items:
                out[int(items["_step"])] = float(items[tag])
    return out


def read_curve(run_dir: str, tag: str = VAL_LOSS) -> dict[int, float]:
    """The curve of ``tag`` from TensorBoard logs, or else from W&B offline files."""
    curve = read_tensorboard(run_dir, tag)
    return curve if curve else read_wandb_offline(run_dir, tag)


# ---------------------------------------------------------------------- speedup
def steps_to_reach(curve: dict[int, float], target: float) -> float | None:
    """The first step at which the loss curve reaches ``target``, interpolating linearly
    between evaluation points; None if it never does."""
    points = sorted(curve.items())
    if not points:
        return None
    if points[0][1] <= target:
        return float(points[0][0])
    for (s0, l0), (s1, l1) in zip(points, points[1:]):
        if l1 <= target:
            return s0 + (s1 - s0) * (l0 - target) / (l0 - l1)
    return None


def speedup_percent(steps_needed: float | None, baseline_steps: float) -> float | None:
    """How many fewer steps than the baseline, in percent (None: target never reached)."""
    if steps_needed is None:
        return None
    return 100.0 * (1.0 - steps_needed / baseline_steps)


def mean_curve(curves: list[dict[int, float]]) -> dict[int, float]:
    """Pointwise mean over seeds at the evaluation steps they all have."""
    steps = set.intersection(*(set(c) for c in curves)) if curves else set()
    return {s: statistics.fmean(c[s] for c in curves) for s in sorted(steps)}


# ---------------------------------------------------------------------- summary
@dataclass
class Setting:
    """One optimizer configuration (all seeds) and its curves."""

    optimizer: str
    inner_steps: int | None
    lr: float
    curves: list[dict[int, float]] = field(default_factory=list)

    @property
    def finals(self) -> list[float]:
        return [c[max(c)] for c in self.curves]

    @property
    def final_mean(self) -> float:
        return statistics.fmean(self.finals)

    @property
    def final_std(self) -> float:
        return statistics.stdev(self.finals) if len(self.finals) > 1 else 0.0

    @property
    def label(self) -> str:
        return self.optimizer + (f" (H={self.inner_steps})" if self.inner_steps else "")


def best_by_final_loss(settings: list[Setting]) -> dict[tuple[str, int | None], Setting]:
    """For every (optimizer, H), the learning rate with the lowest mean final loss."""
    best: dict[tuple[str, int | None], Setting] = {}
    for s in settings:
        key = (s.optimizer, s.inner_steps)
        if key not in best or s.final_mean < best[key].final_mean:
            best[key] = s
    return best


def results_table(best: dict[tuple[str, int | None], Setting], baseline: str = "AdamW") -> tuple[str, list[dict]]:
    """The markdown table (and its rows) with speedups against the baseline's final loss."""
    base = [s for (name, _), s in best.items() if name == baseline]
    if not base:
        raise ValueError(f"no {baseline} runs to compare against")
    base_curve = mean_curve(base[0].curves)
    target, base_steps = base_curve[max(base_curve)], float(max(base_curve))
    rows = []
    for (name, h), s in sorted(best.items(), key=lambda kv: (kv[0][0] != baseline, kv[0][0], kv[0][1] or 0)):
        # the baseline defines the target at its last step (an earlier dip of a noisy curve
        # below its own final value does not count as a speedup of the baseline)
        needed = base_steps if name == baseline else steps_to_reach(mean_curve(s.curves), target)
        rows.append(dict(
            optimizer=name, inner_steps=h, lr=s.lr, final_mean=s.final_mean, final_std=s.final_std,
            seeds=len(s.curves), steps_to_target=needed, speedup=speedup_percent(needed, base_steps),
        ))
    lines = [
        "| optimizer | H | lr | final val loss (mean ± std) | seeds | steps to AdamW's final loss | speedup |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        steps = "not reached" if r["steps_to_target"] is None else f"{r['steps_to_target']:.0f}"
        speed = "—" if r["speedup"] is None else f"{r['speedup']:+.1f}%"
        h = "—" if r["inner_steps"] is None else str(r["inner_steps"])
        lines.append(
            f"| {r['optimizer']} | {h} | {r['lr']:g} | {r['final_mean']:.4f} ± {r['final_std']:.4f} | "
            f"{r['seeds']} | {steps} | {speed} |"
        )
    return "\n".join(lines), rows


def plot_curves(best: dict[tuple[str, int | None], Setting], path: str, title: str) -> None:
    """Validation loss against steps, one curve per optimizer (mean over seeds, ±1 std band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    lowest = math.inf
    for (_, _), s in sorted(best.items(), key=lambda kv: kv[1].label):
        mean = mean_curve(s.curves)
        steps = sorted(mean)
        ys = [mean[k] for k in steps]
        line = ax.plot(steps, ys, label=f"{s.label}, lr {s.lr:g}")[0]
        if len(s.curves) > 1:
            std = [statistics.stdev(c[k] for c in s.curves) for k in steps]
            ax.fill_between(steps, [y - d for y, d in zip(ys, std)], [y + d for y, d in zip(ys, std)],
                            color=line.get_color(), alpha=0.2)
        lowest = min(lowest, min(ys))
    if lowest < math.inf:
        top = max(max(mean_curve(s.curves)[k] for k in sorted(mean_curve(s.curves))[len(mean_curve(s.curves)) // 4:])
                  for s in best.values())
        ax.set_ylim(lowest - 0.05 * (top - lowest + 1e-9), top)
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss")
    import textwrap

    ax.set_title("\n".join(textwrap.wrap(title, 80)), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
