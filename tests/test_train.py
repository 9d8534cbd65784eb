"""Training learns, is seeded, is cached in the run store, resumes exactly, and detects corruption."""
import pandas as pd
import pytest
import torch

import helpers as h
from helpers.core import train as train_mod
from helpers.core.runs import CorruptRunError, load_checkpoint

COMPARE = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc"]
SMALL = dict(profile="smoke", train_size=600, test_size=200, epochs=3, batch_size=64)


def test_short_run_learns_far_above_chance(tmp_path):
    # 2,000 images x 4 epochs: enough to learn the synthetic set well (the smoke default, 1,000, is for speed)
    run = h.train_run(profile="smoke", train_size=2000, runs_dir=tmp_path, progress=False)
    assert run.history["train_loss"].iloc[-1] < run.history["train_loss"].iloc[0]
    assert run.final_acc > 60, run.history  # chance is 10%
    m = run.metrics
    assert len(m["per_class_acc"]) == 10 and sum(map(sum, m["confusion"])) == 500
    assert {"history.csv", "record.json", "last.pt"} <= {p.name for p in run.path.iterdir()}
    assert (run.experiment, run.record["run_id"], run.env["step"]) == ("none", run.path.name, "eager")
    assert {f"epoch{e:03d}.pt" for e in (2, 3, 4)} <= {p.name for p in run.path.iterdir()}
    assert list(run.history.columns[:6]) == COMPARE
    assert (run.history["images_per_s"] > 0).all()


def test_finished_run_is_loaded_not_retrained(tmp_path, monkeypatch):
    first = h.train_run(**SMALL, runs_dir=tmp_path, progress=False)

    def boom(*a, **k):
        raise AssertionError("trained again")
    monkeypatch.setattr(train_mod, "train_epoch", boom)
    again = h.train_run(**SMALL, runs_dir=tmp_path, progress=False)
    assert again.id == first.id
    pd.testing.assert_frame_equal(again.history, first.history)
    with pytest.raises(AssertionError, match="trained again"):
        h.train_run(**SMALL, runs_dir=tmp_path, progress=False, force=True)


def test_same_seed_same_history_other_seed_differs(tmp_path):
    a = h.train_run(**SMALL, runs_dir=tmp_path / "a", progress=False)
    b = h.train_run(**SMALL, runs_dir=tmp_path / "b", progress=False)
    c = h.train_run(**{**SMALL, "seed": 1}, runs_dir=tmp_path / "c", progress=False)
    pd.testing.assert_frame_equal(a.history[COMPARE], b.history[COMPARE])
    assert not a.history["train_loss"].equals(c.history["train_loss"])


class Interrupt(Exception):
    pass


def _interrupt_at(epoch):
    def on_epoch(row):
        if row["epoch"] == epoch:
            raise Interrupt
    return on_epoch


