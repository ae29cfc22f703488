"""TorchTitan command-line overrides for the short runs this repo launches itself (the
convergence benchmark, the tests), on top of ``configs/debug_cpu.toml``, and the paper's
schedule (linear warmup over 10% of the steps, then cosine to 0)."""

from __future__ import annotations

from gpa_titan.paths import DEBUG_CONFIG

WARMUP_FRACTION = 0.1  # the paper's schedule: linear warmup over 10% of the steps, then cosine


def warmup_steps(steps: int) -> int:
    return max(1, round(WARMUP_FRACTION * steps))


def short_run_args(
    dump: str,
    *,
    data: str,
    tokenizer: str,
    steps: int,
    seq_len: int,
    batch: int,
    val_batches: int,
    val_every: int,
    warmup: int | None = None,
    log_freq: int = 1,
    dataset: str | None = None,
    flavor: str | None = None,
    vocab_size: int | None = None,
    checkpoint_interval: int | None = None,
    seed: int | None = None,
) -> list[str]:
    """Overrides of ``configs/debug_cpu.toml`` for a short run into ``dump``.

    Args:
        dump (str): the run's dump folder.
        data (str): folder of C4-format shards (training and validation).
        tokenizer (str): ``[model] hf_assets_path``.
        steps, seq_len, batch (int): training steps, tokens per sequence, sequences per rank.
        val_batches, val_every (int): the fixed validation set's batches, and how often it runs.
        warmup (int | None, default None): warmup steps (None: 10% of ``steps``).
        log_freq (int, default 1): metrics logging interval.
        dataset (str | None, default None): ``"c4"`` or ``"demo"`` (None: the config's).
        flavor (str | None), vocab_size (int | None): model flavor and vocabulary override.
        checkpoint_interval (int | None, default None): enable checkpoints at this interval
            (None: checkpoints off).
        seed (int | None, default None): ``[debug] seed``.
    """
    args = [
        "--job.config_file", DEBUG_CONFIG,
        "--job.dump_folder", dump,
        "--model.hf_assets_path", tokenizer,
        "--training.dataset_path", data,
        "--validation.dataset_path", data,
        "--training.steps", str(steps),
        "--training.seq_len", str(seq_len),
        "--training.local_batch_size", str(batch),
        "--training.global_batch_size", "-1",
        "--validation.seq_len", str(seq_len),
        "--validation.local_batch_size", str(batch),
        "--validation.steps", str(val_batches),
        "--validation.freq", str(val_every),
        "--lr_scheduler.warmup_steps", str(warmup_steps(steps) if warmup is None else warmup),
        "--lr_scheduler.decay_type", "cosine",
        "--metrics.log_freq", str(log_freq),
        "--metrics.enable_tensorboard",
    ]
    if dataset is not None:
        args += ["--training.dataset", dataset, "--validation.dataset", dataset]
    if flavor is not None:
        args += ["--model.flavor", flavor]
    if vocab_size is not None:
        args += ["--model.vocab_size", str(vocab_size)]
    if checkpoint_interval is None:
        args += ["--checkpoint.no-enable"]
    else:
        args += ["--checkpoint.enable", "--checkpoint.interval", str(checkpoint_interval)]
    if seed is not None:
        args += ["--debug.seed", str(seed)]
    return args
