"""Reading a run's dump folder: its curves from TensorBoard or W&B offline files, and its config."""

from __future__ import annotations

import glob
import json
import os

from gpa_titan.runs import RUN_INFO, read_run_info

VAL_LOSS = "validation_metrics/loss"
TRAIN_LOSS = "loss_metrics/global_avg_loss"


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


def run_config(run_dir: str) -> dict:
    """The resolved config a gpa_titan run recorded in ``run_info.json``."""
    info = read_run_info(run_dir)
    if info is None:
        raise FileNotFoundError(f"{run_dir}: no {RUN_INFO} (not a gpa_titan dump folder?)")
    return info["config"]
