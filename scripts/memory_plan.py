"""Per-GPU memory of the paper configs at their GPU counts: parameters, gradients and optimizer
state measured from the real FSDP2 shards (meta device, fake process group), activations
estimated (formula and sources: gpa_titan/titan/memory_plan.py). GiB throughout.

    python scripts/memory_plan.py                    # one row per configs/llama_*.toml, as configured
    python scripts/memory_plan.py --search           # per config: the largest local batch that fits
                                                     # per AC mode, and the fewest-recomputation choice
    python scripts/memory_plan.py configs/llama_8b_gpa.toml --local-batch 8 --ac full
    python scripts/memory_plan.py configs/debug_cpu.toml --nodes 1 --gpus-per-node 2

A config is planned on NODES[flavor] nodes of 8 GPUs (160M: 1, 1B: 2, 8B: 8; HSDP, replicate
degree = nodes) unless --nodes is given. "Fits" means at least --headroom of the GPU stays free.
"""

from __future__ import annotations

import argparse

from gpa_titan.titan.memory_plan import (
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
    ap.add_argument("--local-batch", type=int, help="plan this local batch instead of the config's")
    ap.add_argument("--ac", choices=AC_MODES, help="plan this activation checkpointing mode instead of the config's")
    ap.add_argument("--nodes", type=int, help="nodes for every config (default: by flavor, see above)")
    ap.add_argument("--gpus-per-node", type=int, default=GPUS_PER_NODE, help="default %(default)s")
    args = ap.parse_args(argv)
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
