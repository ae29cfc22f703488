"""Optimizer step cost on a Llama-shaped set of parameters.

Prints, for AdamW (foreach, fused), GPA-AdamW, DiLoCo-AdamW, Muon and GPA-Muon: the median
time of one ``step()``, its ratio to ``torch.optim.AdamW(fused=True)``, the optimizer-state
bytes per parameter, and for the elementwise optimizers the achieved memory bandwidth (the
bytes a step must move at the least, divided by its time) next to the device's peak. Muon
(2-D hidden weights; AdamW on the embedding, the head and the norms) is bound by its
Newton-Schulz matrix products, not by memory: GPA-Muon is shown against Muon, and the bytes
each rank sends per step when the Muon matrices are FSDP2-sharded are printed below the table.
DiLoCo's time is the mean over whole H-step periods, so its outer step is included, amortized. On CUDA each optimizer is
built, timed and freed in turn, so the 1.5B set below fits one 80 GB GPU.

    python scripts/bench_optimizer.py                       # CPU, ~36M parameters
    python scripts/bench_optimizer.py --device cuda --dim 2048 --layers 16 --vocab 128256
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gpa_titan.optim import DiLoCoAdamW, GPAAdamW, GPAMuon, Muon
from gpa_titan.optim.muon import communication_bytes_per_step, uses_muon


def llama_shapes(dim: int, layers: int, vocab: int, ffn_multiplier: float = 1.5) -> list[tuple[int, ...]]:
    """Parameter shapes of a Llama 3 block stack (untied embeddings, GQA with dim/4 kv)."""
    ffn = int(ffn_multiplier * int(8 * dim / 3))
    ffn = 256 * ((ffn + 255) // 256)
    kv = dim // 4
    shapes: list[tuple[int, ...]] = [(vocab, dim)]
    for _ in range(layers):
        shapes += [(dim, dim), (kv, dim), (kv, dim), (dim, dim), (ffn, dim), (dim, ffn), (ffn, dim), (dim,), (dim,)]
    return shapes + [(dim,), (vocab, dim)]


def llama_names(layers: int) -> list[str]:
    """TorchTitan Llama's parameter names, in ``llama_shapes``'s order (Muon splits by them)."""
    block = ["attention.wq", "attention.wk", "attention.wv", "attention.wo", "feed_forward.w1", "feed_forward.w2",
             "feed_forward.w3", "attention_norm", "ffn_norm"]
    names = ["tok_embeddings"] + [f"layers.{i}.{n}" for i in range(layers) for n in block] + ["norm", "output"]
    return [f"{n}.weight" for n in names]


def make_params(shapes, device, dtype) -> list[torch.nn.Parameter]:
    gen = torch.Generator(device=device).manual_seed(0)  # drawn on the device: 1.5B values in milliseconds
    params = []
    for s in shapes:
        p = torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype, device=device))
        p.grad = torch.randn(s, generator=gen, dtype=dtype, device=device)
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


# Bytes each step must move at the least, per parameter element and per byte of its dtype:
# AdamW reads p, g, m, v and writes p, m, v (7 streams); GPA-AdamW also reads and writes z (9);
# DiLoCo is AdamW between outer steps, and its outer step moves inner, outer and momentum
# (read 3, write 3) once every H steps.
STREAMS = {"AdamW": 7.0, "GPA-AdamW": 9.0}
PEAK_BANDWIDTH_TBS = {"H100 80GB HBM3": 3.35, "H100 SXM": 3.35, "H100 PCIe": 2.0, "H100 NVL": 3.9, "H200": 4.8,
                      "A100-SXM4-80GB": 2.04, "A100-SXM4-40GB": 1.56, "A100 80GB PCIe": 1.94}


def streams(name: str, inner_steps: int) -> float:
    if name.startswith("DiLoCo"):
        return STREAMS["AdamW"] + 6.0 / inner_steps
    return STREAMS["GPA-AdamW" if name.startswith("GPA") else "AdamW"]


def peak_bandwidth_tbs(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tbs for key, tbs in PEAK_BANDWIDTH_TBS.items() if key in name), None)


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(opt, device, repeats: int, steps_per_sample: int) -> float:
    """Median seconds per step of one optimizer over ``repeats`` samples (after a warm-up)."""
    for _ in range(3 * steps_per_sample):  # warm-up (and kernel compilation)
        opt.step()
    sync(device)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps_per_sample):
            opt.step()
        sync(device)
        samples.append((time.perf_counter() - start) / steps_per_sample)
    return statistics.median(samples)


def time_interleaved(optimizers: dict, device, repeats: int, steps_per_sample: dict) -> dict[str, float]:
    """Median seconds per step for each optimizer, sampled in alternation so that
    drifts in machine load touch every optimizer alike (CPU: all sets fit in memory)."""
    for name, opt in optimizers.items():  # warm-up
        for _ in range(3 * steps_per_sample[name]):
            opt.step()
    sync(device)
    samples: dict[str, list[float]] = {name: [] for name in optimizers}
    for _ in range(repeats):
        for name, opt in optimizers.items():
            start = time.perf_counter()
            for _ in range(steps_per_sample[name]):
                opt.step()
            sync(device)
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
    ap.add_argument("--one-at-a-time", action=argparse.BooleanOptionalAction, default=None,
                    help="build, time and free one optimizer at a time (default on CUDA, so that the 1.5B set "
                         "fits one 80 GB GPU); otherwise all are built and sampled in alternation")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    one_at_a_time = device.type == "cuda" if args.one_at_a_time is None else args.one_at_a_time
    shapes = llama_shapes(args.dim, args.layers, args.vocab)
    names = llama_names(args.layers)
    n_params = sum(torch.Size(s).numel() for s in shapes)
    peak = peak_bandwidth_tbs(device)
    print(
        f"# {n_params / 1e6:.1f}M parameters in {len(shapes)} tensors ({args.dtype}) on {device}"
        f" [{torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'},"
        f" {torch.get_num_threads()} threads, torch {torch.__version__}]"
        f"; peak memory bandwidth {f'{peak:.2f} TB/s' if peak else 'unknown'}"
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
        ("Muon", lambda ps: Muon(list(zip(names, ps)), **lr), 1),
        ("GPA-Muon", lambda ps: GPAMuon(list(zip(names, ps)), **lr), 1),
    ]
    seconds, bytes_per_param = {}, {}
    if one_at_a_time:
        for name, build, steps in candidates:
            params = make_params(shapes, device, dtype)
            opt = build(params)
            seconds[name] = time_steps(opt, device, args.repeats, steps)
            bytes_per_param[name] = state_bytes_per_param(opt, params)
            del opt, params
            if device.type == "cuda":
                torch.cuda.empty_cache()
    else:
        optimizers, per_sample, param_lists = {}, {}, {}
        for name, build, steps in candidates:
            param_lists[name] = make_params(shapes, device, dtype)
            optimizers[name] = build(param_lists[name])
            per_sample[name] = steps
        seconds = time_interleaved(optimizers, device, args.repeats, per_sample)
        # after the warm-up steps, so that torch's lazily created AdamW state is counted
        bytes_per_param = {name: state_bytes_per_param(opt, param_lists[name]) for name, opt in optimizers.items()}
    baseline = seconds["AdamW fused"]
    element = torch.finfo(dtype).bits // 8
    print("| optimizer | median step (ms) | vs fused AdamW | state bytes/param | achieved bandwidth (TB/s) |")
    print("|---|---:|---:|---:|---:|")
    for name, _, _ in candidates:
        if "Muon" in name:  # matrix-product bound: no memory-traffic model
            ratio = f" ({seconds[name] / seconds['Muon']:.2f}x Muon)" if name != "Muon" else ""
            print(f"| {name} | {seconds[name] * 1e3:.2f} | {seconds[name] / baseline:.2f}x{ratio} | "
                  f"{bytes_per_param[name]:.1f} | - |")
            continue
        moved = streams(name, args.inner_steps) * element * n_params
        bandwidth = moved / seconds[name] / 1e12
        share = f" ({100 * bandwidth / peak:.0f}% of peak)" if peak else ""
        print(f"| {name} | {seconds[name] * 1e3:.2f} | {seconds[name] / baseline:.2f}x | "
              f"{bytes_per_param[name]:.1f} | {bandwidth:.3f}{share} |")
    matrices = [s for s, n in zip(shapes, names) if uses_muon(n, torch.empty(s, device="meta"))]
    for world in (8, 64):
        c = communication_bytes_per_step(matrices, world)
        print(f"Muon on FSDP2 over {world} ranks: {len(matrices)} matrices orthogonalised by their owners, "
              f"{max(c.sent) / 1e6:.1f} MB sent by the busiest rank per step ({c.total / 1e6:.1f} MB in all, "
              f"bf16), against {max(c.all_gather_received) / 1e6:.1f} MB received per rank if every rank "
              f"gathered every matrix")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
