"""The static (graph-capturable) training step: its SGD update is torch's, it learns, it equals the eager loop, it resumes."""
import copy
import json

import pandas as pd
import pytest
import torch

import helpers as h
from helpers.core.config import ConfigError
from helpers.core.step import StaticStep, sgd_buffers, sgd_update

COMPARE = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc"]
SMALL = dict(profile="smoke", train_size=300, test_size=100, epochs=3, batch_size=32, lr=0.02)  # 10 steps per epoch


def _params(seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(7, 5, generator=g, requires_grad=True), torch.randn(11, generator=g, requires_grad=True)]


@pytest.mark.parametrize("tensors", [False, True])  # float lr: torch's own ops; 0-dim tensors: what a graph reads
@pytest.mark.parametrize("nesterov", [False, True])
def test_manual_sgd_update_matches_torch_sgd_under_onecycle(nesterov, tensors):
    ref, mine = _params(0), _params(0)
    kw = dict(lr=0.2, momentum=0.9, weight_decay=5e-4, nesterov=nesterov)
    opt_ref, opt_mine = torch.optim.SGD(ref, **kw), torch.optim.SGD(mine, **kw)
    steps = 60
    s_ref, s_mine = (torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.2, total_steps=steps) for o in (opt_ref, opt_mine))
    bufs = sgd_buffers(opt_mine)[0]
    opt_mine._opt_called = True  # the manual update stands in for opt.step (silences the schedulers' order check)
    lr, mom = torch.zeros(()), torch.zeros(())
    g = torch.Generator().manual_seed(1)
    seen_lr, seen_mom = set(), set()
    for _ in range(steps):
        grads = [torch.randn(p.shape, generator=g) for p in ref]
        for p, q, gr in zip(ref, mine, grads):
            p.grad, q.grad = gr.clone(), gr.clone()
        opt_ref.step()
        group = opt_mine.param_groups[0]
        lr.fill_(group["lr"]), mom.fill_(group["momentum"])
        seen_lr.add(group["lr"]), seen_mom.add(group["momentum"])
        args = (lr, mom) if tensors else (group["lr"], group["momentum"])
        with torch.no_grad():
            sgd_update(mine, [q.grad for q in mine], bufs, *args, group["weight_decay"], group["nesterov"])
        s_ref.step(), s_mine.step()
    assert len(seen_lr) > 50 and len(seen_mom) > 50  # OneCycle really changed both every step
    tol = dict(rtol=1e-5, atol=1e-6) if tensors else dict(rtol=0, atol=0)  # floats: bit for bit
    for p, q in zip(ref, mine):
        torch.testing.assert_close(q, p, **tol)
        torch.testing.assert_close(opt_mine.state[q]["momentum_buffer"], opt_ref.state[p]["momentum_buffer"], **tol)
    # The state dict is torch's: a plain SGD loads it and continues as the reference does.
    reloaded = torch.optim.SGD(mine, **kw)
    reloaded.load_state_dict(opt_mine.state_dict())
    assert set(reloaded.state_dict()["state"][0]) == set(opt_ref.state_dict()["state"][0]) == {"momentum_buffer"}


def test_static_step_rejects_what_it_cannot_do():
    m = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match="dampening=0"):
        sgd_buffers(torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, dampening=0.5))
    with pytest.raises(TypeError, match="needs torch.optim.SGD, got Adam"):
        StaticStep(m, torch.optim.Adam(m.parameters()), torch.nn.CrossEntropyLoss(), 8, torch.device("cpu"))
    with pytest.raises(ValueError, match="'capture' = True is invalid on device 'cpu'"):
        StaticStep(m, torch.optim.SGD(m.parameters(), lr=0.1), torch.nn.CrossEntropyLoss(), 8,
                   torch.device("cpu"), capture=True)
    with pytest.raises(ConfigError, match="'step' = 'fast' is invalid; valid: auto | eager | graph"):
        h.train_run(**SMALL, step="fast")


