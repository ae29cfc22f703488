"""The Triton GPA-AdamW kernel (gpa_titan/optim/triton_kernel.py), on CPU through Triton's
interpreter: single steps against float64 math, 100-step trajectories against the
float64 Algorithm 1 reference, the pointer-table cache and the argument errors."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton (and the kernel) is imported

import math  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("triton", reason="triton is not installed; the Triton kernel cannot be tested")

from gpa_titan.optim import triton_kernel as K  # noqa: E402
from gpa_titan.optim.gpa_adamw import GPACoefficients  # noqa: E402
from gpa_titan.optim.reference import ReferenceGPAAdamW  # noqa: E402
from helpers import ieee_float32_step, warmup_cosine  # noqa: E402

if not K._is_interpreted():
    pytest.skip(
        "gpa_titan.optim.triton_kernel was imported before TRITON_INTERPRET=1 was set, so its "
        "kernel is compiled, not interpreted, and cannot run on CPU tensors",
        allow_module_level=True,
    )

BETAS, EPS = (0.9, 0.95), 1e-8
BF16_U = 2.0**-8  # bf16 unit roundoff: round-to-nearest moves a value by at most 2^-8 of it
SIZES = [1, 7, 33, 0, 1025, 4099]  # odd sizes, an empty tensor, full and partial blocks


# ---------------------------------------------------------------- helpers
def random_state(sizes, dtype, seed=0):
    """(y, z, g, m, v) lists, rounded to ``dtype``; v is positive like a second moment."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for k in range(5):
        ts = []
        for n in sizes:
            t = torch.randn(n, generator=gen, dtype=torch.float64)
            if k == 3:
                t = 0.1 * t
            if k == 4:
                t = 0.01 * t * t + 1e-4 * torch.rand(n, generator=gen, dtype=torch.float64)
            ts.append(t.to(dtype))
        out.append(ts)
    return out


def float64_step(y, z, g, m, v, c):
    """The update's formulas in float64, plus each output's error scale: the sum of the
    magnitudes of the terms it is computed from (float32 error is relative to that, not
    to the possibly cancelled result)."""
    y, z, g, m, v = (t.to(torch.float64) for t in (y, z, g, m, v))
    m1 = m + (g - m) * c[0]
    v1 = v * c[1] + g * g * c[2]
    den = v1.sqrt() * c[3] + c[4]
    u = m1 / den
    y1 = y * c[5] + z * c[6] + u * c[7]
    z1 = z - z * c[8] + u * c[9]
    mag_m = m.abs() + (g.abs() + m.abs()) * abs(c[0])
    mag_v = v * abs(c[1]) + g * g * abs(c[2])
    mag_u = mag_m / den + u.abs()
    mag_y = (y * c[5]).abs() + (z * c[6]).abs() + mag_u * abs(c[7])
    mag_z = z.abs() + (z * c[8]).abs() + mag_u * abs(c[9])
    return (y1, z1, m1, v1), (mag_y, mag_z, mag_m, mag_v)


def nan_max(ratio):
    """The largest ratio, NaN counting as infinitely bad (Python's max() would skip it)."""
    return torch.nan_to_num(ratio, nan=math.inf).max().item()


def worst_ratio(outs, refs, mags, dtype):
    """max |out - ref| / bound: float32 1e-6 of the term magnitudes (~16 float32 ulps);
    bfloat16 one rounding of the result, 2^-8 |ref|, plus the float32 compute slack."""
    worst = 0.0
    for out, ref, mag in zip(outs, refs, mags):
        if ref.numel() == 0:
            continue
        bound = 1e-6 * mag if dtype == torch.float32 else BF16_U * ref.abs() + 2e-6 * mag
        err = (out.to(torch.float64) - ref).abs()
        worst = max(worst, nan_max(err / (bound + 1e-300)))
    return worst


