"""What a training step must not do on a GPU machine, checked on CPU: no host-device
synchronisation from this repo, tensor subclasses (torchao float8 weights) handled, weight
swaps followed by the model converters' hook, non-finite losses stopped."""

import math
import os
import sys

import pytest
import torch

from gpa_titan.optim import DiLoCoAdamW, GPAAdamW, ScheduleFreeAdamW
from gpa_titan.titan.monitor import DivergenceError, TrainingMonitor
from gpa_titan.titan.optimizer_container import EvalWeightsOptimizersContainer
from gpa_titan.titan.preemption import PreemptionSignal

OPTIMIZERS = [(GPAAdamW, {}), (DiLoCoAdamW, dict(inner_steps=2)), (ScheduleFreeAdamW, {})]


PACKAGE = os.path.dirname(os.path.abspath(sys.modules["gpa_titan"].__file__))


@pytest.fixture
def sync_calls(monkeypatch):
    """Records every ``Tensor.item()`` and device synchronisation that code of this package
    makes directly while active (torch's own internals, e.g. its AdamW reading a CPU step
    count, are not ours to change)."""
    calls = []
    item = torch.Tensor.item

    def record(kind):
        caller = sys._getframe(2).f_code.co_filename
        if os.path.abspath(caller).startswith(PACKAGE) or caller == __file__:
            calls.append(kind)

    def recording_item(self):
        record("item")
        return item(self)

    monkeypatch.setattr(torch.Tensor, "item", recording_item)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: record("cuda.synchronize"))
    monkeypatch.setattr(torch.accelerator, "synchronize", lambda *a, **k: record("accelerator.synchronize"))
    return calls


@pytest.mark.parametrize("cls,hp", OPTIMIZERS, ids=lambda v: getattr(v, "__name__", ""))
@pytest.mark.parametrize("implementation", ["fused", "foreach"])
def test_optimizer_steps_make_no_host_sync(sync_calls, cls, hp, implementation):
    model = torch.nn.Linear(16, 8)
    opt = cls(model.parameters(), lr=1e-2, implementation=implementation, **hp)
    for _ in range(4):
        model(torch.randn(4, 16)).square().mean().backward()
        opt.step()
        opt.zero_grad()
    assert sync_calls == []
    torch.tensor(1.0).item()  # the recorder works
    assert sync_calls == ["item"]


def test_preemption_is_agreed_only_at_check_steps(sync_calls):
    preemption = PreemptionSignal("SIGUSR2", is_check_step=lambda step: step == 1 or step % 10 == 0)
    assert [s for s in range(1, 31) if preemption.agreed(s)] == []
    assert sync_calls == []  # one rank: nothing to agree with; with several, a gloo (CPU) all-reduce
    preemption.requested = True
    assert not preemption.agreed(11) and preemption.agreed(20)


@pytest.mark.parametrize("cls,hp", OPTIMIZERS, ids=lambda v: getattr(v, "__name__", ""))
def test_float8_weight_subclass_takes_the_foreach_path(monkeypatch, cls, hp):
    pytest.importorskip("torchao")
    from torchao.float8.float8_training_tensor import LinearMMConfig
    from torchao.float8.fsdp_utils import WeightWithDynamicFloat8CastTensor

    torch.manual_seed(0)
    base = [torch.randn(8, 4), torch.randn(5)]
    wrapped = [torch.nn.Parameter(WeightWithDynamicFloat8CastTensor(b.clone(), LinearMMConfig(), torch.float8_e4m3fn))
               for b in base]
    plain = [torch.nn.Parameter(b.clone()) for b in base]
    opt, ref = cls(wrapped, lr=1e-2, **hp), cls(plain, lr=1e-2, **hp)
    if hasattr(opt, "_per_tensor_update"):
        per_tensor = opt._per_tensor_update

        def only_plain(params, c):
            assert all(type(p.data) is torch.Tensor for p in params), "a subclass reached the fused kernel"
            return per_tensor(params, c)

        monkeypatch.setattr(opt, "_per_tensor_update", only_plain)
    for _ in range(5):
        grads = [torch.randn_like(b) for b in base]
        for p, q, g in zip(wrapped, plain, grads):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
    for o in (opt, ref):
        o.eval()
    assert all(type(p) is not torch.nn.Parameter or type(p.data) is not torch.Tensor for p in wrapped)
    assert max((p.detach() - q.detach()).abs().max().item() for p, q in zip(wrapped, plain)) < 1e-6


def test_swap_hooks_run_after_each_real_swap():
    model = torch.nn.Linear(4, 4)
    container = EvalWeightsOptimizersContainer([model], GPAAdamW, dict(lr=1e-2))
    calls = []
    container.swap_hooks.append(lambda: calls.append(container.optimizers[0].training))
    container.eval()
    container.eval()  # already in eval mode: nothing moves, no hook
    container.train()
    assert calls == [False, True]


def test_monitor_stops_at_the_first_non_finite_value_and_passes_finite_ones():
    logged = []

    class Metrics:
        def log(self, step, loss, max_loss, grad_norm, extra_metrics=None):
            logged.append(step)

    metrics = Metrics()
    monitor = TrainingMonitor(metrics, total_steps=100)
    metrics.log(1, 3.0, 3.5, 1.0, extra_metrics={"lr": 1e-3})
    metrics.log(10, 2.5, 2.7, 0.9, extra_metrics={"lr": 1e-3})
    assert logged == [1, 10] and monitor.last_loss == 2.5
    with pytest.raises(DivergenceError, match=r"the loss is nan at step 20 at lr 100"):
        metrics.log(20, math.nan, math.nan, 1.0, extra_metrics={"lr": 100.0})
    with pytest.raises(DivergenceError, match=r"the gradient norm is inf at step 30"):
        metrics.log(30, 2.0, 2.0, math.inf)
    assert logged == [1, 10]
