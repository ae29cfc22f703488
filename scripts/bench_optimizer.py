"""Optimizer step cost on a Llama-shaped set of parameters.

Prints, for AdamW (foreach, fused), GPA-AdamW and DiLoCo-AdamW: the median time of one
``step()``, its ratio to ``torch.optim.AdamW(fused=True)``, and the optimizer-state
bytes per parameter. DiLoCo's time is the mean over whole H-step periods, so its outer
step is included, amortized.

    python scripts/bench_optimizer.py                       # CPU, ~36M parameters
    python scripts/bench_optimizer.py --device cuda --dim 2048 --layers 16 --vocab 128256
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gpa_titan.optim import DiLoCoAdamW, GPAAdamW


def llama_shapes(dim: int, layers: int, vocab: int, ffn_multiplier: float = 1.5) -> list[tuple[int, ...]]:
    """Parameter shapes of a Llama 3 block stack (untied embeddings, GQA with dim/4 kv)."""
    ffn = int(ffn_multiplier * int(8 * dim / 3))
    ffn = 256 * ((ffn + 255) // 256)
    kv = dim // 4
    shapes: list[tuple[int, ...]] = [(vocab, dim)]
    for _ in range(layers):
        shapes += [(dim, dim), (kv, dim), (kv, dim), (dim, dim), (ffn, dim), (dim, ffn), (ffn, dim), (dim,), (dim,)]
    return shapes + [(dim,), (vocab, dim)]


def make_params(shapes, device, dtype) -> list[torch.nn.Parameter]:
    gen = torch.Generator(device="cpu").manual_seed(0)
    params = []
    for s in shapes:
        p = torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype).to(device))
        p.grad = torch.randn(s, generator=gen, dtype=dtype).to(device)
        params.append(p)
    return params


def state_bytes_per_param(opt: torch.optim.Optimizer, params) -> float:
    n = sum(p.numel() for p in params)
    total = 0
    for p in params:
        for v in opt.state[p].values():
            if torch.is_tensor(v) and v.numel() > 1:
                total += v.numel() * v.element_size()
    return total / n


def time_interleaved(optimizers: dict, device, repeats: int, steps_per_sample: dict) -> dict[str, float]:
    """Median seconds per step for each optimizer, sampled in alternation so that
    drifts in machine load touch every optimizer alike."""

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for name, opt in optimizers.items():  # warm-up (and compilation)
        for _ in range(3 * steps_per_sample[name]):
            opt.step()
    sync()
    samples: dict[str, list[float]] = {name: [] for name in optimizers}
    for _ in range(repeats):
        for name, opt in optimizers.items():
            start = time.perf_counter()
            for _ in range(steps_per_sample[name]):
                opt.step()
            sync()
            samples[name].append((time.perf_counter() - start) / steps_per_sample[name])
    return {name: statistics.median(s) for name, s in samples.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--inner-steps", type=int, default=8, help="DiLoCo H for the benchmark")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    shapes = llama_shapes(args.dim, args.layers, args.vocab)
    n_params = sum(torch.Size(s).numel() for s in shapes)
    print(
        f"# {n_params / 1e6:.1f}M parameters in {len(shapes)} tensors ({args.dtype}) on {device}"
        f" [{torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'},"
        f" {torch.get_num_threads()} threads, torch {torch.__version__}]"
    )
    lr = dict(lr=1e-4)  # small: the weights stay finite over many repeated steps
    candidates = [
        ("AdamW foreach", lambda ps: torch.optim.AdamW(ps, foreach=True, **lr), 1),
        ("AdamW fused", lambda ps: torch.optim.AdamW(ps, fused=True, **lr), 1),
        ("GPA-AdamW fused", lambda ps: GPAAdamW(ps, implementation="fused", **lr), 1),
        ("GPA-AdamW foreach", lambda ps: GPAAdamW(ps, implementation="foreach", **lr), 1),
        (
            f"DiLoCo-AdamW fused (H={args.inner_steps})",
            lambda ps: DiLoCoAdamW(ps, implementation="fused", inner_steps=args.inner_steps, **lr),
            args.inner_steps,
        ),
    ]
    optimizers, per_sample, param_lists = {}, {}, {}
    for name, build, steps in candidates:
        param_lists[name] = make_params(shapes, device, dtype)
        optimizers[name] = build(param_lists[name])
        per_sample[name] = steps
    seconds = time_interleaved(optimizers, device, args.repeats, per_sample)
    # after the warm-up steps, so that torch's lazily created AdamW state is counted
    bytes_per_param = {name: state_bytes_per_param(opt, param_lists[name]) for name, opt in optimizers.items()}
    rows = [(name, seconds[name], bytes_per_param[name]) for name in optimizers]
    baseline = dict((r[0], r[1]) for r in rows)["AdamW fused"]
    print("| optimizer | median step (ms) | vs fused AdamW | state bytes/param |")
    print("|---|---:|---:|---:|")
    for name, seconds, bpp in rows:
        print(f"| {name} | {seconds * 1e3:.2f} | {seconds / baseline:.2f}x | {bpp:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
