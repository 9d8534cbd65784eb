"""Bad parameters fail at once with a message naming the parameter, the value and the choices."""
import pytest
import torch

import helpers as h
from helpers.core import config as config_mod
from helpers.core.config import ConfigError


def test_profiles_fill_defaults_and_full_is_the_report_protocol():
    c = h.make_config(profile="full")
    assert (c.epochs, c.lr, c.momentum, c.weight_decay, c.step_size, c.gamma, c.batch_size) == \
        (60, 0.1, 0.9, 5e-4, 50, 0.1, 128)
    assert c.snapshot_epochs == (30, 50, 60) and c.stem == "imagenet"
    s = h.make_config(profile="smoke")
    assert s.data_dir == "synthetic" and s.epochs < c.epochs


def test_changing_epochs_rescales_lr_drop_and_snapshots():
    c = h.make_config(profile="full", epochs=12)
    assert c.step_size == 10 and c.snapshot_epochs == (6, 10, 12)


@pytest.mark.parametrize("params, name, valid", [
    (dict(recipe="jitter"), "recipe", "none | flip_rotate | crop | crop_flip | normalize"),
    (dict(epochs=0), "epochs", "a positive integer"),
    (dict(epochs=-3), "epochs", "a positive integer"),
    (dict(epochs=10, snapshot_epochs=(5, 11)), "snapshot_epochs", "between 1 and epochs=10"),
    (dict(lr="0.1"), "lr", "type float"),
    (dict(epochs=2.5), "epochs", "type int"),
    (dict(stem="resnet"), "stem", "imagenet | cifar"),
    (dict(device="tpu"), "device", "auto | cpu | cuda"),
    (dict(profile="huge"), "profile", "auto | smoke | quick | full"),
])
def test_bad_values_name_parameter_value_and_choices(params, name, valid):
    with pytest.raises(ConfigError) as e:
        h.make_config(**{"profile": "smoke", **params})
    msg = str(e.value)
    assert repr(name) in msg and valid in msg
    assert repr(list(params.values())[-1]) in msg


def test_unknown_parameter_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) 'epoch'.*epochs"):
        h.make_config(profile="smoke", epoch=3)


def test_bad_config_fails_before_any_work(tmp_path):
    with pytest.raises(ConfigError):
        h.train_run(profile="smoke", recipe="nope", runs_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_auto_profile_reads_environment(monkeypatch):
    monkeypatch.setenv("PROFILE", "smoke")
    assert h.resolve_profile("auto") == "smoke"
    assert h.resolve_profile("full") == "full"
    monkeypatch.setenv("PROFILE", "bogus")
    with pytest.raises(ConfigError, match="PROFILE"):
        h.resolve_profile("auto")


def test_make_reports_auto_profile_is_full_with_cuda_and_quick_without(monkeypatch):
    """`make report` exports PROFILE=auto: a CUDA workstation gets the report's protocol, a CPU the quick profile."""
    monkeypatch.setenv("PROFILE", "auto")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert h.resolve_profile("auto") == "full" and h.make_config("auto").profile == "full"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert h.resolve_profile("auto") == "quick"


def test_run_id_ignores_profile_and_device_but_not_results_fields():
    from helpers.core.runs import run_id
    a = h.make_config(profile="quick", epochs=5)
    quick = config_mod.PROFILE_DEFAULTS["quick"]
    b = h.make_config(profile="full", epochs=5, train_size=quick["train_size"], test_size=quick["test_size"],
                      device="cpu")
    assert run_id(a.identity(), {}) == run_id(b.identity(), {})
    assert run_id(a.identity(), {}) != run_id(h.make_config(profile="quick", epochs=5, lr=0.5).identity(), {})
    # extras enter the id only when changed from their defaults
    assert "label_smoothing" not in a.identity()
    assert h.make_config(profile="quick", label_smoothing=0.1).identity()["label_smoothing"] == 0.1


def test_fast_recipe_brings_its_schedule_unless_overridden():
    c = h.make_config(profile="full", recipe="fast")
    assert (c.schedule, c.label_smoothing, c.nesterov, c.epochs) == ("onecycle", 0.1, True, 15)
    assert c.snapshot_epochs[-1] == 15 and c.step_size == 12
    d = h.make_config(profile="full", recipe="fast", epochs=10, lr=0.05, label_smoothing=0.0)
    assert (d.epochs, d.lr, d.label_smoothing) == (10, 0.05, 0.0)
    q = h.make_config(profile="quick", recipe="fast", data_dir="/f")  # quick's own peak LR, chosen on validation
    assert (q.epochs, q.lr, c.lr) == (10, config_mod.FAST_LR["quick"], 0.2)
    assert h.make_config(profile="quick", recipe="fast", data_dir="/f", lr=0.3).lr == 0.3


def test_validation_must_leave_training_images():
    with pytest.raises(ConfigError, match="'validation' = 2000 .*smaller than train_size"):
        h.make_config(profile="smoke", validation=2000)


def test_the_test_transform_is_no_parameter_of_a_run():
    with pytest.raises(ConfigError, match="unknown parameter.*'mismatch'; valid: profile, recipe"):
        h.make_config(profile="smoke", recipe="normalize", mismatch=True)
    assert "mismatch" not in h.make_config(profile="smoke", recipe="normalize").identity()


def test_experiment_name_is_the_recipe_and_what_departs_from_the_profiles_defaults():
    name = lambda profile, **kw: h.experiment_name(h.make_config(profile, data_dir="synthetic", **kw))  # noqa: E731
    assert name("quick", recipe="none") == name("full", recipe="none", seed=2, epochs=3, train_size=500) == "none"
    assert name("quick", recipe="normalize", lr=0.5) == name("full", recipe="normalize", lr=0.5) == "normalize, lr 0.5"
    assert name("quick", recipe="fast", validation=300) == name("full", recipe="fast") == "fast"  # each profile's lr
    assert name("full", recipe="fast", lr=0.02) == "fast, lr 0.02"
    assert (name("quick", recipe="none", lr=0.05, stem="cifar", schedule="onecycle", batch_size=32)
            == "none, lr 0.05, stem cifar, schedule onecycle, batch_size 32")


def test_onecycle_with_too_few_optimizer_steps_fails_naming_epochs_and_what_would_do(tmp_path):
    """OneCycleLR divides by zero at 4 steps (1 batch x 4 epochs here): the config says so before any work."""
    tiny = dict(profile="smoke", recipe="fast", train_size=200, test_size=100, validation=100)
    with pytest.raises(ConfigError) as e:
        h.train_run(**tiny, runs_dir=tmp_path)
    assert str(e.value).startswith("parameter 'epochs' = 4 is invalid; valid: at least 5 with schedule 'onecycle', "
                                   "which needs 5 optimizer steps and gets 1 per epoch (100 training images"), e.value
    assert "smaller batch_size" in str(e.value) and "step | cosine" in str(e.value)
    assert list(tmp_path.iterdir()) == []
    assert h.make_config(**tiny, epochs=5).epochs == 5 and h.make_config(**tiny, batch_size=25).epochs == 4
    assert h.make_config(**{**tiny, "recipe": "crop_flip"}, schedule="cosine").epochs == 4
