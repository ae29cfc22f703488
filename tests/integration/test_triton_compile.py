"""The Triton GPA-AdamW kernel compiled for sm_90 and sm_80 on this CPU-only machine
(``python -m gpa_titan.optim.triton_build_check``), and proof that the check catches what
Triton's interpreter lets through: a variable defined in one branch of a runtime ``if``,
and mul+add contraction switched back on."""

import json
import os
import subprocess
import sys

from helpers import REPO, process_env

KERNEL_SOURCE = os.path.join(REPO, "gpa_titan", "optim", "triton_kernel.py")
OFFS_LINE = "    offs = start + tl.arange(0, BLOCK)\n"
IF_LINE = "    if start + BLOCK <= n:  # a full block: no mask, so loads can vectorise\n"


def build_check(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in process_env().items() if k != "TRITON_INTERPRET"}  # compiled, never interpreted
    return subprocess.run([sys.executable, "-m", "gpa_titan.optim.triton_build_check", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def planted_copy(tmp_path, old: str, new: str) -> str:
    source = open(KERNEL_SOURCE).read()
    assert source.count(old) == 1, f"the kernel no longer has the line to plant the bug in: {old!r}"
    path = tmp_path / "planted_kernel.py"
    path.write_text(source.replace(old, new))
    return str(path)


def test_every_variant_compiles_for_hopper_and_ampere_as_promised():
    proc = build_check("--json")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    builds = json.loads(proc.stdout)
    assert sorted((b["arch"], b["dtype"], b["aligned"]) for b in builds) == sorted(
        (arch, dtype, aligned) for arch in (90, 80) for dtype in ("torch.float32", "torch.bfloat16")
        for aligned in (True, False)
    )
    for b in builds:
        assert b["problems"] == [], b
        assert b["counts"]["sqrt.rn"] and b["counts"]["div.rn"] and not b["counts"]["fma.f32"]
        assert b["ptxas"] == {"spill stores": 0, "spill loads": 0, "stack frame": 0, "smem": 0}
        if b["aligned"]:  # 8 elements per thread: 32 bytes of fp32 (two 16-byte accesses), 16 of bf16 (one)
            per_thread = 2 if b["dtype"] == "torch.float32" else 1
            assert b["counts"]["ld.v4"] >= 5 * per_thread and b["counts"]["st.v4"] >= 4 * per_thread, b
        else:
            assert b["counts"]["ld.v4"] == b["counts"]["st.v4"] == 0, b


def test_a_scoping_bug_that_the_interpreter_runs_fails_the_compile_check(tmp_path):
    """``offs`` defined only inside the full-block branch: under the interpreter a step on
    full blocks never reaches the other branch and gives the right numbers; compiling fails."""
    planted = planted_copy(tmp_path, OFFS_LINE + IF_LINE, IF_LINE + "    " + OFFS_LINE)
    interpreted = subprocess.run(
        [sys.executable, "-c", INTERPRETER_RUN, planted], cwd=REPO, env=process_env({"TRITON_INTERPRET": "1"}),
        capture_output=True, text=True, timeout=600,
    )
    assert interpreted.returncode == 0, interpreted.stderr[-6000:]
    assert "planted == real: True" in interpreted.stdout, interpreted.stdout
    proc = build_check("--arch", "90", "--kernel-file", planted)
    assert proc.returncode != 0
    assert "offs" in proc.stderr, proc.stderr[-4000:]


def test_contraction_switched_on_fails_the_compile_check(tmp_path):
    planted = planted_copy(tmp_path, "_FP_FUSION = False", "_FP_FUSION = True")
    proc = build_check("--arch", "90", "--json", "--kernel-file", planted)
    assert proc.returncode == 1, proc.stderr[-4000:]
    builds = json.loads(proc.stdout)
    assert all(b["counts"]["fma.f32"] > 0 and any("fma.f32" in p for p in b["problems"]) for b in builds)


# Runs the planted kernel and the real one under the interpreter on full blocks only.
INTERPRETER_RUN = """
import sys, torch
from gpa_titan.optim import triton_kernel as real
from gpa_titan.optim.gpa_adamw import GPACoefficients
import importlib.util
spec = importlib.util.spec_from_file_location("planted", sys.argv[1])
planted = importlib.util.module_from_spec(spec); spec.loader.exec_module(planted)
assert type(planted.KERNEL).__name__ == "InterpretedFunction"
gen = torch.Generator().manual_seed(0)
state = [[torch.randn(2048, generator=gen).abs() + 0.1 for _ in range(2)] for _ in range(5)]
copy = [[t.clone() for t in lst] for lst in state]
c = GPACoefficients.for_step(1e-2, 0.1, 0.9, 0.95, 1e-8, 0.9, 0.8, 3)
real.gpa_adamw_triton_step(*state, c)
planted.gpa_adamw_triton_step(*copy, c)
print("planted == real:", all(torch.equal(a, b) for x, y in zip(state, copy) for a, b in zip(x, y)))
"""
