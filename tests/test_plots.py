"""Plot helpers draw what they are given on the given Axes (or a new one) and return it."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import helpers as h  # noqa: E402
from helpers.notebook import plots  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def history(epochs=6, drop_after=4, offset=0.0):
    """A made-up history: loss falls, accuracy rises, LR drops tenfold after `drop_after`."""
    e = np.arange(1, epochs + 1)
    return pd.DataFrame({"epoch": e, "lr": np.where(e <= drop_after, 0.1, 0.01),
                         "train_loss": 2.0 / e, "train_acc": 40 + 8 * e + offset,
                         "test_loss": 2.2 / e + 0.1, "test_acc": 35 + 6 * e + offset})


def lines_by_label(ax):
    return {ln.get_label(): ln for ln in ax.get_lines()}


def test_lr_drops_are_between_the_epochs_where_lr_falls():
    assert plots.lr_drops(history(6, 4)) == [4.5]
    assert plots.lr_drops(history(6, 6)) == []
    two = history(8, 3)
    two.loc[two["epoch"] > 6, "lr"] = 0.001
    assert plots.lr_drops(two) == [3.5, 6.5]


def test_plot_metric_draws_train_test_and_the_lr_drop():
    hist = history()
    ax = h.plot_metric(hist, "acc")
    assert isinstance(ax, matplotlib.axes.Axes)
    lines = lines_by_label(ax)
    np.testing.assert_array_equal(lines["train"].get_ydata(), hist["train_acc"])
    np.testing.assert_array_equal(lines["test"].get_ydata(), hist["test_acc"])
    assert lines["LR drop (×0.1)"].get_xdata()[0] == 4.5
    assert ax.get_xlabel() == "epoch" and "accuracy" in ax.get_ylabel()
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"train", "test", "LR drop (×0.1)"}


def test_plot_metric_uses_the_given_axes_and_log_scale_for_loss():
    fig, ax = plt.subplots()
    assert h.plot_metric(history(), "loss", ax=ax) is ax
    assert ax.get_yscale() == "log"
    with pytest.raises(ValueError, match=r"'metric' = 'f1'.*valid: loss \| acc"):
        h.plot_metric(history(), "f1")


def test_plot_curves_returns_a_figure_with_loss_and_accuracy():
    fig = h.plot_curves(history(), title="T")
    assert isinstance(fig, matplotlib.figure.Figure)
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_yscale() == "log" and "accuracy" in acc_ax.get_ylabel()
    assert fig._suptitle.get_text() == "T"


def test_plot_runs_overlays_every_run_with_optional_train_lines():
    runs = {"none": history(), "crop": history(offset=5), "mine": history(offset=-5)}
    ax = h.plot_runs(runs, "test_acc", train_too=True)
    labelled = lines_by_label(ax)
    for name, hist in runs.items():
        np.testing.assert_array_equal(labelled[name].get_ydata(), hist["test_acc"])
    assert labelled["none"].get_color() == plots.COLORS["none"]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--" and len(ln.get_xdata())]
    assert len(dashed) == 3
    assert sorted(tuple(ln.get_ydata()) for ln in dashed) == sorted(tuple(r["train_acc"]) for r in runs.values())
    assert ax.get_ylabel() == "accuracy (%)"  # train and test both drawn
    assert h.plot_runs(runs, "train_loss").get_yscale() == "log"


def test_per_class_bars_have_the_given_values():
    acc = {c: float(10 * i) for i, c in enumerate(h.CLASSES)}
    ax = h.plot_per_class(acc, overall=45.0)
    widths = [p.get_width() for p in ax.patches]
    assert widths == list(acc.values())
    assert [t.get_text() for t in ax.get_yticklabels()] == list(h.CLASSES)
    assert "45.00%" in ax.get_legend().get_texts()[0].get_text()


def test_confusion_matrix_shows_row_shares_and_counts():
    cm = np.arange(100).reshape(10, 10)
    ax = h.plot_confusion(cm.tolist())
    shown = ax.get_images()[0].get_array()
    np.testing.assert_allclose(shown, cm / cm.sum(1, keepdims=True))
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 100 and texts[0] == "0" and texts[-1] == "99"
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"


def test_mosaic_places_each_tile_and_pads_in_white():
    imgs = torch.zeros(3, 3, 4, 4, dtype=torch.uint8)
    imgs[1] = 255
    m = plots.mosaic(imgs, ncols=2)
    assert m.shape == (2 + 2 * 6, 2 + 2 * 6, 3)
    assert (m[2:6, 2:6] == 0).all() and (m[2:6, 8:12] == 1).all() and (m[8:12, 2:6] == 0).all()
    assert (m[:2] == 1).all() and (m[8:12, 8:12] == 1).all()  # padding and the empty slot stay white


def test_sample_grid_shows_each_class_in_its_named_column():
    data = h.load_cifar10("synthetic", 200, 50)
    idx = h.sample_images(data, per_class=2, seed=0)
    assert torch.equal(data.train_y[idx], torch.arange(10).repeat(2))  # one of each class per row
    assert len(set(idx.tolist())) == 20 and torch.equal(idx, h.sample_images(data, per_class=2, seed=0))
    ax = h.sample_grid(data, per_class=2)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(data.classes)
    img = ax.get_images()[0].get_array()
    assert img.shape[:2] == (2 + 2 * 34, 2 + 10 * 34)  # two rows of ten 32-pixel tiles
    np.testing.assert_allclose(img[2:34, 2:34], data.train_x[idx[0]].permute(1, 2, 0) / 255)


def test_augmentation_draws_are_seeded_and_none_changes_nothing():
    x = h.load_cifar10("synthetic", 20, 10).train_x[:3]
    a = h.augmentation_draws(x, "crop_flip", draws=4, seed=1)
    b = h.augmentation_draws(x, "crop_flip", draws=4, seed=1)
    assert a.shape == (12, 3, 32, 32) and torch.equal(a, b)
    assert not torch.equal(a[0], a[1]) or not torch.equal(a[1], a[2])  # draws of one image differ
    plain = h.augmentation_draws(x, "none", draws=2, form="torchvision")
    assert torch.equal(plain, x.repeat_interleave(2, 0).float() / 255)
    with pytest.raises(ValueError, match="'form' = 'pil'"):
        h.augmentation_draws(x, "crop", 2, form="pil")


@pytest.mark.parametrize("form", ["batched", "torchvision"])
def test_gallery_has_one_row_per_recipe(form):
    x = h.load_cifar10("synthetic", 20, 10).train_x[:3]
    recipes = ["none", "flip_rotate", "crop"]
    ax = h.augmentation_gallery(x, recipes, draws=2, form=form)
    assert [t.get_text() for t in ax.get_yticklabels()] == recipes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["image 1", "image 2", "image 3"]
    img = ax.get_images()[0].get_array()
    assert img.shape[0] == 2 + 3 * 34  # three rows of 32-pixel tiles
    assert form in ax.get_title()


def test_compare_bars_leaves_missing_values_out_and_says_so():
    table = pd.DataFrame({"recipe": ["a", "b"], "report": [80.0, math.nan], "measured": [70.0, 75.0]})
    ax = h.compare_bars(table, "recipe", {"report": "report", "measured": "measured"})
    visible = [p.get_height() for p in ax.patches if p.get_visible()]
    assert visible == [80.0, 70.0, 75.0]
    assert "n/a" in [t.get_text() for t in ax.texts]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["report", "measured"]


def test_stage_plot_marks_the_1x1_layer4_of_the_imagenet_stem():
    shapes = {s: h.stage_shapes(h.build_model(s)) for s in ("imagenet", "cifar")}
    ax = h.plot_stage_shapes(shapes)
    stages = [t.get_text() for t in ax.get_xticklabels()]
    assert stages == ["conv1", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    bars = ax.patches
    imagenet, cifar = bars[:6], bars[6:]
    assert [b.get_height() for b in imagenet] == [16, 8, 8, 4, 2, 1]
    assert [b.get_height() for b in cifar] == [32, 32, 32, 16, 8, 4]
    red = [b for b in bars if b.get_linewidth() == 2]
    assert red == [imagenet[5]]


def test_channel_stats_plot_shows_measured_and_report_values():
    ax = h.plot_channel_stats((0.1, 0.2, 0.3), (0.4, 0.5, 0.6), h.CIFAR10_MEAN, h.CIFAR10_STD)
    heights = [p.get_height() for p in ax.patches]
    assert heights[:6] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert heights[6:] == pytest.approx(list(h.CIFAR10_MEAN) + list(h.CIFAR10_STD))


def test_curves_of_several_seeds_draw_the_mean_and_a_min_max_band():
    seeds = [history(offset=-2), history(offset=0), history(offset=5)]
    ax = h.plot_metric(seeds, "acc")
    lines = lines_by_label(ax)
    np.testing.assert_allclose(lines["test (mean of 3)"].get_ydata(), history(offset=1)["test_acc"])
    bands = ax.collections
    assert len(bands) == 2  # train and test
    lo_hi = bands[1].get_paths()[0].vertices[:, 1]
    assert lo_hi.min() == pytest.approx(35 + 6 - 2) and lo_hi.max() == pytest.approx(35 + 36 + 5)
    assert "min–max of 3 seeds" in ax.get_title()
    assert len(h.plot_curves(seeds).axes[0].collections) == 2


def test_plot_runs_takes_lists_of_histories_per_label():
    runs = {"none": [history(), history(offset=2)], "crop": history(offset=5)}
    ax = h.plot_runs(runs, "test_acc", train_too=True)
    labelled = lines_by_label(ax)
    np.testing.assert_allclose(labelled["none (mean of 2)"].get_ydata(), history(offset=1)["test_acc"])
    np.testing.assert_array_equal(labelled["crop"].get_ydata(), history(offset=5)["test_acc"])
    assert len(ax.collections) == 2  # test and train bands of `none`; one seed of crop draws none
    assert "min–max over seeds" in ax.get_title()


def test_compare_bars_draw_a_spread_as_mean_error_bar_and_seed_points():
    table = pd.DataFrame({"recipe": ["a", "b"], "report": [80.0, math.nan],
                          "measured": [h.spread([70.0, 72.0, 74.0]), h.spread([75.0])]})
    ax = h.compare_bars(table, "recipe", {"report": "report", "measured": "measured"})
    assert [p.get_height() for p in ax.patches if p.get_visible()] == [80.0, 72.0, 75.0]
    seeds = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    assert len(seeds) == 1 and list(seeds[0].get_ydata()) == [70.0, 72.0, 74.0]
    segments = ax.collections[0].get_segments()  # the error bar: min to max of the seeds
    assert [tuple(s[:, 1]) for s in segments] == [(70.0, 74.0)]
    assert "one seed (bar: mean, line: min–max)" in [t.get_text() for t in ax.get_legend().get_texts()]
