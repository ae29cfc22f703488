"""Writes every TOML in configs/ from one table, so the files cannot drift apart.

    python scripts/make_configs.py            # rewrite configs/*.toml
    python scripts/make_configs.py --check    # exit 1 if a committed file differs

Every file has the same sections and keys in the same order, so ``diff`` between two
configs shows only what differs. Edit this script, not the TOMLs (a test checks).
"""

from __future__ import annotations

import argparse
import os
import shlex
import tempfile
from collections.abc import Sequence

from gpa_titan.optim import DiLoCoAdamW, GPAAdamW
from gpa_titan.optim.muon import Muon
from gpa_titan.optim.registry import OPTIMIZERS as REGISTRY
from gpa_titan.optim.registry import default_of
from gpa_titan.optim.table4 import PAPER_MU, PAPER_STEPS, diloco_to_gpa
from gpa_titan.paths import CONFIG_DIR, TUNED_SETTINGS
from gpa_titan.study.run_args import warmup_steps
from gpa_titan.study.spec import knobs_for_run_length, optimizer_fields
from gpa_titan.study.tuned import load_tuned_settings
from gpa_titan.tools import memory_plan
from gpa_titan.tools.paper_sizes import GPUS_PER_NODE, SIZES

# every size's optimizers (short name -> [optimizer] name), and those only the 160M size has a config of
PAPER_OPTIMIZERS = ("AdamW", "GPA-AdamW", "DiLoCo-AdamW")
SMALL_ONLY_OPTIMIZERS = ("Muon", "GPA-Muon")  # not in the paper: one size to try them at
OPTIMIZERS = {REGISTRY[name].config_key: name for name in (*PAPER_OPTIMIZERS, *SMALL_ONLY_OPTIMIZERS)}
COUNT_WORDS = {3: "three", 5: "five"}


def optimizers_of(size: str) -> list[str]:
    """The short names of the optimizers that ``size`` has a config of."""
    names = (*PAPER_OPTIMIZERS, *SMALL_ONLY_OPTIMIZERS) if size == "160m" else PAPER_OPTIMIZERS
    return [REGISTRY[name].config_key for name in names]


# Table 4: mu_x = mu ** (1 / H); the paper's GPA runs use H = 32, mu = 0.9 -> 0.9967
PAPER_H = 32
GPA_MU_X = round(diloco_to_gpa(PAPER_H, PAPER_MU)[0], 4)
if GPA_MU_X != default_of(GPAAdamW, "mu_x") or default_of(DiLoCoAdamW, "inner_steps") != PAPER_H:
    raise SystemExit("the optimizers' defaults no longer follow the paper's H = 32: update this script")
# the comment beside an [optimizer] field in every config (the fields and their defaults: the registry's)
FIELD_NOTES = {
    "mu_x": f"GPA: Table 4, mu = {PAPER_MU} and H = {PAPER_H} -> {PAPER_MU}**(1/{PAPER_H})",
    "mu_y": "GPA: the paper uses 0.9 or 0.8",
    "inner_steps": "DiLoCo: H",
    "momentum": "Muon: its momentum (Muon and GPA-Muon)",
    "nesterov": "Muon: Nesterov momentum",
    "ns_steps": "Muon: Newton-Schulz iterations",
    "adjust_lr_fn": 'Muon: "original" (torch\'s) or "match_rms_adamw" (one lr suits Muon and AdamW)',
    "adamw_lr": "Muon: lr of embeddings, output and norms (AdamW); -1: lr",
    "adamw_weight_decay": "Muon: their weight decay; -1: weight_decay",
}
# the Muon configs' lr adjustment: Moonshot's, under which the size's AdamW lr suits the Muon matrices
# and the AdamW parameters alike (torch's default "original" wants a Muon lr near 0.02 instead)
MUON_ADJUST_LR_FN = "match_rms_adamw"