def test_interrupted_run_resumes_to_the_same_history(tmp_path):
    cfg = dict(SMALL, recipe="crop_flip", epochs=4, snapshot_epochs=(2, 4))
    whole = h.train_run(**cfg, runs_dir=tmp_path / "whole", progress=False)
    with pytest.raises(Interrupt):
        h.train_run(**cfg, runs_dir=tmp_path / "cut", progress=False, on_epoch=_interrupt_at(2))
    seen = []
    resumed = h.train_run(**cfg, runs_dir=tmp_path / "cut", progress=False, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [3, 4]  # epochs 1-2 were not trained again
    pd.testing.assert_frame_equal(resumed.history[COMPARE], whole.history[COMPARE])
    for e in (2, 4):
        a, b = (load_checkpoint(r.checkpoint_path(e))["model"] for r in (whole, resumed))
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_corrupt_checkpoint_is_reported_not_used(tmp_path):
    with pytest.raises(Interrupt):
        h.train_run(**SMALL, runs_dir=tmp_path, progress=False, on_epoch=_interrupt_at(1))
    last = next(tmp_path.glob("*/last.pt"))
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0xFF
    last.write_bytes(bytes(data))
    with pytest.raises(CorruptRunError, match="last.pt: checkpoint is corrupt"):
        h.train_run(**SMALL, runs_dir=tmp_path, progress=False)


def test_snapshots_load_as_models_and_summary_lists_runs(tmp_path):
    run = h.train_run(**SMALL, runs_dir=tmp_path, progress=False)
    model = run.load_model(2)
    assert not model.training
    d = h.load_cifar10("synthetic", 600, 200)
    final = h.evaluate(run.load_model(), d.test_x, d.test_y)
    assert final["acc"] == pytest.approx(run.final_acc)
    with pytest.raises(ValueError, match=r"'epoch' = 7 .*valid: \[1, 2, 3\]|'epoch' = 7 .*valid: \[2, 3\]"):
        run.load_model(7)
    s = h.records(tmp_path)
    assert len(s) == 1 and s.loc[0, "final_test_acc"] == run.final_acc and s.loc[0, "run_id"] == run.id
    assert s.loc[0, "experiment"] == "none, batch_size 64" and s.loc[0, "folder"] == run.id  # 64: not the default
    assert pd.isna(s.loc[0, "raw_final_test_acc"])


def test_gpu_path_functions_run_on_cpu(tmp_path):
    """The CUDA options (bf16 autocast, channels_last) are device-agnostic code: exercise them here."""
    run = h.train_run(**SMALL, precision="bf16", channels_last=True, runs_dir=tmp_path, progress=False)
    assert run.config["precision"] == "bf16" and len(run.history) == 3
    assert torch.isfinite(torch.tensor(run.history["train_loss"].values)).all()


def test_model_stems_and_stage_shapes():
    shapes = dict(h.stage_shapes(h.build_model("imagenet")))
    assert shapes["layer4"] == (512, 1, 1) and shapes["layer3"] == (256, 2, 2)
    cifar = dict(h.stage_shapes(h.build_model("cifar")))
    assert cifar["layer4"] == (512, 4, 4) and cifar["layer1"] == (64, 32, 32)
    assert h.build_model()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_validation_holdout_is_evaluated_per_epoch_and_test_once(tmp_path):
    run = h.train_run(**SMALL, validation=100, runs_dir=tmp_path, progress=False)
    m = run.metrics
    assert m["eval_set"] == "validation" and m["train_images"] == 500 and m["test_images"] == 100
    assert m["heldout_test_images"] == 200 and 0 <= m["heldout_test_acc"] <= 100
    assert sum(map(sum, m["confusion"])) == 100


def test_normalize_run_is_scored_both_ways_each_epoch(tmp_path):
    run = h.train_run(**SMALL, recipe="normalize", runs_dir=tmp_path, progress=False)
    data = h.load_cifar10("synthetic", SMALL["train_size"], SMALL["test_size"], 0)
    model = run.load_model()
    plain = h.evaluate(model, data.test_x, data.test_y, recipe="normalize", normalize=False)
    matched = h.evaluate(model, data.test_x, data.test_y, recipe="normalize")
    assert run.history["raw_test_acc"].iloc[-1] == pytest.approx(plain["acc"])  # same weights, no Normalize
    assert run.history["test_acc"].iloc[-1] == pytest.approx(matched["acc"])
    assert run.metrics["raw_final_test_acc"] == pytest.approx(plain["acc"])
    assert run.metrics["raw_best_test_acc"] == pytest.approx(run.history["raw_test_acc"].max())
    assert h.records(tmp_path).loc[0, "raw_final_test_acc"] == pytest.approx(plain["acc"])
    raw = h.raw_history(run)
    assert raw["test_acc"].tolist() == run.history["raw_test_acc"].tolist()
    plain_run = h.train_run(**SMALL, runs_dir=tmp_path, progress=False)  # recipe none: no raw evaluation
    assert "raw_test_acc" not in plain_run.history and "raw_final_test_acc" not in plain_run.metrics
    with pytest.raises(ValueError, match="no evaluation without Normalize"):
        h.raw_history(plain_run)