def single_step_ratio(dtype, coefs, sizes=SIZES, kernel_coefs=None):
    y, z, g, m, v = random_state(sizes, dtype)
    expected = [float64_step(*(t[i] for t in (y, z, g, m, v)), coefs) for i in range(len(sizes))]
    g_before = [t.clone() for t in g]
    K.gpa_adamw_triton_step(y, z, g, m, v, kernel_coefs or coefs)
    assert all(torch.equal(a, b) for a, b in zip(g, g_before)), "the gradients must be read only"
    ratio = 0.0
    for i, (refs, mags) in enumerate(expected):
        ratio = max(ratio, worst_ratio([y[i], z[i], m[i], v[i]], refs, mags, dtype))
    return ratio


gpa_coefficients = GPACoefficients.for_step
COEFS = gpa_coefficients(1e-2, 0.1, *BETAS, EPS, mu_x=0.9, mu_y=0.8, step=5)


class Quadratic:
    """The idea of tests/helpers.py's QuadraticProblem: g_t(w) = a (w - c) + noise_t, with
    noise fixed per step, so gradients never vanish yet depend on where they are taken.
    217 elements over odd shapes; the start is bf16-representable, so the bf16 and the
    float64 runs start from the same point."""

    shapes = ((16, 8), (8,), (4, 4, 3), (33,))

    def __init__(self, steps: int, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.init = [torch.randn(s, generator=gen).to(torch.bfloat16).double() for s in self.shapes]
        self.a = [torch.rand(s, generator=gen, dtype=torch.float64) * 1.5 + 0.5 for s in self.shapes]
        self.c = [torch.randn(s, generator=gen, dtype=torch.float64) for s in self.shapes]
        self.noise = [
            [0.5 * torch.randn(s, generator=gen, dtype=torch.float64) for s in self.shapes] for _ in range(steps)
        ]

    def grads(self, weights, t: int):
        return [a * (w.double() - c) + n for w, a, c, n in zip(weights, self.a, self.c, self.noise[t])]


def run_trajectory(dtype, mu_x, mu_y, wd, steps=100, peak_lr=1e-2, step_offset=0, check_each_step=None):
    """Step the kernel (params hold y) and ReferenceGPAAdamW side by side under
    warmup+cosine, each with gradients at its own y; return the worst |y - y_ref|.
    ``step_offset`` shifts the kernel's step count (a deliberate bug, to show the check
    can fail). ``check_each_step(before, after, grads, lr, t)`` runs after each kernel
    step, with float64 copies of (y, z, m, v) before and after it."""
    problem = Quadratic(steps)
    ys = [p.to(dtype) for p in problem.init]
    zs = [y.clone() for y in ys]
    ms = [torch.zeros_like(y) for y in ys]
    vs = [torch.zeros_like(y) for y in ys]
    ref = ReferenceGPAAdamW(problem.init, betas=BETAS, eps=EPS, weight_decay=wd, mu_x=mu_x, mu_y=mu_y)
    worst = 0.0
    for t in range(steps):
        lr = warmup_cosine(t, steps, peak_lr)
        grads = [g.to(dtype) for g in problem.grads(ys, t)]
        before = [[u.double() for u in lst] for lst in (ys, zs, ms, vs)]
        coefs = gpa_coefficients(lr, wd, *BETAS, EPS, mu_x, mu_y, t + 1 + step_offset)
        K.gpa_adamw_triton_step(ys, zs, grads, ms, vs, coefs)
        if check_each_step is not None:
            after = [[u.double() for u in lst] for lst in (ys, zs, ms, vs)]
            check_each_step(before, after, grads, lr, t)
        ref.step(problem.grads(ref.y(), t), lr)
        worst = max(worst, max((y.double() - r).abs().max().item() for y, r in zip(ys, ref.y())))
    return worst


GRID = [(0.9, 0.8, 0.1), (0.99, 0.5, 0.0), (0.0, 0.9, 0.1)]


# ---------------------------------------------------------------- 1. single steps
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_single_step_matches_float64(dtype):
    """All SIZES in one launch; bf16 is compared with float64 math on the bf16 inputs."""
    assert single_step_ratio(dtype, COEFS) <= 1.0


def test_large_odd_tensor_with_small_ones():
    """977 full blocks and a partial one, next to tiny tensors, in one launch (~4 s)."""
    assert single_step_ratio(torch.float32, COEFS, sizes=[1000003, 3, 0, 1024]) <= 1.0


# ---------------------------------------------------------------- 2. trajectories
@pytest.mark.parametrize("mu_x,mu_y,wd", GRID)
def test_fp32_trajectory_matches_reference(mu_x, mu_y, wd):
    # Measured worst |y - y_ref| over the 100 steps: 1.4e-6 .. 2.8e-6 for |y| <= 3.4.
    assert run_trajectory(torch.float32, mu_x, mu_y, wd) <= 1e-5


@pytest.mark.parametrize("mu_x,mu_y,wd", GRID)
def test_bf16_trajectory_against_reference(mu_x, mu_y, wd):
    """bf16 storage cannot track the float64 trajectory to a rounding-sized bound: an
    update below half a bf16 ulp of |y| (2^-8 |y| ~ 0.013 at |y| ~ 3.4) is lost, and with
    lr <= 1e-2 most per-step updates of y are that small (with mu_x = 0.99 y moves by
    (1 - mu_x)(z - y) per step). Measured drift from the float64 run: 0.16 .. 0.36, where
    the float64 y moves 0.37 .. 0.66 in all. So the bf16 kernel is checked against the
    reference one step at a time: before every step, ReferenceGPAAdamW is restarted from
    the kernel's own bf16 state (x = y/mu_y + (1 - 1/mu_y) z in float64) and stepped with
    the same gradients; each of y, z, m, v may then differ by one bf16 rounding of the
    result, 2^-8 |ref|, plus float32 compute slack (1e-5 of the inputs' magnitude, well
    under a bf16 ulp). A truncating store, a wrong coefficient or float32 left unrounded
    all break this. The whole-trajectory drift is also bounded, loosely: by the float64
    run's own movement (0.66 at most here) plus one bf16 ulp of max |y|, i.e. <= 0.7:
    bf16 may lose the movement, not invent one."""
    worst_local = [0.0]

    def check(before, after, grads, lr, t):
        ys, zs, ms, vs = before
        ref = ReferenceGPAAdamW([y / mu_y + (1 - 1 / mu_y) * z for y, z in zip(ys, zs)],
                                betas=BETAS, eps=EPS, weight_decay=wd, mu_x=mu_x, mu_y=mu_y)
        ref.z, ref.m, ref.v, ref.t = list(zs), [m.clone() for m in ms], [v.clone() for v in vs], t
        ref.step([g.double() for g in grads], lr)
        outs = after
        for i in range(len(ys)):
            slack_yz = 1e-5 * (ys[i].abs() + zs[i].abs() + 1.0)
            g = grads[i].double()
            pairs = [
                (outs[0][i], ref.y()[i], slack_yz),
                (outs[1][i], ref.z[i], slack_yz),
                (outs[2][i], ref.m[i], 1e-5 * (ms[i].abs() + g.abs())),
                (outs[3][i], ref.v[i], 1e-5 * (vs[i] + g * g)),
            ]
            for out, expected, slack in pairs:
                ratio = nan_max((out - expected).abs() / (BF16_U * expected.abs() + slack))
                worst_local[0] = max(worst_local[0], ratio)

    drift = run_trajectory(torch.bfloat16, mu_x, mu_y, wd, check_each_step=check)
    assert worst_local[0] <= 1.0, f"a bf16 step is off by {worst_local[0]:.2f}x one rounding"
    assert drift <= 0.7


# ---------------------------------------------------------------- 3. the checks can fail
@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt:RuntimeWarning")  # v < 0
def test_checks_detect_wrong_coefficients():
    swapped = list(COEFS)
    swapped[5], swapped[6] = swapped[6], swapped[5]  # mu_x <-> y_z_coef
    assert single_step_ratio(torch.float32, COEFS, kernel_coefs=swapped) > 1e3
    assert single_step_ratio(torch.bfloat16, COEFS, kernel_coefs=COEFS[::-1]) > 10
    # A subtle bug: bias corrections one step late. The 1e-5 trajectory bound catches it.
    assert run_trajectory(torch.float32, 0.9, 0.8, 0.1, step_offset=1) > 1e-3


# ---------------------------------------------------------------- 4. the table cache
def test_table_cache_reuse_and_rebuild():
    K.clear_table_cache()
    y, z, g, m, v = random_state([5, 1030, 0], torch.float32, seed=1)
    K.gpa_adamw_triton_step(y, z, g, m, v, COEFS)
    assert K.table_cache_info() == {"hits": 0, "misses": 1, "size": 1}
    second = [float64_step(*(t[i] for t in (y, z, g, m, v)), COEFS) for i in range(3)]
    K.gpa_adamw_triton_step(y, z, g, m, v, COEFS)  # same tensors: the cached table
    assert K.table_cache_info() == {"hits": 1, "misses": 1, "size": 1}
    for i, (refs, mags) in enumerate(second):
        assert worst_ratio([y[i], z[i], m[i], v[i]], refs, mags, torch.float32) <= 1.0

    # Different tensors (other addresses and sizes): a new table, correct results.
    y2, z2, g2, m2, v2 = random_state([2049, 17], torch.float32, seed=2)
    expected = [float64_step(*(t[i] for t in (y2, z2, g2, m2, v2)), COEFS) for i in range(2)]
    K.gpa_adamw_triton_step(y2, z2, g2, m2, v2, COEFS)
    assert K.table_cache_info() == {"hits": 1, "misses": 2, "size": 2}
    for i, (refs, mags) in enumerate(expected):
        assert worst_ratio([y2[i], z2[i], m2[i], v2[i]], refs, mags, torch.float32) <= 1.0

    # The first set again: still cached (LRU), so a hit.
    K.gpa_adamw_triton_step(y, z, g, m, v, COEFS)
    assert K.table_cache_info() == {"hits": 2, "misses": 2, "size": 2}

    # The cache is bounded, and all-empty calls launch nothing and cache nothing.
    keep = [random_state([3], torch.float32, seed=10 + k) for k in range(K._CACHE_SIZE + 2)]
    for state in keep:
        K.gpa_adamw_triton_step(*state, COEFS)
    assert K.table_cache_info()["size"] == K._CACHE_SIZE
    K.clear_table_cache()
    K.gpa_adamw_triton_step(*random_state([0, 0], torch.float32), COEFS)
    K.gpa_adamw_triton_step([], [], [], [], [], COEFS)
    assert K.table_cache_info() == {"hits": 0, "misses": 0, "size": 0}


# ---------------------------------------------------------------- 4b. rounding and alignment
def assert_bitwise(got_lists, want, dtype, label=""):
    for i, expected in enumerate(want):
        for name, got, ref in zip("yzmv", (t[i] for t in got_lists), expected):
            assert torch.equal(got, ref.to(dtype)), f"{label}{name}[{i}] ({dtype}) is not the IEEE float32 update"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernel_is_bitwise_the_ieee_float32_update(dtype):
    """No FMA anywhere: every value the kernel stores is the IEEE float32 computation's."""
    assert K.launch_options(dtype, True)["enable_fp_fusion"] is False
    y, z, g, m, v = random_state([1, 7, 1025, 4099], dtype, seed=3)
    want = [ieee_float32_step(*(t[i] for t in (y, z, g, m, v)), COEFS) for i in range(4)]
    K.gpa_adamw_triton_step(y, z, g, m, v, COEFS)
    assert_bitwise((y, z, m, v), want, dtype)


def test_the_bitwise_check_sees_a_contraction():
    y, z, g, m, v = random_state([4099], torch.float32, seed=3)
    fused = ieee_float32_step(y[0], z[0], g[0], m[0], v[0], COEFS, fma_in_y=True)
    K.gpa_adamw_triton_step(y, z, g, m, v, COEFS)
    assert not torch.equal(y[0], fused[0]), "one FMA in y's update must change some value of 4099"


def test_launch_plan_keeps_aligned_tensors_together():
    assert K.launch_plan([(0, 16, 32, 48, 64), (4, 16, 32, 48, 64), (16, 32, 48, 64, 80)]) == [
        (True, [0, 2]),
        (False, [1]),
    ]
    assert K.launch_plan([(16,) * 5]) == [(True, [0])]
    assert K.launch_plan([(8,) * 5]) == [(False, [0])]
    assert K.launch_plan([]) == []


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_one_odd_view_takes_the_unaligned_variant_alone(dtype, monkeypatch):
    """A view with an odd storage offset among fresh tensors: the fresh ones still run the
    ALIGNED variant (one launch for all of them), the view the unaligned one, and every
    result is the eager float32 update's."""
    sizes = [1025, 33, 2048]
    y, z, g, m, v = random_state(sizes, dtype, seed=5)
    base = torch.randn(sizes[1] + 1, dtype=torch.float64).to(dtype)
    z[1] = base[1:]  # storage offset one element: 4 or 2 bytes, never 16-byte aligned
    z[1].copy_(y[1])
    assert z[1].data_ptr() % 16 != 0 and all(t[i].data_ptr() % 16 == 0 for t in (y, z, g, m, v) for i in (0, 2))
    want = [ieee_float32_step(*(t[i] for t in (y, z, g, m, v)), COEFS) for i in range(3)]
    launches = []
    real = K.launch_options
    monkeypatch.setattr(K, "launch_options", lambda dt, aligned: launches.append(aligned) or real(dt, aligned))
    K.clear_table_cache()
    K.gpa_adamw_triton_step(y, z, g, m, v, COEFS)
    assert sorted(launches) == [False, True]
    tables = list(K._CACHE.entries)
    assert sorted(len(key[3]) for key in tables) == [1, 2], "the aligned launch must hold both fresh tensors"
    assert_bitwise((y, z, m, v), want, dtype)


# ---------------------------------------------------------------- 5. errors
def test_unsupported_and_mixed_dtypes_raise():
    state64 = random_state([4], torch.float64)
    with pytest.raises(ValueError, match="unsupported dtype torch.float64"):
        K.gpa_adamw_triton_step(*state64, COEFS)
    y, z, g, m, v = random_state([4, 4], torch.float32)
    z[1] = z[1].to(torch.bfloat16)
    with pytest.raises(ValueError, match=r"one dtype, but zs\[1\] is torch.bfloat16"):
        K.gpa_adamw_triton_step(y, z, g, m, v, COEFS)


@pytest.mark.parametrize("case", ["lengths", "coefs", "shape", "contiguity", "tensor"])
def test_bad_arguments_raise(case):
    y, z, g, m, v = random_state([6, 6], torch.float32)
    coefs, match = COEFS, None
    if case == "lengths":
        v, match = v[:1], "differ in length"
    elif case == "coefs":
        coefs, match = COEFS[:9], "expected 10 coefficients"
    elif case == "shape":
        g[1], match = torch.zeros(2, 3), r"grads\[1\] has shape"
    elif case == "contiguity":  # same shapes, but transposed views
        y[0], z[0], g[0], m[0], v[0] = (torch.zeros(3, 2).t() for _ in range(5))
        match = r"ys\[0\] is not contiguous"
    else:
        y, match = torch.zeros(6), "must be a list of tensors"
    with pytest.raises(ValueError, match=match):
        K.gpa_adamw_triton_step(y, z, g, m, v, coefs)


def test_cpu_without_interpreter_raises(monkeypatch):
    monkeypatch.setattr(K, "_is_interpreted", lambda: False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        K.gpa_adamw_triton_step(*random_state([3], torch.float32), COEFS)