def optimizer_fields_section(**values) -> dict:
    """The fields of the configs' optimizers (``OPTIMIZERS``), in the registry's order, each at the
    optimizer's default unless given in ``values``, with its ``FIELD_NOTES`` comment; every config
    has them all, so that a diff shows only what differs."""
    out = {}
    for name in OPTIMIZERS.values():
        spec = REGISTRY[name]
        for field in spec.fields:
            if field in out:  # shared with an earlier optimizer (GPA-Muon's mu_x: GPA-AdamW's)
                continue
            value = values[field] if field in values else spec.default(field)
            out[field] = (value, FIELD_NOTES[field]) if field in FIELD_NOTES else value
    return out


# The sweep each paper config's header asks for before a long run: lr at x0.5, x1, x2 of the
# config's; GPA also over mu_y (the CPU study's choice was far below the paper's 0.9) and the
# averaging window (Table 4's H; H = 8 and 32 are windows of 0.6% and 2.5% of a PAPER_STEPS-step run);
# DiLoCo over H.
SWEEP_MU_Y = (0.2, 0.5, 0.8, 0.9)
SWEEP_H = (8, 32)
SWEEP_DILOCO_H = (8, 32, 64)
SWEEP_LR_FACTORS = (0.5, 1.0, 2.0)
CARRY = {"gpa": "mu_y and H", "diloco": "H"}  # what a larger size takes from the 160M sweep
AVERAGED = ("gpa", "gpa_muon")  # swept over mu_y and H


def sweep_command(size: str, opt_key: str) -> tuple[list[str], int]:
    """The ``scripts/sweep.py`` command line to run first for ``configs/llama_<size>_<opt_key>.toml``,
    and its number of runs."""
    s = SIZES[size]
    name = f"llama_{size}_{opt_key}"
    lrs = [float(f"{s['lr'] * f:.3g}") for f in SWEEP_LR_FACTORS]
    cmd = ["python", "scripts/sweep.py", "--config", f"configs/{name}.toml", "--name", f"{name}_first"]
    runs = len(lrs)
    if opt_key in AVERAGED:
        cmd += ["--mu-y", ",".join(map(str, SWEEP_MU_Y)), "--inner-steps", ",".join(map(str, SWEEP_H))]
        runs *= len(SWEEP_MU_Y) * len(SWEEP_H)
    elif opt_key == "diloco":
        cmd += ["--inner-steps", ",".join(map(str, SWEEP_DILOCO_H))]
        runs *= len(SWEEP_DILOCO_H)
    cmd += ["--lr", ",".join(map(str, lrs)), "--nodes", str(s["nodes"])]
    return cmd, runs


