"""Training and evaluation: the report's protocol on resident uint8 tensors, resumable via the run store."""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import time

import pandas as pd
import torch
import torchvision
from torch import nn

from . import runs as store
from .config import Config, ConfigError, experiment_name, make_config
from .data import balanced_subset, data_identity, load_cifar10
from .project import portable_path, project_commit
from .models import build_model
from .progress import RunProgress
from .recipes import Recipe, augment_batch, eval_batch, get_recipe
from .step import STEPS, EagerStep, StaticStep

EVAL_BATCH = {"cuda": 5000, "cpu": 1000}  # evaluation batch: large on CUDA (few launches)


def resolve_device(name: str = "auto") -> torch.device:
    """Return the torch device for a `device` parameter: auto picks CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("parameter 'device' = 'cuda' is invalid here: no CUDA device; valid: auto | cpu")
    return torch.device(name)


def make_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """Return SGD with the config's lr, momentum, weight decay and Nesterov flag."""
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)


def make_scheduler(opt, cfg: Config, steps_per_epoch: int):
    """Return (scheduler, steps_per_batch): StepLR per epoch, or OneCycle/cosine per batch."""
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma), False
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total), True
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.25,
                                               div_factor=10, final_div_factor=100), True


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: str = "none", normalize: bool = True,
             batch_size: int = 1000, precision: str = "fp32", channels_last: bool = False) -> dict:
    """Return {loss, acc (percent), preds} under the recipe's eval transform (normalize=False: without Normalize)."""
    recipe = get_recipe(recipe)
    device = next(model.parameters()).device
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    was_training = model.training
    model.eval()
    total_loss, preds = 0.0, []
    for i in range(0, len(x), batch_size):
        xb = eval_batch(recipe, x[i:i + batch_size].to(device, non_blocking=True), normalize)
        yb = y[i:i + batch_size].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(xb.contiguous(memory_format=fmt))
        total_loss += nn.functional.cross_entropy(out.float(), yb, reduction="sum").item()
        preds.append(out.argmax(1).cpu())
    model.train(was_training)
    preds = torch.cat(preds)
    return {"loss": total_loss / len(x), "acc": 100.0 * (preds == y.cpu()).sum().item() / len(x), "preds": preds}


def train_epoch(stepper: EagerStep, sched, per_step: bool, x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
                cfg: Config, generator: torch.Generator, progress: RunProgress | None = None) -> dict:
    """Train one epoch of seeded, augmented batches of resident uint8 tensors; return {loss, acc, images}."""
    stepper.model.train()
    stepper.reset()
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    perm = torch.randperm(len(x), generator=generator, device=generator.device).to(x.device)
    for i in range(0, len(x), cfg.batch_size):  # the last, smaller batch is kept, as DataLoader does
        idx = perm[i:i + cfg.batch_size]
        stepper.step(augment_batch(recipe, x[idx], generator).contiguous(memory_format=fmt), y[idx])
        if per_step:
            sched.step()
        if progress is not None and progress.tty:
            progress.step(stepper.totals, i + len(idx))
    if not per_step:
        sched.step()
    loss, correct = stepper.totals()
    return {"loss": loss / len(x), "acc": 100.0 * correct / len(x), "images": len(x)}


def train_run(config: Config | None = None, *, force: bool = False, progress: bool = True,
              runs_dir=None, on_epoch=None, step: str | None = None, **params) -> store.Run:
    """Return the finished run of a Config or of make_config's parameters: loaded, resumed or trained."""
    if config is not None and params:
        raise TypeError(f"give either a Config or parameters, not both (got {sorted(params)})")
    cfg = config if config is not None else make_config(**params)
    device = resolve_device(cfg.device)  # fails before any work if CUDA is asked for and absent
    step = step or os.environ.get("TRAIN_STEP") or "auto"
    if step not in STEPS:
        raise ConfigError(f"parameter 'step' = {step!r} is invalid; valid: {' | '.join(STEPS)}")
    ident = data_identity(cfg.data_dir, cfg.train_size, cfg.test_size, cfg.seed)
    rid = store.run_id(cfg.identity(), ident)
    path = store.runs_root(runs_dir) / rid
    if force:
        store.remove_run(path)
    if store.is_complete(path):
        return store.load_run(path)
    with store.run_lock(path, timeout=store.lock_wait_s()):
        if store.is_complete(path):  # another process finished it while this one waited for the lock
            return store.load_run(path)
        with store.full_disk_error(path):
            return _train(cfg, rid, path, device, ident, progress, on_epoch, step)


