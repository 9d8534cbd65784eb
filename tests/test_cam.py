"""CAM wrappers: shapes per layer, the 1x1 warning, batch = per image, no hooks left, the explorer renders."""
import dataclasses
import json
import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

import helpers as h
from helpers.notebook import cam as C
from helpers.notebook.cam import wrappers as W  # compute_cams looks the library's names up there

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {"imagenet": h.build_model("imagenet").eval(), "cifar": h.build_model("cifar").eval()}


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=g)


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules())


@pytest.mark.parametrize("stem", ["imagenet", "cifar"])
def test_cam_shape_and_map_size_for_each_layer(models, images, stem):
    model = models[stem]
    shapes = dict(h.stage_shapes(model))
    for layer in C.CAM_LAYERS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", C.BlankCamWarning)
            res = C.compute_cams(model, images[:3], layer, "GradCAM")
        assert res.cams.shape == (3, 32, 32) and res.cams.dtype == np.float32
        assert res.map_size == shapes[layer][1:]
        assert res.cams.min() >= 0 and res.cams.max() <= 1 + 1e-6
        assert res.probs.shape == (3, 10) and np.allclose(res.probs.sum(1), 1, atol=1e-5)
        if res.map_size == (1, 1):
            assert res.blank and not res.cams.any()  # min-max scaling of one value: all zeros
        else:
            assert not res.blank and all(c.max() > c.min() for c in res.cams)
    expected_layer4 = (1, 1) if stem == "imagenet" else (4, 4)
    assert C.layer_map_sizes(model)["layer4"] == expected_layer4


def test_blank_layer_warns_every_time_and_others_do_not(models, images):
    for _ in range(2):  # "always": a second request warns again
        with pytest.warns(C.BlankCamWarning, match="layer4 of this model is a 1x1 map"):
            C.compute_cams(models["imagenet"], images[:1], "layer4")
    with warnings.catch_warnings():
        warnings.simplefilter("error", C.BlankCamWarning)
        C.compute_cams(models["imagenet"], images[:1], "layer3")
        C.compute_cams(models["cifar"], images[:1], "layer4")
    table = C.cam_layer_table(models)
    assert table.set_index("layer").loc["layer4", "imagenet: CAM"] == "1 value: blank"
    assert table.set_index("layer").loc["layer4", "cifar: CAM"] == "4×4 = 16 positions"


@pytest.mark.parametrize("method", [m for m in C.METHODS if m != "ScoreCAM"] + ["ScoreCAM"])
def test_batch_equals_one_image_at_a_time(models, images, method):
    model = models["imagenet"]
    n = 3 if method == "ScoreCAM" else 6
    targets = [k % 10 for k in range(3, 3 + n)]  # a different class for every image
    batch = C.compute_cams(model, images[:n], "layer2", method, target=targets, batch_size=n)
    single = [C.compute_cams(model, images[i:i + 1], "layer2", method, target=targets[i]) for i in range(n)]
    np.testing.assert_allclose(batch.cams, np.concatenate([s.cams for s in single]), atol=2e-4)
    np.testing.assert_array_equal(batch.targets, targets)
    # Batches of two give the same as one batch: one target per image, never one for the whole batch.
    two = C.compute_cams(model, images[:n], "layer2", method, target=targets, batch_size=2)
    np.testing.assert_allclose(two.cams, batch.cams, atol=2e-4)


def test_predicted_target_explains_each_images_own_prediction(models, images):
    model = models["imagenet"]
    res = C.compute_cams(model, images, "layer2", "GradCAM")
    np.testing.assert_array_equal(res.targets, res.probs.argmax(1))
    explicit = C.compute_cams(model, images, "layer2", "GradCAM", target=list(res.targets))
    np.testing.assert_allclose(res.cams, explicit.cams, atol=1e-5)
    other = C.compute_cams(model, images, "layer2", "GradCAM", target="truck")
    assert (other.targets == 9).all()


@pytest.mark.parametrize("method", list(C.METHODS) + list(C.REFERENCE_METHODS))
def test_no_hooks_grads_or_state_left_behind(models, images, method):
    model = models["imagenet"]
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    C.compute_cams(model, images[:2], "layer3", method, batch_size=1)
    assert hook_count(model) == 0
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert model.training  # restored: the library switches to eval and leaves it so
    model.eval()