def test_static_step_with_device_hparams_matches_the_eager_step():
    """The graph's step (tensor lr/momentum, static buffers, smaller last batch) run eagerly on a small model."""
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 16), torch.nn.BatchNorm1d(16),
                              torch.nn.ReLU(), torch.nn.Linear(16, 10))
    mine = copy.deepcopy(ref)
    kw = dict(lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    opt_ref, opt_mine = torch.optim.SGD(ref.parameters(), **kw), torch.optim.SGD(mine.parameters(), **kw)
    s_ref, s_mine = (torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=40) for o in (opt_ref, opt_mine))
    crit = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    stepper = StaticStep(mine, opt_mine, crit, 16, torch.device("cpu"), tensor_hparams=True)
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(76, 3, 32, 32, generator=g), torch.randint(0, 10, (76,), generator=g)
    loss_sum = 0.0
    for epoch in range(8):
        stepper.reset()
        loss_sum = 0.0
        for i in range(0, 76, 16):  # four full batches and one of 12
            xb, yb = x[i:i + 16], y[i:i + 16]
            loss = crit(ref(xb), yb)
            opt_ref.zero_grad(set_to_none=True)
            loss.backward()
            opt_ref.step()
            stepper.step(xb, yb)
            s_ref.step(), s_mine.step()
            loss_sum += loss.item() * len(yb)
    total, _ = stepper.totals()
    assert total == pytest.approx(loss_sum, rel=1e-4)
    assert loss_sum / 76 < 1.0  # it learned the 76 images (chance: ln 10 = 2.3)
    for a, b in zip(ref.state_dict().values(), mine.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def _close(a, b):
    # Float lr/momentum: the static step is torch's SGD op for op, so the histories are equal, not just close.
    pd.testing.assert_frame_equal(a.history[COMPARE], b.history[COMPARE])


@pytest.mark.parametrize("recipe", ["none", "fast"])  # StepLR + momentum; OneCycle + Nesterov + smoothing
def test_static_step_learns_and_equals_the_eager_loop(tmp_path, recipe):
    cfg = dict(SMALL, recipe=recipe)
    eager = h.train_run(**cfg, runs_dir=tmp_path / "eager", progress=False, step="eager")
    static = h.train_run(**cfg, runs_dir=tmp_path / "static", progress=False, step="graph")
    assert static.id == eager.id  # how a step runs is not part of the experiment
    assert static.env["step"] == "static eager" and eager.env["step"] == "eager"
    _close(static, eager)
    assert static.history["train_loss"].iloc[-1] < static.history["train_loss"].iloc[0]
    if recipe == "none":
        assert static.final_acc > 30, static.history  # chance is 10%


def test_static_step_run_resumes_to_the_same_history(tmp_path):
    cfg = dict(SMALL, recipe="fast", epochs=3, snapshot_epochs=(1, 3))
    whole = h.train_run(**cfg, runs_dir=tmp_path / "whole", progress=False, step="graph")

    def stop(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        h.train_run(**cfg, runs_dir=tmp_path / "cut", progress=False, step="graph", on_epoch=stop)
    seen = []
    resumed = h.train_run(**cfg, runs_dir=tmp_path / "cut", progress=False, step="graph", on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [2, 3]
    pd.testing.assert_frame_equal(resumed.history[COMPARE], whole.history[COMPARE])


def test_step_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAIN_STEP", "graph")
    run = h.train_run(**dict(SMALL, epochs=1, snapshot_epochs=(1,)), runs_dir=tmp_path, progress=False)
    assert json.loads((run.path / "record.json").read_text())["env"]["step"] == "static eager"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cuda_graph_step_matches_eager_steps_learns_and_falls_back(tmp_path, monkeypatch):
    dev = torch.device("cuda")
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 16), torch.nn.BatchNorm1d(16),
                              torch.nn.ReLU(), torch.nn.Linear(16, 10)).to(dev)
    mine = copy.deepcopy(ref)
    kw = dict(lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    opts = [torch.optim.SGD(m.parameters(), **kw) for m in (ref, mine)]
    scheds = [torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=60) for o in opts]
    crit = torch.nn.CrossEntropyLoss()
    eager = StaticStep(ref, opts[0], crit, 16, dev, capture=False, tensor_hparams=True)
    graph = StaticStep(mine, opts[1], crit, 16, dev)
    x, y = torch.rand(76, 3, 32, 32, device=dev), torch.randint(0, 10, (76,), device=dev)
    for _ in range(12):
        for i in range(0, 76, 16):
            eager.step(x[i:i + 16], y[i:i + 16]), graph.step(x[i:i + 16], y[i:i + 16])
            [s.step() for s in scheds]
    assert graph.graph is not None and graph.mode == "graph"
    for a, b in zip(ref.state_dict().values(), mine.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)

    cfg = dict(SMALL, recipe="fast", device="cuda")
    run = h.train_run(**cfg, runs_dir=tmp_path / "g", progress=False, step="graph")
    falls = run.history["train_loss"].iloc[-1] < run.history["train_loss"].iloc[0]
    assert run.env["step"] == "graph" and falls, run.history

    def broken(*a, **k):
        raise RuntimeError("no capture today")
    monkeypatch.setattr(torch.cuda, "graph", broken)
    with pytest.warns(RuntimeWarning, match="capture failed, training eagerly: RuntimeError: no capture today"):
        fallback = h.train_run(**cfg, runs_dir=tmp_path / "e", progress=False, step="graph")
    assert "capture failed" in fallback.env["step"], fallback.env
    assert fallback.history["train_loss"].iloc[-1] < fallback.history["train_loss"].iloc[0], fallback.history