def _train(cfg, rid, path, device, ident, progress, on_epoch, step) -> store.Run:
    """Train (or resume) the run in `path`, holding its lock; write its record.json last and return it."""
    recipe = get_recipe(cfg.recipe)
    data = load_cifar10(cfg.data_dir, cfg.train_size, cfg.test_size, cfg.seed)
    config = {**cfg.to_dict(), "data_dir": portable_path(cfg.data_dir)}
    store.atomic_write_json(path / "config.json", {**config, "run_id": rid, "data": ident})  # for a person to read
    torch.backends.cudnn.benchmark |= device.type == "cuda"
    x, y, tx, ty = data.train_x, data.train_y, data.test_x, data.test_y
    if cfg.validation:
        # Settings are chosen on images held out of training; the test set is looked at once, at the end.
        held = torch.zeros(len(y), dtype=torch.bool)
        held[balanced_subset(y, cfg.validation, cfg.seed + 2)] = True
        x, y, tx, ty = x[~held], y[~held], x[held], y[held]
    x, y, tx, ty = x.to(device), y.to(device), tx.to(device), ty.to(device)

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.stem).to(device, memory_format=torch.channels_last if cfg.channels_last else None)
    opt = make_optimizer(model, cfg)
    steps = -(-len(x) // cfg.batch_size)
    sched, per_step = make_scheduler(opt, cfg, steps)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    history, start = [], 0
    if (path / "last.pt").exists():
        ckpt = store.load_checkpoint(path / "last.pt", map_location=device)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        history, start = ckpt["history"], ckpt["epoch"]
        torch.set_rng_state(ckpt["rng"])
    # Built after a resume, so that it takes over the loaded momentum buffers.
    stepper = (StaticStep(model, opt, criterion, cfg.batch_size, device, cfg.precision, cfg.channels_last)
               if step == "graph" or (step == "auto" and device.type == "cuda")
               else EagerStep(model, opt, criterion, device, cfg.precision))
    writer = store.CheckpointWriter()
    ev_kw = dict(recipe=cfg.recipe, precision=cfg.precision, channels_last=cfg.channels_last,
                 batch_size=EVAL_BATCH[device.type])

    bar = RunProgress(cfg.epochs, steps, f"[{rid} {cfg.recipe}]", progress, start)
    try:
        for epoch in range(start + 1, cfg.epochs + 1):
            # Seeded from (seed, epoch): a resumed run draws what an uninterrupted one would, replaying nothing.
            g = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + epoch)
            lr = opt.param_groups[0]["lr"]
            t0 = time.perf_counter()
            tr = train_epoch(stepper, sched, per_step, x, y, recipe, cfg, g, bar)
            t1 = time.perf_counter()
            ev = evaluate(model, tx, ty, **ev_kw)
            # Also scored without Normalize (raw_*): notebook 03's second curve, cheaper than training again.
            raw = evaluate(model, tx, ty, normalize=False, **ev_kw) if recipe.normalize else None
            t2 = time.perf_counter()
            row = {"epoch": epoch, "lr": lr, "train_loss": tr["loss"], "train_acc": tr["acc"], "test_loss": ev["loss"],
                   "test_acc": ev["acc"], "seconds": t2 - t0, "train_seconds": t1 - t0, "eval_seconds": t2 - t1,
                   "images_per_s": tr["images"] / (t1 - t0)}
            if raw is not None:
                row.update(raw_test_loss=raw["loss"], raw_test_acc=raw["acc"])
            history.append(row)
            # Snapshot to CPU now; serialise, hash and write in the background while the next epoch trains.
            ckpts = ([({"model": model.state_dict(), "epoch": epoch}, path / f"epoch{epoch:03d}.pt")]
                     if epoch in (*cfg.snapshot_epochs, cfg.epochs) else [])
            ckpts.append(({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                           "epoch": epoch, "history": history, "rng": torch.get_rng_state()}, path / "last.pt"))
            writer.submit(ckpts, [(path / "history.csv", pd.DataFrame(history).to_csv(index=False).encode())])
            bar.epoch_end(row)
            if on_epoch is not None:
                on_epoch(row)
    except BaseException:
        with contextlib.suppress(Exception):  # the training error is the one to report
            writer.drain()
        raise
    finally:
        bar.close()
    writer.drain()  # every checkpoint is on disk before record.json marks the run finished

    k = len(data.classes)  # confusion matrix of the final weights: rows true, columns predicted
    cm = torch.bincount(ty.cpu() * k + evaluate(model, tx, ty, **ev_kw)["preds"], minlength=k * k).view(k, k)
    h = pd.DataFrame(history)
    best = h.loc[h["test_acc"].idxmax()]
    results = {"final_test_acc": float(h["test_acc"].iloc[-1]), "best_test_acc": float(best["test_acc"]),
               "best_epoch": int(best["epoch"]), "data_source": data.source,
               "eval_set": "validation" if cfg.validation else "test",
               "train_images": len(x), "test_images": len(tx), "confusion": cm.tolist(),
               "per_class_acc": dict(zip(data.classes, (100.0 * cm.diag() / cm.sum(1).clamp(min=1)).tolist()))}
    if "raw_test_acc" in h:  # the same weights without Normalize (see the epoch loop)
        results.update(raw_final_test_acc=float(h["raw_test_acc"].iloc[-1]),
                       raw_best_test_acc=float(h["raw_test_acc"].max()))
    if cfg.validation:  # history's test_* columns hold validation figures; the test set is scored once
        once = evaluate(model, data.test_x.to(device), data.test_y.to(device), **ev_kw)
        results.update(heldout_test_acc=once["acc"], heldout_test_images=len(data.test_x))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    env = {"torch": torch.__version__, "torchvision": torchvision.__version__, "python": platform.python_version(),
           "platform": platform.platform(), "device": device.type, "device_name": name,
           "threads": torch.get_num_threads(), "seed": cfg.seed, "git_commit": project_commit(), "step": stepper.mode,
           "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    store.atomic_write_json(path / store.RECORD, {"run_id": rid, "experiment": experiment_name(cfg), "config": config,
                                                  "data": ident, "results": results, "env": env})  # marks it finished
    return store.load_run(path)