def test_hooks_removed_and_errors_raised_when_the_library_fails(models, images, monkeypatch):
    model = models["imagenet"]

    class Boom:
        def __init__(self, category):
            pass

        def __call__(self, output):
            raise self.error

    for error, expected in ((RuntimeError("boom"), RuntimeError), (IndexError("swallowed"), RuntimeError)):
        Boom.error = error
        monkeypatch.setattr(W, "ClassifierOutputTarget", Boom)
        with pytest.raises(expected):  # the library's __exit__ swallows IndexError: we still raise
            C.compute_cams(model, images[:2], "layer2", target=0)
        assert hook_count(model) == 0
        assert all(p.requires_grad for p in model.parameters())


def test_works_when_the_caller_disabled_gradients(models, images):
    model = models["imagenet"]
    free = C.compute_cams(model, images[:2], "layer2")
    with torch.no_grad():
        inside = C.compute_cams(model, images[:2], "layer2")
    np.testing.assert_allclose(inside.cams, free.cams, atol=1e-6)


def test_bad_arguments_fail_early_naming_the_parameter(models, images):
    m = models["imagenet"]
    with pytest.raises(ValueError, match=r"'layer' = 'layer5'.*layer1 \| layer2"):
        C.compute_cams(m, images, "layer5")
    with pytest.raises(ValueError, match=r"'method' = 'GradCam'.*GradCAM"):
        C.compute_cams(m, images, "layer2", "GradCam")
    with pytest.raises(ValueError, match=r"'target' = 'kitten'.*predicted \| airplane"):
        C.compute_cams(m, images, "layer2", target="kitten")
    with pytest.raises(ValueError, match=r"'target' = 10"):
        C.compute_cams(m, images, "layer2", target=10)
    with pytest.raises(ValueError, match=r"'target' has 2 classes for 6 images"):
        C.compute_cams(m, images, "layer2", target=[1, 2])
    with pytest.raises(ValueError, match=r"'rows' = 'layers'"):
        C.cam_grid(m, images, torch.zeros(6, dtype=torch.long), rows="layers")


def test_overlay_takes_only_images_in_0_1(models, images):
    rgb = C.to_rgb01(images)
    assert rgb.shape == (6, 32, 32, 3) and rgb.min() >= 0 and rgb.max() <= 1
    normalized = (images.float() / 255 - 0.5) / 0.25
    with pytest.raises(ValueError, match="'images' has values in"):
        C.to_rgb01(normalized)
    fig = C.cam_gallery(models["cifar"], images[:2], torch.zeros(2, dtype=torch.long), ncols=3)
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (32, 32, 3) and shown.dtype == np.uint8  # the library's heat-map overlay
    assert not fig.axes[2].axison  # the unused panel is switched off
    plt.close(fig)


class LeftHalf(nn.Module):
    """A 'classifier' whose class-0 logit is the texture of the left half of the image, and nothing else.

    ROAD fills removed pixels by smooth interpolation, so removing left-half pixels lowers the logit.
    """

    def forward(self, x):
        texture = (x[:, :, :, 1:16] - x[:, :, :, :15]).abs().mean((1, 2, 3))
        return torch.stack([10 * texture] + [torch.zeros_like(texture)] * 9, 1)


def test_faithfulness_prefers_the_map_on_the_evidence():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(100, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=g)
    left = np.zeros((4, 32, 32), np.float32)
    left[:, :, :16] = np.linspace(0.5, 1, 16)[None, None, :]
    left[:, :, 16:] = np.linspace(0, 0.4, 16)[None, None, :]

    def score(cams):
        res = C.CamResult(cams, np.zeros(4, np.int64), np.zeros((4, 10)), "layer1", "given", (32, 32))
        return C.faithfulness(LeftHalf(), images, res)

    right = left[:, :, ::-1].copy()
    on, off, blank = score(left), score(right), score(np.zeros_like(left))
    assert (on > off).all() and on.mean() > 0 > off.mean()
    assert np.abs(blank).max() < 0.01  # a blank map carries no evidence: about zero
    np.testing.assert_array_equal(score(left), on)  # seeded imputation noise: reproducible


