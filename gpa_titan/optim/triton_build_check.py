"""Compile the Triton GPA-AdamW kernel for NVIDIA GPUs on a machine without one, and check
what ``triton_kernel``'s docstring promises.

    python -m gpa_titan.optim.triton_build_check                 # sm_90 and sm_80, a table
    python -m gpa_titan.optim.triton_build_check --arch 90 --json
    python -m gpa_titan.optim.triton_build_check --kernel-file my_kernel.py

Every variant the launcher can use (``triton_kernel.VARIANTS``) is compiled through
``triton.compile`` with the launcher's own runtime signature, constexprs and compile
options (``RUNTIME_SIGNATURE``, ``launch_options``), the table pointers marked 16-byte
divisible as Triton's launcher marks them, for each ``GPUTarget("cuda", arch, 32)``. The
PTX is then assembled by the ptxas inside the triton wheel with ``-v``. A variant passes
when:

* ALIGNED: each of the five tensors is read (and four written) with 16-byte
  ``ld/st.global.v4.b32`` accesses on the full-block path: at least
  ``BLOCK / (32 * num_warps) * itemsize / 16`` of each per thread;
* not ALIGNED: no vector access at all (a vector access to an unaligned address faults);
* ``sqrt.rn.f32`` and ``div.rn.f32`` (IEEE-rounded), no approximate sqrt or division, and
  no ``fma.*.f32`` (the launcher turns contraction off);
* no spill stores or loads, no stack frame, no ``.local`` or ``.shared`` memory.

Triton must not be in interpreter mode here (``TRITON_INTERPRET`` unset or 0): interpreted
kernels cannot be compiled. The compile needs no GPU and no CUDA driver.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from types import ModuleType

ARCHS = (90, 80)  # Hopper (H100/H200) and Ampere (A100)
KERNEL_MODULE = "gpa_titan.optim.triton_kernel"
_N_LOADED, _N_STORED = 5, 4  # y, z, g, m, v read; y, z, m, v written


@dataclass
class Build:
    """One compiled variant and what was found in it.

    Args:
        dtype (str): the storage dtype, e.g. "torch.float32".
        aligned (bool): the ALIGNED constexpr.
        arch (int): the compute capability compiled for (90 = sm_90).
        seconds (float): the compile time (Triton and ptxas).
        registers (int): registers per thread, from ptxas.
        counts (dict): occurrences of the PTX instructions that are checked.
        ptxas (dict): spill stores/loads, stack frame and shared-memory bytes from ptxas.
        problems (list): what breaks a promise; empty when the variant passes.
    """

    dtype: str
    aligned: bool
    arch: int
    seconds: float = 0.0
    registers: int = -1
    counts: dict = field(default_factory=dict)
    ptxas: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)


_PTX_PATTERNS = {
    "ld.v4": r"\bld\.global(?:\.[a-z]+)*\.v4\.b32\b",
    "st.v4": r"\bst\.global(?:\.[a-z]+)*\.v4\.b32\b",
    "vector other": r"\b(?:ld|st)\.global(?:\.[a-z]+)*\.v(?:2\.\w+|[48]\.(?!b32\b)\w+)",
    "sqrt.rn": r"\bsqrt\.rn\.f32\b",
    "div.rn": r"\bdiv\.rn\.f32\b",
    "approx": r"\b(?:sqrt|div|rsqrt|rcp)\.approx\b|\bdiv\.full\b",
    "fma.f32": r"\bfma\.\w+(?:\.\w+)*\.f32\b",
    ".local": r"\.local\b",
    ".shared": r"\.shared\b",
}


def load_kernel_module(kernel_file: str | None = None) -> ModuleType:
    """The kernel module: ``triton_kernel`` itself, or a copy of it at ``kernel_file``."""
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise RuntimeError("triton_build_check: TRITON_INTERPRET is set, so kernels are interpreted and cannot be "
                           "compiled; run it with TRITON_INTERPRET unset")
    if kernel_file is None:
        return importlib.import_module(KERNEL_MODULE)
    spec = importlib.util.spec_from_file_location("checked_triton_kernel", kernel_file)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"--kernel-file {kernel_file}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and triton look modules up by name
    spec.loader.exec_module(module)
    return module


def ptxas_path(arch: int) -> str:
    """The ptxas that ships in the triton wheel (and that Triton itself uses for ``arch``)."""
    from triton.backends.nvidia import compiler as nvidia

    path = nvidia.get_ptxas(arch).path if hasattr(nvidia, "get_ptxas") else nvidia._path_to_binary("ptxas")[0]
    if not path or not os.path.exists(path):
        raise FileNotFoundError(f"no ptxas for sm_{arch} in the triton wheel ({path!r})")
    return path


def _divisible_16() -> list:
    from triton.backends.compiler import BaseBackend

    return BaseBackend.parse_attr("D") if hasattr(BaseBackend, "parse_attr") else [["tt.divisibility", 16]]


def compile_ptx(module: ModuleType, dtype, aligned: bool, arch: int) -> str:
    """PTX of one variant, compiled exactly as the launcher would compile it."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    options = dict(module.launch_options(dtype, aligned))
    constexprs = {name: options.pop(name) for name in list(options) if name in module.KERNEL.arg_names}
    names = list(module.RUNTIME_SIGNATURE)
    if names + list(constexprs) != module.KERNEL.arg_names:
        raise ValueError(f"RUNTIME_SIGNATURE + constexprs {names + list(constexprs)} are not the kernel's "
                         f"arguments {module.KERNEL.arg_names}")
    signature = {**module.RUNTIME_SIGNATURE, **{name: "constexpr" for name in constexprs}}
    attrs = {(i,): _divisible_16() for i, kind in enumerate(module.RUNTIME_SIGNATURE.values()) if kind.startswith("*")}
    source = ASTSource(fn=module.KERNEL, signature=signature, constexprs=constexprs, attrs=attrs)
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
    return compiled.asm["ptx"]


