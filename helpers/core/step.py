"""Training steps: torch's own (`EagerStep`), or forward, backward and SGD over static buffers as one CUDA graph
(`StaticStep`, run eagerly where it cannot capture: on the CPU, its tests). docs/performance-gpu.md explains both."""
from __future__ import annotations

import warnings

import torch
from torch import nn

STEPS = ("auto", "eager", "graph")  # train_run's `step` parameter
WARMUP_STEPS = 3  # real training steps run on a side stream before capture (cuDNN autotuning, allocator)


def sgd_buffers(opt: torch.optim.SGD) -> list[list[torch.Tensor]]:
    """Return each param group's momentum buffers, zeros where missing (torch's first step, as dampening is 0)."""
    for g in opt.param_groups:
        if g["dampening"] or g["maximize"]:
            raise ValueError(f"static SGD step supports dampening=0 and maximize=False; got dampening="
                             f"{g['dampening']!r}, maximize={g['maximize']!r}")
        for p in g["params"]:
            if opt.state[p].get("momentum_buffer") is None:
                opt.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return [[opt.state[p]["momentum_buffer"] for p in g["params"]] for g in opt.param_groups]


def sgd_update(params, grads, bufs, lr, momentum, weight_decay: float, nesterov: bool):
    """Apply torch's SGD step: bit for bit with float lr and momentum, within rounding with 0-dim tensors (graphs)."""
    d_p = torch._foreach_add(grads, params, alpha=weight_decay) if weight_decay != 0 else grads
    torch._foreach_mul_(bufs, momentum)
    torch._foreach_add_(bufs, d_p)  # buf = momentum * buf + d_p
    if isinstance(lr, torch.Tensor):
        d_p = torch._foreach_add(d_p, torch._foreach_mul(bufs, momentum)) if nesterov else bufs
        torch._foreach_sub_(params, torch._foreach_mul(d_p, lr))
    else:
        d_p = torch._foreach_add(d_p, bufs, alpha=momentum) if nesterov else bufs
        torch._foreach_add_(params, d_p, alpha=-lr)


class EagerStep:
    """torch's own training step (autocast forward, backward, opt.step), with the epoch's totals on the device."""
    mode = "eager"

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, criterion, device: torch.device,
                 precision: str = "fp32"):
        """Keep the model, optimizer and loss; make the running loss and correct count."""
        self.model, self.opt, self.criterion, self.device = model, opt, criterion, device
        self.bf16 = precision == "bf16"
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.long, device=device)

    def _body(self, x: torch.Tensor, y: torch.Tensor):
        """Forward, loss, backward, update and the running totals: what a static step captures."""
        # A captured graph must not reuse autocast's weight casts; a forward uses each weight once, so none is lost.
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16, cache_enabled=False):
            out = self.model(x)
            loss = self.criterion(out.float(), y)
        loss.backward()
        with torch.no_grad():
            self._update()
            self.loss_sum += loss.detach() * len(y)
            self.correct += (out.argmax(1) == y).sum()

    def _update(self):
        """Apply the optimizer's step."""
        self.opt.step()

    def step(self, xb: torch.Tensor, yb: torch.Tensor):
        """Train on one batch."""
        self.opt.zero_grad(set_to_none=True)
        self._body(xb, yb)

    def reset(self):
        """Zero the epoch's running loss and correct count."""
        self.loss_sum.zero_()
        self.correct.zero_()

    def totals(self) -> tuple[float, int]:
        """Return (summed loss, correct count) since reset: one device sync."""
        return self.loss_sum.item(), int(self.correct.item())


class StaticStep(EagerStep):
    """One training step over static buffers, eager or replayed as a captured CUDA graph; `mode` says which."""

    def __init__(self, model: nn.Module, opt: torch.optim.SGD, criterion, batch_size: int,
                 device: torch.device, precision: str = "fp32", channels_last: bool = False,
                 capture: bool | None = None, tensor_hparams: bool | None = None):
        """Check the optimizer and device, make the static buffers; capture defaults to "on CUDA"."""
        if not isinstance(opt, torch.optim.SGD):
            raise TypeError(f"StaticStep needs torch.optim.SGD, got {type(opt).__name__}")
        self.capture = device.type == "cuda" if capture is None else capture
        if self.capture and device.type != "cuda":
            raise ValueError(f"parameter 'capture' = True is invalid on device {device.type!r}; CUDA graphs need cuda")
        super().__init__(model, opt, criterion, device, precision)
        self.batch_size = batch_size
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.static_x = torch.zeros(batch_size, 3, 32, 32, device=device).contiguous(memory_format=fmt)
        self.static_y = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.bufs = sgd_buffers(opt)
        # lr/momentum from device tensors (what a graph needs); eager steps may read the floats: torch's exact op
        self.tensor_hparams = self.capture if tensor_hparams is None else tensor_hparams
        self.hparams = [(torch.zeros((), device=device), torch.zeros((), device=device)) for _ in opt.param_groups]
        self.graph, self.full_steps = None, 0  # full batches before capture: WARMUP_STEPS warm up, the next is captured
        self.mode = "graph" if self.capture else "static eager"
        self.side = torch.cuda.Stream(device) if self.capture else None

    def _update(self):
        """Apply SGD with foreach ops, lr and momentum read from device tensors when a graph needs them."""
        for pg, bufs, hparams in zip(self.opt.param_groups, self.bufs, self.hparams):
            lr, momentum = hparams if self.tensor_hparams else (pg["lr"], pg["momentum"])
            sgd_update(pg["params"], [p.grad for p in pg["params"]], bufs, lr, momentum, pg["weight_decay"],
                       pg["nesterov"])

    def step(self, xb: torch.Tensor, yb: torch.Tensor):
        """Train on one batch: warm-up, capture or replay for a full batch, eagerly for a smaller one."""
        if self.tensor_hparams:
            for pg, (lr, momentum) in zip(self.opt.param_groups, self.hparams):
                lr.fill_(pg["lr"])
                momentum.fill_(pg["momentum"])
        self.opt._opt_called = True  # this update is opt.step(): LR schedulers warn if it never ran
        if len(yb) != self.batch_size or not self.capture:
            # After capture the grads are the graph's static tensors: zero them in place, don't free them.
            self.opt.zero_grad(set_to_none=self.graph is None)
            return self._body(xb, yb)
        self.static_x.copy_(xb)
        self.static_y.copy_(yb)
        if self.graph is not None:
            return self.graph.replay()
        self.full_steps += 1
        if self.full_steps > WARMUP_STEPS:
            return self._capture_and_replay()
        self.side.wait_stream(torch.cuda.current_stream(self.device))  # warm up on a side stream, as capture wants
        with torch.cuda.stream(self.side):
            self.opt.zero_grad(set_to_none=True)
            self._body(self.static_x, self.static_y)
        torch.cuda.current_stream(self.device).wait_stream(self.side)

    def _capture_and_replay(self):
        """Capture the step (which does not run it), then replay once for this batch; eager on failure."""
        torch.cuda.synchronize(self.device)
        self.opt.zero_grad(set_to_none=True)  # backward allocates the grads in the graph's memory pool
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._body(self.static_x, self.static_y)
        except Exception as e:  # capture is best effort: the eager step computes the same thing
            self.capture, self.mode = False, f"static eager (CUDA graph capture failed: {type(e).__name__}: {e})"
            warnings.warn(f"CUDA graph capture failed, training eagerly: {type(e).__name__}: {e}", RuntimeWarning)
            return self.step(self.static_x, self.static_y)
        self.graph = graph
        graph.replay()