def test_faithfulness_table_and_its_conclusion(models, images):
    cks = {"ImageNet stem": C.Checkpoint("ImageNet stem", models["imagenet"])}
    table = C.faithfulness_table(cks, images[:3], layers=("layer3", "layer4"), methods=("GradCAM", "ScoreCAM"),
                                 scorecam_images=2, percentiles=(50,))
    assert len(table) == 2 * 3  # 2 layers × (2 methods + RandomCAM)
    assert set(table[table["method"] == "ScoreCAM"]["images"]) == {2}
    assert set(table[table["method"] == "GradCAM"]["images"]) == {3}
    blank = table[table["layer"] == "layer4"]
    assert (blank["map"] == "1×1").all() and blank["road"].abs().max() < 0.01
    assert [len(s) for s in table["scores"]] == list(table["images"])
    np.testing.assert_allclose(table["road"], [np.mean(s) for s in table["scores"]])
    rows = h.verdict_frame(C.faithfulness_verdicts(table)).set_index("claim")
    assert list(rows.index) == ["ImageNet stem: spatial maps beat RandomCAM", "ImageNet stem: 1×1 maps beat RandomCAM"]
    by = table.set_index(["layer", "method"])["road"]  # ScoreCAM, scored on fewer images, stays out of the verdicts
    spatial, blank_row = rows.loc["ImageNet stem: spatial maps beat RandomCAM"], rows.iloc[1]
    assert spatial["A"].startswith(f"ImageNet stem {100 * by['layer3', 'GradCAM']:.2f} ± ")
    assert spatial["B"].startswith(f"RandomCAM {100 * by['layer3', 'RandomCAM']:.2f} ± ")
    assert blank_row["difference"] in ("+0.00 points", "-0.00 points")  # a blank map carries no evidence
    assert blank_row["verdict"].startswith("consistent")
    pivot = C.faithfulness_pivot(table)
    assert list(pivot.columns[3:]) == ["GradCAM", "ScoreCAM", "RandomCAM"]
    fig = C.plot_faithfulness(table)
    assert len(fig.axes) == 1
    plt.close(fig)


@pytest.fixture(scope="module")
def checkpoints(models):
    return {"imagenet · epoch 1": C.Checkpoint("imagenet · epoch 1", models["imagenet"]),
            "cifar · epoch 1": C.Checkpoint("cifar · epoch 1", models["cifar"], "none")}


def test_explorer_callback_renders_every_combination_type(checkpoints, images):
    """Every checkpoint × layer × method, each target kind (predicted, a class name, a class index)."""
    labels = torch.arange(len(images))
    targets = ("predicted", "cat", 2)
    for ck in checkpoints:
        # ScoreCAM costs one forward per channel; on the CIFAR stem it is tried on its cheapest layer only.
        for layer in C.CAM_LAYERS:
            methods = [m for m in C.METHODS if m != "ScoreCAM" or ck.startswith("imagenet") or layer == "layer1"]
            for k, method in enumerate(methods):
                target = targets[k % 3]
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    fig = C.explorer_figure(checkpoints, images, labels, index=1, target=target,
                                            layer=layer, method=method, checkpoint=ck)
                assert len(fig.axes) == 3 and fig.axes[2].images  # image, CAM, overlay
                blank = C.layer_map_sizes(checkpoints[ck].model)[layer] == (1, 1)
                assert ("blank by construction" in fig._suptitle.get_text()) == blank
                assert any(issubclass(w.category, C.BlankCamWarning) for w in caught) == blank
                if target != "predicted":  # the explained class is named: "CAM for" it, or it is the prediction
                    assert h.CLASSES[C.resolve_targets(target, 1)[0]] in fig.axes[2].get_title()
                plt.close(fig)


def test_explorer_widgets_redraw_on_every_control(checkpoints, images):
    ex = C.CamExplorer(checkpoints, images, torch.arange(len(images)))
    assert ex.renders == 1
    changes = {"index": 2, "target": "dog", "layer": "layer1", "method": "EigenCAM",
               "checkpoint": "cifar · epoch 1"}
    for k, (name, value) in enumerate(changes.items(), start=2):
        ex.controls[name].value = value
        assert ex.renders == k
    values = {k: c.value for k, c in ex.controls.items()}
    assert values == changes
    fig = C.explorer_figure(checkpoints, images, torch.arange(len(images)), **values)
    assert "cifar · epoch 1" in fig._suptitle.get_text()
    plt.close(fig)


