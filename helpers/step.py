"""A training step without per-kernel launch cost on CUDA: forward, backward and SGD as one CUDA graph.

A captured graph replays fixed kernels on fixed memory, so the step works on static buffers: each
batch is copied into `static_x`/`static_y`, and the loss and correct count accumulate in device
tensors (no `.item()` per step). SGD's python-float lr would be baked into the graph, and OneCycle
changes lr and momentum every step, so the update is done here with `torch._foreach_*` ops that read
lr and momentum from 0-dim device tensors, refreshed from `opt.param_groups` before every step. The
momentum buffers live in `opt.state[p]["momentum_buffer"]`, so checkpoints stay torch SGD state dicts.

With `capture=False` (the CPU) the same class runs every step eagerly: the tests exercise it there.
"""
from __future__ import annotations

import contextlib
import warnings

import torch
from torch import nn

STEPS = ("auto", "eager", "graph")  # train_run's `step` parameter
WARMUP_STEPS = 3  # real training steps run on a side stream before capture (cuDNN autotuning, allocator)


def sgd_buffers(opt: torch.optim.SGD) -> list[list[torch.Tensor]]:
    """Return each param group's momentum buffers, created as zeros in opt.state where missing.

    A zero buffer gives torch's first-step rule (buf = d_p) exactly when dampening is 0.
    """
    out = []
    for g in opt.param_groups:
        if g.get("dampening", 0) != 0 or g.get("maximize", False):
            raise ValueError(f"static SGD step supports dampening=0 and maximize=False; got dampening="
                             f"{g.get('dampening')!r}, maximize={g.get('maximize')!r}")
        bufs = []
        for p in g["params"]:
            st = opt.state[p]
            if st.get("momentum_buffer") is None:
                st["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            bufs.append(st["momentum_buffer"])
        out.append(bufs)
    return out


def sgd_update(params, grads, bufs, lr, momentum, weight_decay: float, nesterov: bool):
    """Apply one torch.optim.SGD step (dampening 0); lr and momentum are floats, or 0-dim tensors for a graph.

    With floats it is torch's own foreach SGD op for op, so bit for bit the same; with tensors (what a
    captured graph needs) the products round differently, within float tolerance.
    """
    d_p = torch._foreach_add(grads, params, alpha=weight_decay) if weight_decay != 0 else grads
    torch._foreach_mul_(bufs, momentum)
    torch._foreach_add_(bufs, d_p)  # buf = momentum * buf + d_p
    if isinstance(lr, torch.Tensor):
        d_p = torch._foreach_add(d_p, torch._foreach_mul(bufs, momentum)) if nesterov else bufs
        torch._foreach_sub_(params, torch._foreach_mul(d_p, lr))
    else:
        d_p = torch._foreach_add(d_p, bufs, alpha=momentum) if nesterov else bufs
        torch._foreach_add_(params, d_p, alpha=-lr)


def autocast(device: torch.device, precision: str):
    """Return bf16 autocast (weight-cast cache off: a captured graph must not reuse casts) or a no-op."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext()


class StaticStep:
    """One training step over static buffers: eager, or replayed as a captured CUDA graph.

    `step(xb, yb)` trains on a batch (a full one is copied into the static buffers; the last,
    smaller batch runs eagerly on its own tensors). `totals()` returns the epoch's summed loss and
    correct count, read once per epoch; `reset()` zeroes them.
    """

    def __init__(self, model: nn.Module, opt: torch.optim.SGD, criterion, batch_size: int,
                 device: torch.device, precision: str = "fp32", channels_last: bool = False,
                 capture: bool | None = None, tensor_hparams: bool | None = None):
        if not isinstance(opt, torch.optim.SGD):
            raise TypeError(f"StaticStep needs torch.optim.SGD, got {type(opt).__name__}")
        self.model, self.opt, self.criterion = model, opt, criterion
        self.device, self.precision, self.batch_size = device, precision, batch_size
        self.capture = device.type == "cuda" if capture is None else capture
        if self.capture and device.type != "cuda":
            raise ValueError(f"parameter 'capture' = True is invalid on device {device.type!r}; CUDA graphs need cuda")
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.static_x = torch.zeros(batch_size, 3, 32, 32, device=device).contiguous(memory_format=fmt)
        self.static_y = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.long, device=device)
        self.groups = []
        for g, bufs in zip(opt.param_groups, sgd_buffers(opt)):
            self.groups.append(dict(params=list(g["params"]), bufs=bufs, weight_decay=float(g["weight_decay"]),
                                    nesterov=bool(g["nesterov"]), lr=torch.zeros((), device=device),
                                    momentum=torch.zeros((), device=device)))
        self.graph = None
        # lr/momentum from device tensors (what a graph needs); eager steps may read the floats: torch's exact op
        self.tensor_hparams = self.capture if tensor_hparams is None else tensor_hparams
        self.full_steps = 0  # full batches seen: the first WARMUP_STEPS warm up, the next is captured
        self.mode = "graph" if self.capture else "static eager"
        self.side = torch.cuda.Stream(device) if self.capture else None

    # ---- the step body: what is captured ----
    def _body(self, x: torch.Tensor, y: torch.Tensor):
        """Forward, loss, backward, SGD update and the running totals, all on device tensors."""
        with autocast(self.device, self.precision):
            out = self.model(x)
            loss = self.criterion(out.float(), y)
        loss.backward()
        with torch.no_grad():
            for g, pg in zip(self.groups, self.opt.param_groups):
                grads = [p.grad for p in g["params"]]
                lr, mom = (g["lr"], g["momentum"]) if self.tensor_hparams else (pg["lr"], pg["momentum"])
                sgd_update(g["params"], grads, g["bufs"], lr, mom, g["weight_decay"], g["nesterov"])
            self.loss_sum += loss.detach() * len(y)
            self.correct += (out.argmax(1) == y).sum()

    def _refresh(self):
        """Copy each group's current lr and momentum into the device tensors the update reads."""
        if not self.tensor_hparams:
            return
        for g, pg in zip(self.groups, self.opt.param_groups):
            g["lr"].fill_(pg["lr"])
            g["momentum"].fill_(pg["momentum"])

    def _zero_grads(self):
        # Before capture, grads are None so that backward allocates them in the graph's pool; after it,
        # they are the graph's static tensors: zero them in place so an eager step accumulates into zeros.
        self.opt.zero_grad(set_to_none=self.graph is None)

    # ---- public ----
    def step(self, xb: torch.Tensor, yb: torch.Tensor):
        """Train on one batch: warm-up, capture or replay for a full batch, eagerly for a smaller one."""
        self._refresh()
        self._stepped()
        if len(yb) != self.batch_size or not self.capture:
            self._zero_grads()
            self._body(xb, yb)
            return
        self.static_x.copy_(xb)
        self.static_y.copy_(yb)
        if self.graph is not None:
            self.graph.replay()
        elif self.full_steps < WARMUP_STEPS:
            self._warmup_step()
        else:
            self._capture_and_replay()
        self.full_steps += 1

    def _stepped(self):
        # LR schedulers warn when they step before `opt.step()` ever ran; this update is that step.
        self.opt._opt_called = True

    def _warmup_step(self):
        """Run a real step on a side stream (as graph capture wants), then rejoin the main stream."""
        self.side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.side):
            self.opt.zero_grad(set_to_none=True)
            self._body(self.static_x, self.static_y)
        torch.cuda.current_stream(self.device).wait_stream(self.side)

    def _capture_and_replay(self):
        """Capture the step (which does not run it), then replay once for this batch; eager on failure."""
        torch.cuda.synchronize(self.device)
        self.opt.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._body(self.static_x, self.static_y)
        except Exception as e:  # capture is best effort: the eager step computes the same thing
            self.capture, self.mode = False, f"static eager (CUDA graph capture failed: {type(e).__name__}: {e})"
            warnings.warn(f"CUDA graph capture failed, training eagerly: {type(e).__name__}: {e}", RuntimeWarning)
            self.opt.zero_grad(set_to_none=True)
            self._body(self.static_x, self.static_y)
            return
        self.graph = graph
        graph.replay()

    def reset(self):
        """Zero the epoch's running loss and correct count."""
        self.loss_sum.zero_()
        self.correct.zero_()

    def totals(self) -> tuple[float, int]:
        """Return (summed loss, correct count) since reset: one device sync."""
        return self.loss_sum.item(), int(self.correct.item())
