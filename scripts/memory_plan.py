"""Per-GPU memory of the paper configs at their GPU counts: parameters, gradients and optimizer
state measured from the real FSDP2 shards (meta device, fake process group), activations
estimated (formula and sources: gpa_titan/tools/memory_plan.py). GiB throughout.

    python scripts/memory_plan.py                    # one row per configs/llama_*.toml, as configured
    python scripts/memory_plan.py --search           # per config: the largest local batch that fits
                                                     # per AC mode, and the fewest-recomputation choice
    python scripts/memory_plan.py configs/llama_8b_gpa.toml --local-batch 8 --ac full
    python scripts/memory_plan.py configs/debug_cpu.toml --nodes 1 --gpus-per-node 2

A config is planned on NODES[flavor] nodes of 8 GPUs (160M: 1, 1B: 2, 8B: 8; HSDP, replicate
degree = nodes) unless --nodes is given. "Fits" means at least --headroom of the GPU stays free.
Numbers out of range (GPU memory <= 0, headroom outside [0, 1), batch, nodes or GPUs < 1), a
missing config, or a flag --search would ignore is one error line with exit code 2.
"""

from __future__ import annotations

import argparse
import math
import os

from gpa_titan.tools.memory_plan import (
    AC_MODES,
    DEFAULT_GPU_MEMORY_GIB,
    DEFAULT_HEADROOM,
    GPUS_PER_NODE,
    measure_configs,
    paper_configs,
    plan,
    plan_table,
    search_table,
)


def count(text: str) -> int:
    """An argparse type for a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1; give one, e.g. 8")
    return value


def check_arguments(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Out-of-range numbers, missing configs and flags that would be ignored: ``ap.error`` (exit 2)."""
    if not (args.gpu_memory_gib > 0 and math.isfinite(args.gpu_memory_gib)):
        ap.error(f"--gpu-memory-gib {args.gpu_memory_gib:g}: give the memory of one GPU in GiB, a positive number "
                 f"(e.g. --gpu-memory-gib {DEFAULT_GPU_MEMORY_GIB:g} for an H100 80GB)")
    if not 0 <= args.headroom < 1:
        ap.error(f"--headroom {args.headroom:g}: give the fraction of the GPU to leave free, in [0, 1) "
                 f"(e.g. --headroom {DEFAULT_HEADROOM:g})")
    if args.search and (args.local_batch is not None or args.ac is not None):
        flag = "--local-batch" if args.local_batch is not None else "--ac"
        ap.error(f"{flag} with --search would be ignored: --search chooses the local batch and AC mode itself; "
                 f"remove {flag}, or drop --search to plan that choice")
    if not args.search and args.headroom != DEFAULT_HEADROOM:
        ap.error(f"--headroom {args.headroom:g} is used only by --search (the plan table shows each choice's "
                 "headroom); add --search, or remove --headroom")
    for config in args.configs:
        if not os.path.isfile(config):
            ap.error(f"{config}: no such config file; give TOML configs, e.g. configs/llama_8b_gpa.toml, or none "
                     "for the paper configs")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="*", help="config files (default: the paper configs, configs/llama_*.toml)")
    ap.add_argument("--gpu-memory-gib", type=float, default=DEFAULT_GPU_MEMORY_GIB,
                    help="memory per GPU in GiB (default %(default)g)")
    ap.add_argument("--headroom", type=float, default=DEFAULT_HEADROOM,
                    help="fraction of the GPU a choice must leave free to fit (default %(default)g)")
    ap.add_argument("--search", action="store_true",
                    help="per config and AC mode, the largest local batch that fits, and the choice with "
                         "the fewest recomputations")
    ap.add_argument("--local-batch", type=count, help="plan this local batch instead of the config's")
    ap.add_argument("--ac", choices=AC_MODES, help="plan this activation checkpointing mode instead of the config's")
    ap.add_argument("--nodes", type=count, help="nodes for every config (default: by flavor, see above)")
    ap.add_argument("--gpus-per-node", type=count, default=GPUS_PER_NODE, help="default %(default)s")
    args = ap.parse_args(argv)
    check_arguments(ap, args)
    try:
        statics = measure_configs(args.configs or paper_configs(), args.nodes, args.gpus_per_node)
    except RuntimeError as e:  # the measuring process failed: its error, without our traceback
        ap.exit(2, f"memory_plan.py: {str(e).splitlines()[0]}\n")
    if args.search:
        print(search_table(statics, args.gpu_memory_gib, args.headroom))
    else:
        print(plan_table([plan(s, args.local_batch, args.ac, args.gpu_memory_gib) for s in statics]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