def fmt(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        return repr(value)
    return str(value)


def render(header: list[str], sections: dict[str, dict]) -> str:
    lines = [f"# {h}" if h else "#" for h in header]
    for name, keys in sections.items():
        lines += ["", f"[{name}]"]
        for key, value in keys.items():
            if isinstance(value, tuple):  # (value, comment)
                lines.append(f"{key} = {fmt(value[0])}  # {value[1]}")
            else:
                lines.append(f"{key} = {fmt(value)}")
    return "\n".join(lines) + "\n"


DATASET_PATH_NOTES = {
    "c4": "empty: stream allenai/c4 from the hub; else a folder of C4 shards",
    "demo": 'the demo corpus is generated here; for a folder of C4 shards set dataset = "c4" too',
}


def sections(*, dump, description, flavor, tokenizer, optimizer, lr, betas, mu_y, adjust_lr_fn, warmup, steps,
             dataset, dataset_path, global_batch, local_batch, seq_len, dtype_param, ckpt, ckpt_interval,
             ac, compile_, val_batch, val_freq, val_steps, tensorboard, log_freq) -> dict[str, dict]:
    return {
        "job": dict(dump_folder=dump, description=description, custom_config_module="gpa_titan.titan.job_config"),
        "metrics": dict(log_freq=log_freq, enable_tensorboard=tensorboard, enable_wandb=False),
        "model": dict(name="gpa_llama3", flavor=flavor, hf_assets_path=tokenizer),
        "optimizer": dict(
            name=optimizer,
            lr=lr,
            beta1=betas[0],
            beta2=betas[1],
            eps=1e-8,
            weight_decay=0.1,
            implementation="fused",
            **optimizer_fields_section(mu_x=GPA_MU_X, mu_y=mu_y, adjust_lr_fn=adjust_lr_fn),
        ),
        "lr_scheduler": dict(warmup_steps=(warmup, "10% of the steps"), decay_type="cosine", min_lr_factor=0.0),
        "training": dict(
            dataset=dataset,
            dataset_path=(dataset_path, DATASET_PATH_NOTES[dataset]),
            global_batch_size=(global_batch, "sequences per step, whatever the GPU count"),
            local_batch_size=local_batch,
            seq_len=seq_len,
            max_norm=1.0,
            steps=steps,
            dtype="float32",
            mixed_precision_param=dtype_param,
        ),
        "parallelism": dict(
            data_parallel_replicate_degree=(1, "slurm/train.sbatch sets it to the node count (HSDP)"),
            data_parallel_shard_degree=-1,
        ),
        "checkpoint": dict(
            enable=ckpt,
            folder="checkpoint",
            interval=ckpt_interval,
            keep_latest_k=3,
            last_save_model_only=(True, "the final export holds the evaluation weights only"),
        ),
        "activation_checkpoint": dict(mode=ac, selective_ac_option="op"),
        "compile": dict(enable=compile_),
        "validation": dict(
            enable=True,
            dataset=dataset,
            dataset_path=dataset_path,
            local_batch_size=val_batch,
            seq_len=seq_len,
            freq=val_freq,
            steps=(val_steps, "a fixed set: this many batches per rank, the same every time"),
        ),
        "experimental": dict(custom_import="gpa_titan.titan.spec"),
        "debug": dict(seed=0),
    }


def paper_config(size: str, opt_key: str, memory: Sequence[str] = ()) -> tuple[str, str]:
    s = SIZES[size]
    name = f"llama_{size}_{opt_key}.toml"
    sweep, runs = sweep_command(size, opt_key)
    tokens_per_step = s["global_batch"] * 2048
    warmup = warmup_steps(s["steps"])
    gpus = GPUS_PER_NODE * s["nodes"]
    header = [
        f"Llama-{s['flavor']} on C4 with {OPTIMIZERS[opt_key]}. Hardware: {s['hardware']}.",
        f"Setup: {s['paper']}.",
        f"Tokens: {s['global_batch']} x 2048 = {tokens_per_step:,} per step x {s['steps']:,} steps = "
        f"{tokens_per_step * s['steps'] / 1e9:.2f}B tokens; warmup {warmup:,} steps (10%), cosine to 0.",
        f"Tokenizer: {s['tokenizer_note']} (python scripts/download_tokenizer.py --help).",
        *memory,
        *(["lr: our choice where the paper's text gives none we could verify; mu_x and mu_y (GPA), H (DiLoCo):",
            f"the paper's. Sweep first ({runs} runs as one Slurm array; add --dry-run to list them):"]
          if "muon" not in opt_key else
          ["lr: the AdamW config's (our choice); mu_x and mu_y (GPA-Muon): the paper's GPA values. Muon is not in",
           "the paper: torch.optim.Muon's momentum 0.95, Nesterov and 5 Newton-Schulz steps on the hidden matrices,",
           f"AdamW on embeddings, output and norms; adjust_lr_fn {MUON_ADJUST_LR_FN}, so that one lr suits both.",
           f"Untuned at this scale. Sweep first ({runs} runs as one Slurm array; add --dry-run to list them):"]),
        "  " + shlex.join(sweep),
        *([] if size == "160m" or opt_key == "adamw" else [
            f"  (costly at this size: sweep the 160M config first, then carry {CARRY[opt_key]} over, H as the",
            f"  same share of the run: H x {s['steps']:,} / {PAPER_STEPS:,}; python scripts/table4.py maps H to "
            "mu_x)"]),
        "Launch:",
        f"  one node:  NGPU={min(gpus, GPUS_PER_NODE)} CONFIG_FILE=configs/{name} bash scripts/run_train.sh",
        f"  Slurm:     sbatch --nodes={s['nodes']} slurm/train.sbatch configs/{name}",
        "Generated by scripts/make_configs.py: edit that, not this file.",
    ]
    body = sections(
        dump=f"./outputs/llama_{size}_{opt_key}",
        description=f"Llama-{s['flavor']} C4 {OPTIMIZERS[opt_key]}",
        flavor=s["flavor"],
        tokenizer=s["tokenizer"],
        optimizer=OPTIMIZERS[opt_key],
        lr=s["lr"],
        betas=s["betas"],
        mu_y=s["mu_y"],
        adjust_lr_fn=MUON_ADJUST_LR_FN if "muon" in opt_key else default_of(Muon, "adjust_lr_fn"),
        warmup=warmup,
        steps=s["steps"],
        dataset="c4",
        dataset_path="",
        global_batch=s["global_batch"],
        local_batch=s["local_batch"],
        seq_len=2048,
        dtype_param="bfloat16",
        ckpt=True,
        ckpt_interval=s["ckpt_interval"],
        ac=s["ac"],
        compile_=True,
        val_batch=s["local_batch"],
        val_freq=s["val_freq"],
        val_steps=s["val_steps"],
        tensorboard=True,
        log_freq=10,
    )
    return name, render(header, body)


DEMO_STEPS = 400
DEMO_BATCH, DEMO_SEQ_LEN = 8, 128  # sequences per rank and step, tokens per sequence


def demo_gpa() -> dict:
    """GPA-AdamW's settings for the demo: the CPU study's tuned lr, betas and mu_y, and its
    averaging window as the same share of the run (Table 4's H scaled from the study's length)."""
    tuned = load_tuned_settings(TUNED_SETTINGS)
    study_steps, knobs = tuned["setup"]["steps"], tuned["methods"]["GPA-AdamW"]["knobs"]
    scaled = knobs_for_run_length("GPA-AdamW", knobs, study_steps, DEMO_STEPS)
    opt = optimizer_fields("GPA-AdamW", scaled, tuned["setup"])
    return dict(lr=opt["lr"], betas=(opt["beta1"], opt["beta2"]), mu_y=opt["mu_y"], mu_x=opt["mu_x"],
                study_h=knobs["H"], study_steps=study_steps, h=scaled["H"])


def debug_config() -> tuple[str, str]:
    gpa = demo_gpa()
    window = 1 / (1 - gpa["mu_x"])
    tokens_per_step = DEMO_BATCH * DEMO_SEQ_LEN
    header = [
        "Offline demo: a ~1M-parameter Llama on a generated corpus with GPA-AdamW. Hardware: any CPU",
        "(2 cores: under 2 minutes) or one GPU. Nothing is downloaded: the corpus and tokenizer are",
        "generated into assets/demo on first use.",
        f"Tokens: {DEMO_BATCH} x {DEMO_SEQ_LEN} = {tokens_per_step:,} per step x {DEMO_STEPS} steps = "
        f"{DEMO_STEPS * tokens_per_step / 1e6:.2f}M tokens; warmup {warmup_steps(DEMO_STEPS)} steps, cosine to 0.",
        "GPA-AdamW settings: the CPU tuning study's (docs/results/tuned.json; README, Convergence benchmark):",
        f"  lr, betas and mu_y as tuned there; its H = {gpa['study_h']:g} over {gpa['study_steps']:,} steps is "
        f"scaled to this run's length, H = {gpa['h']:.2f}",
        f"  (a window of {window:.1f} steps, {window / DEMO_STEPS:.1%} of the run). Small-scale values: "
        "the paper configs keep the paper's.",
        "Launch:",
        "  python -m gpa_titan.train --job.config_file configs/debug_cpu.toml",
        "  torchrun --nproc_per_node=2 -m gpa_titan.train --job.config_file configs/debug_cpu.toml",
        "  other optimizers: --optimizer.name AdamW | ScheduleFree-AdamW | DiLoCo-AdamW --optimizer.inner_steps 8",
        "  (their tuned lr and betas are in docs/results/tuned.json); also --optimizer.name Muon | GPA-Muon (not tuned",
        "  on this demo yet)",
        "Generated by scripts/make_configs.py: edit that, not this file.",
    ]
    body = sections(
        dump="./outputs/debug_cpu",
        description="gpa_titan offline CPU demo",
        flavor="debug",
        tokenizer="./assets/demo",
        optimizer="GPA-AdamW",
        lr=gpa["lr"],
        betas=gpa["betas"],
        mu_y=gpa["mu_y"],
        adjust_lr_fn=default_of(Muon, "adjust_lr_fn"),
        warmup=warmup_steps(DEMO_STEPS),
        steps=DEMO_STEPS,
        dataset="demo",
        dataset_path="./assets/demo",
        global_batch=-1,
        local_batch=DEMO_BATCH,
        seq_len=DEMO_SEQ_LEN,
        dtype_param="float32",
        ckpt=False,
        ckpt_interval=100,
        ac="none",
        compile_=False,
        val_batch=DEMO_BATCH,
        val_freq=50,
        val_steps=4,
        tensorboard=True,
        log_freq=20,
    )
    body["optimizer"]["mu_x"] = (gpa["mu_x"],
                                 f"GPA: Table 4, mu = {PAPER_MU} and H = {gpa['h']:.2f} (the study's, scaled)")
    body["optimizer"]["mu_y"] = (gpa["mu_y"], f"GPA: the study's (the paper uses 0.9 or 0.8 at {PAPER_STEPS:,} steps)")
    body["training"]["global_batch_size"] = (-1, "local_batch_size x ranks")
    return "debug_cpu.toml", render(header, body)


def memory_lines() -> dict[str, list[str]]:
    """Each paper config's header lines from the memory plan (measured in one child process;
    the header does not change what is measured)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for size in SIZES:
            for opt_key in optimizers_of(size):
                name, text = paper_config(size, opt_key)
                paths[name] = os.path.join(tmp, name)
                with open(paths[name], "w") as f:
                    f.write(text)
        statics = dict(zip(paths, memory_plan.measure_configs(paths.values())))
    largest = {}  # flavor -> the optimizer with the most static memory, which the batch shape is chosen for
    count: dict[str, int] = {}  # flavor -> its configs
    for s in statics.values():
        count[s.flavor] = count.get(s.flavor, 0) + 1
        if s.flavor not in largest or s.static_bytes > largest[s.flavor].static_bytes:
            largest[s.flavor] = s
    return {
        name: [
            memory_plan.header_line(memory_plan.plan(s)),
            f"  AC and local batch: the fewest recomputations that fit with "
            f"{memory_plan.DEFAULT_HEADROOM:.0%} of the GPU free for {largest[s.flavor].optimizer} (the",
            f"  largest optimizer state), shared by the {COUNT_WORDS[count[s.flavor]]} optimizers (python "
            "scripts/memory_plan.py --search).",
        ]
        for name, s in statics.items()
    }


def all_configs() -> dict[str, str]:
    out = dict([debug_config()])
    memory = memory_lines()
    for size in SIZES:
        for opt_key in optimizers_of(size):
            name, text = paper_config(size, opt_key, memory[f"llama_{size}_{opt_key}.toml"])
            out[name] = text
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with configs/ instead of writing")
    args = ap.parse_args()
    stale = []
    for name, text in all_configs().items():
        path = os.path.join(CONFIG_DIR, name)
        if args.check:
            if not os.path.exists(path) or open(path).read() != text:
                stale.append(name)
        else:
            with open(path, "w") as f:
                f.write(text)
    if stale:
        print("out of date (run python scripts/make_configs.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