def test_static_stand_in_when_no_frontend(checkpoints, images, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(type(obj).__name__))
    assert C.frontend_is_live() is False  # plain Python: no kernel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", C.BlankCamWarning)
        assert C.show_explorer(checkpoints, images, torch.arange(6), index=0) is None
        assert shown == ["Figure"]  # the static grid in the widget's place
        shown.clear()
        assert isinstance(C.show_explorer(checkpoints, images, torch.arange(6), interactive=True), C.CamExplorer)
    # the explorer's first drawing (into its output area), the widget, then the static grid all the same
    assert shown == ["Figure", "VBox", "Figure"]


def test_frontend_detection_in_a_real_kernel():
    """A kernel asked with allow_stdin=True (JupyterLab) sees a frontend; with False (papermill, nbval) not."""
    jupyter_client = pytest.importorskip("jupyter_client")
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3")
    try:
        seen = {}
        for allow in (True, False):
            msg_id = kc.execute("import helpers.notebook.cam as c; print(c.frontend_is_live())", allow_stdin=allow)
            out = []
            while True:
                msg = kc.get_iopub_msg(timeout=60)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "stream":
                    out.append(msg["content"]["text"])
                if msg["msg_type"] == "error":
                    raise AssertionError(json.dumps(msg["content"]))
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    break
            seen[allow] = "".join(out).strip()
        assert seen == {True: "True", False: "False"}
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_grid_gives_each_panel_its_map_size_when_stems_differ(checkpoints, images):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", C.BlankCamWarning)
        fig = C.cam_grid(checkpoints, images[:1], torch.zeros(1, dtype=torch.long), rows="checkpoint",
                         cols="layer", layers=("layer1", "layer4"))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[1].startswith("layer1\n8×8 map") and titles[2].startswith("layer4\n1×1 map")
    assert titles[4].startswith("32×32 map") and titles[5].startswith("4×4 map")
    plt.close(fig)
    fig = C.cam_grid(checkpoints["cifar · epoch 1"], images[:2], torch.zeros(2, dtype=torch.long),
                     layers=("layer1", "layer4"))
    assert fig.axes[1].get_title().startswith("layer1 (32×32)")  # one stem: the size goes in the header
    plt.close(fig)


def test_notebook_settings_fail_early_naming_the_parameter():
    cfg = h.make_config(profile="smoke")
    for kwargs, match in ((dict(target="kitten"), "'target' = 'kitten'"), (dict(method="Grad"), "'cam_method'"),
                          (dict(metric_images=1), "'metric_images' = 1"),
                          (dict(metric_images=4, scorecam_images=5), "'scorecam_images' = 5"),
                          (dict(image_index=10_000), "'image_index' = 10000")):
        with pytest.raises(h.ConfigError, match=match):
            C.cam_settings(cfg, **kwargs)
    with pytest.raises(h.ConfigError, match="'cifar_epochs' = 0"):
        C.cifar_stem_config(cfg, epochs=0)
    with pytest.raises(h.ConfigError, match="'threads' = -1"):
        C.set_threads(-1)
    quick = C.cifar_stem_config(h.make_config(profile="quick", data_dir="synthetic"))
    assert (quick.stem, quick.schedule, quick.batch_size) == ("cifar", "onecycle", 32)
    full = h.make_config(profile="full", data_dir="synthetic")
    full_cifar = C.cifar_stem_config(full)
    assert full_cifar.stem == "cifar" and (full_cifar.epochs, full_cifar.lr, full_cifar.batch_size,
                                           full_cifar.schedule) == (full.epochs, full.lr, full.batch_size, "step")


