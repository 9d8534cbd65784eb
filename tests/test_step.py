"""The static (graph-capturable) training step: its SGD update is torch's, it learns, it equals the eager loop, it resumes."""
import json

import pandas as pd
import pytest
import torch

import helpers as h
from helpers.config import ConfigError
from helpers.step import StaticStep, sgd_buffers, sgd_update

COMPARE = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc"]
SMALL = dict(profile="smoke", train_size=300, test_size=100, epochs=3, batch_size=32)  # 10 steps per epoch


def _params(seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(7, 5, generator=g, requires_grad=True), torch.randn(11, generator=g, requires_grad=True)]


@pytest.mark.parametrize("nesterov", [False, True])
def test_manual_sgd_update_matches_torch_sgd_under_onecycle(nesterov):
    ref, mine = _params(0), _params(0)
    kw = dict(lr=0.2, momentum=0.9, weight_decay=5e-4, nesterov=nesterov)
    opt_ref, opt_mine = torch.optim.SGD(ref, **kw), torch.optim.SGD(mine, **kw)
    steps = 60
    s_ref, s_mine = (torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.2, total_steps=steps) for o in (opt_ref, opt_mine))
    bufs = sgd_buffers(opt_mine)[0]
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
        with torch.no_grad():
            sgd_update(mine, [q.grad for q in mine], bufs, lr, mom, group["weight_decay"], group["nesterov"])
        s_ref.step(), s_mine.step()
    assert len(seen_lr) > 50 and len(seen_mom) > 50  # OneCycle really changed both every step
    for p, q in zip(ref, mine):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(opt_mine.state[q]["momentum_buffer"], opt_ref.state[p]["momentum_buffer"],
                                   rtol=1e-5, atol=1e-6)
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


def _close(a, b):
    pd.testing.assert_frame_equal(a.history[COMPARE], b.history[COMPARE], check_exact=False, rtol=2e-3, atol=0.6)


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
    assert json.loads((run.path / "env.json").read_text())["step"] == "static eager"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cuda_graph_step_equals_static_eager_and_falls_back(tmp_path, monkeypatch):
    cfg = dict(SMALL, recipe="fast", device="cuda")
    graph = h.train_run(**cfg, runs_dir=tmp_path / "g", progress=False, step="graph")
    assert graph.env["step"] == "graph"

    def broken(*a, **k):
        raise RuntimeError("no capture today")
    monkeypatch.setattr(torch.cuda, "graph", broken)
    with pytest.warns(RuntimeWarning, match="capture failed, training eagerly: RuntimeError: no capture today"):
        eager = h.train_run(**cfg, runs_dir=tmp_path / "e", progress=False, step="graph")
    assert "capture failed" in eager.env["step"]
    _close(graph, eager)