def run_ptxas(ptx: str, arch: int) -> tuple[int, dict]:
    """Assemble ``ptx`` with ``ptxas -v``: (registers per thread, spill/stack/smem bytes)."""
    target = re.search(r"^\.target\s+(\w+)", ptx, re.M)
    gpu_name = target.group(1) if target else f"sm_{arch}"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        proc = subprocess.run([ptxas_path(arch), "-v", f"--gpu-name={gpu_name}", path, "-o", os.path.join(tmp, "k.o")],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ptxas failed for {gpu_name}:\n{proc.stderr}")
    report = proc.stderr + proc.stdout

    def number(pattern: str) -> int:
        found = re.search(pattern, report)
        return int(found.group(1)) if found else 0

    registers = number(r"Used (\d+) registers")
    stats = {
        "spill stores": number(r"(\d+) bytes spill stores"),
        "spill loads": number(r"(\d+) bytes spill loads"),
        "stack frame": number(r"(\d+) bytes stack frame"),
        "smem": number(r"(\d+) bytes smem"),
    }
    return registers, stats


def check_variant(module: ModuleType, dtype, aligned: bool, arch: int) -> Build:
    """Compile one variant and list how it breaks the docstring's promises."""
    build = Build(dtype=str(dtype), aligned=aligned, arch=arch)
    start = time.perf_counter()
    ptx = compile_ptx(module, dtype, aligned, arch)
    build.registers, build.ptxas = run_ptxas(ptx, arch)
    build.seconds = round(time.perf_counter() - start, 2)
    build.counts = {name: len(re.findall(pattern, ptx)) for name, pattern in _PTX_PATTERNS.items()}
    options = module.launch_options(dtype, aligned)
    threads = 32 * options["num_warps"]
    per_thread = module.BLOCK_SIZE // threads * dtype.itemsize // 16  # 16-byte accesses per tensor and thread
    c, p = build.counts, build.problems
    if aligned:
        if c["ld.v4"] < _N_LOADED * per_thread:
            p.append(f"{c['ld.v4']} 16-byte loads, expected at least {_N_LOADED * per_thread} on the full-block path")
        if c["st.v4"] < _N_STORED * per_thread:
            p.append(f"{c['st.v4']} 16-byte stores, expected at least {_N_STORED * per_thread} on the full-block path")
    elif c["ld.v4"] or c["st.v4"] or c["vector other"]:
        p.append("vector accesses in the unaligned variant (they fault on unaligned addresses)")
    if not c["sqrt.rn"]:
        p.append("no sqrt.rn.f32: sqrt is not IEEE-rounded")
    if not c["div.rn"]:
        p.append("no div.rn.f32: the division is not IEEE-rounded")
    if c["approx"]:
        p.append(f"{c['approx']} approximate sqrt/division instructions")
    if c["fma.f32"]:
        p.append(f"{c['fma.f32']} fma.f32: mul+add was contracted although the launcher turns contraction off")
    if c[".local"] or c[".shared"]:
        p.append("local or shared memory in the PTX")
    if any(build.ptxas.values()):
        p.append(f"ptxas reports {build.ptxas}: spills, a stack frame or shared memory")
    return build


def check_all(module: ModuleType, archs=ARCHS) -> list[Build]:
    """Every variant of ``module.VARIANTS`` for every arch in ``archs``."""
    return [check_variant(module, dtype, aligned, arch) for arch in archs for dtype, aligned in module.VARIANTS]


def table(builds: list[Build]) -> str:
    """A markdown table of the builds."""
    lines = ["| arch | dtype | aligned | regs | 16-B loads | 16-B stores | sqrt.rn | div.rn | fma.f32 | spills | "
             "stack | smem | compile s | verdict |", "|---|---|---|" + "---:|" * 10 + "---|"]
    for b in builds:
        c, x = b.counts, b.ptxas
        verdict = "ok" if not b.problems else "FAIL: " + "; ".join(b.problems)
        lines.append(f"| sm_{b.arch} | {b.dtype.replace('torch.', '')} | {b.aligned} | {b.registers} | {c['ld.v4']} | "
                     f"{c['st.v4']} | {c['sqrt.rn']} | {c['div.rn']} | {c['fma.f32']} | "
                     f"{x['spill stores'] + x['spill loads']} | {x['stack frame']} | {x['smem']} | {b.seconds} | "
                     f"{verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", type=int, nargs="+", default=list(ARCHS), help="compute capabilities, e.g. 90 80")
    ap.add_argument("--kernel-file", default=None, help="check a copy of triton_kernel.py instead of the package's")
    ap.add_argument("--json", action="store_true", help="print the builds as JSON instead of a table")
    a = ap.parse_args(argv)
    import triton

    module = load_kernel_module(a.kernel_file)
    builds = check_all(module, a.arch)
    if a.json:
        print(json.dumps([asdict(b) for b in builds], indent=1))
    else:
        print(f"# Triton {triton.__version__}: {module.__name__} compiled for " + ", ".join(f"sm_{x}" for x in a.arch))
        print(table(builds))
    failed = [b for b in builds if b.problems]
    print(f"triton_build_check: {len(builds) - len(failed)} of {len(builds)} variants pass", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