def test_faithfulness_verdicts_follow_the_numbers():
    import pandas as pd

    def table(shift, sd=0.01):
        rng, rows = np.random.default_rng(0), []
        for model, base in (("a", 0.05), ("b", 0.05 + shift)):
            for layer in ("layer1", "layer2"):
                for method, mean in (("GradCAM", base), ("LayerCAM", base), ("RandomCAM", 0.0)):
                    s = mean + sd * rng.standard_normal(12)
                    rows.append(dict(model=model, layer=layer, map="8×8", method=method, images=12, road=s.mean(),
                                     sem=s.std(ddof=1) / np.sqrt(12), scores=tuple(s)))
            for method in ("GradCAM", "RandomCAM"):  # a 1×1 layer stays out of the spatial means, however it scored
                rows.append(dict(model=model, layer="layer4", map="1×1", method=method, images=12, road=5.0, sem=0.0,
                                 scores=(5.0,) * 12))
        return pd.DataFrame(rows)

    def verdicts(t):
        return h.verdict_frame(C.faithfulness_verdicts(t, [("b beats a", "b", "a")])).set_index("claim")["verdict"]

    ahead, behind, noisy = verdicts(table(0.1)), verdicts(table(-0.1)), verdicts(table(0.002, sd=0.05))
    assert ahead["b beats a"].endswith("higher") and behind["b beats a"].endswith("lower")
    assert noisy["b beats a"].startswith("consistent")
    assert ahead["a: spatial maps beat RandomCAM"].endswith("higher")
    assert behind["b: spatial maps beat RandomCAM"].endswith("lower")
    assert ahead["a: 1×1 maps beat RandomCAM"].startswith("consistent")
    t = table(0.1)
    spatial = t[(t["model"] == "b") & (t["map"] == "8×8") & (t["method"] != "RandomCAM")]
    row = h.verdict_frame(C.faithfulness_verdicts(t, [("b beats a", "b", "a")])).iloc[-1]
    assert row["A"].startswith(f"b {100 * spatial['road'].mean():.2f} ± ")  # per image ×100, 1×1 layer left out
    with pytest.raises(ValueError, match="'claims': models 'b' and 'c'"):
        C.faithfulness_verdicts(t, [("c", "b", "c")])


def test_faithfulness_table_is_reproducible(models, images):
    cks = {"m": C.Checkpoint("m", models["imagenet"])}
    args = dict(layers=("layer2",), methods=("GradCAM",), percentiles=(50,))
    a = C.faithfulness_table(cks, images[:3], **args)
    np.random.rand(5)  # whatever the caller's generators did in between
    torch.rand(5)
    b = C.faithfulness_table(cks, images[:3], **args)
    assert list(a["method"]) == ["GradCAM", "RandomCAM"]
    np.testing.assert_array_equal(a["road"], b["road"])


def test_blank_table_counts_all_zero_maps(models, images):
    with warnings.catch_warnings():
        warnings.simplefilter("error", C.BlankCamWarning)  # the table itself must not warn
        t = C.blank_table({"imagenet": models["imagenet"]}, images, layers=("layer3", "layer4"))
    assert list(t.columns) == ["model", "layer3 (2×2)", "layer4 (1×1)"]
    assert t.loc[0, "layer4 (1×1)"] == "100%"
    expected = C.compute_cams(models["imagenet"], images, "layer3").cams.reshape(len(images), -1).max(1) == 0
    assert t.loc[0, "layer3 (2×2)"] == f"{100 * expected.mean():.0f}%"


def test_blank_note_and_summary_follow_the_measurement(models, images):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", C.BlankCamWarning)
        blank = C.compute_cams(models["imagenet"], images[:2], "layer4")
    note = C.blank_note(blank, "imagenet")
    assert "GradCAM maps of imagenet on layer4 (1×1) span [0.000, 0.000] over 2 test images" in note
    assert "all zeros, as a 1×1 map predicts" in note
    text = C.cam_summary(models, blank, report="imagenet")
    assert note in text and "could show the photograph under one uniform colour, never where the model looks" in text
    assert "(imagenet: `layer1` 8×8, `layer2` 4×4, `layer3` 2×2; cifar: `layer1` 32×32, `layer2` 16×16, " \
           "`layer3` 8×8, `layer4` 4×4)" in text
    # The wording follows the measurement: a 1x1 map that did not scale to zeros, and a spatial layer4.
    odd = dataclasses.replace(blank, cams=blank.cams + 0.5)
    assert "**not** all zeros" in C.blank_note(odd, "imagenet")
    assert "could show" not in C.cam_summary(models, odd, "imagenet")
    spatial = C.compute_cams(models["cifar"], images[:1], "layer4")
    text = C.cam_summary(models, spatial, "cifar")
    assert "(4×4)" in text and "over 1 test image:" in text and "they can point somewhere" in text
    assert "could show" not in text
