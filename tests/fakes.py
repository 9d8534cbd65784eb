"""Made-up runs as the store returns them, for the tests of tables and rendered conclusions."""
from pathlib import Path

import pandas as pd

import helpers as h
from helpers.core.runs import Run


def fake_run(final, best=None, train=None, recipe="none", epochs=4, lr=0.1, path=Path("/x"),
             train_loss=0.5, seed=0, raw=None):
    """A Run as the store returns it, with a made-up history ending at the given accuracies."""
    best = final if best is None else best
    train = final + 10 if train is None else train
    hist = pd.DataFrame({"epoch": range(1, epochs + 1), "lr": [lr] * epochs,
                         "train_loss": [1.0] * (epochs - 1) + [train_loss],
                         "train_acc": [50.0] * (epochs - 1) + [train],
                         "test_loss": [1.0] * epochs, "test_acc": [best] + [40.0] * (epochs - 2) + [final],
                         "seconds": [30.0] * epochs})
    metrics = {"final_test_acc": final, "best_test_acc": max(best, final),
               "best_epoch": 1 if best > final else epochs,
               "per_class_acc": {c: 50.0 + i for i, c in enumerate(h.CLASSES)},
               "confusion": [[10 if i == j else 0 for j in range(10)] for i in range(10)]}
    if raw is not None:  # a normalizing run's score without Normalize at test time
        metrics.update(raw_final_test_acc=raw, raw_best_test_acc=raw)
        hist["raw_test_loss"], hist["raw_test_acc"] = 3.0, [raw] * epochs
    config = {"recipe": recipe, "lr": lr, "epochs": epochs, "stem": "imagenet", "seed": seed}
    return Run(path, {"run_id": f"run{seed}", "experiment": recipe if lr == 0.1 else f"{recipe}, lr {lr}",
                      "config": config, "results": metrics, "env": {"device": "cpu", "threads": 2, "finished": "now"}},
               hist)


def seeds(values, **kw):
    """One fake run per value, with seeds 0, 1, ..."""
    return [fake_run(v, seed=i, **kw) for i, v in enumerate(values)]


def text(markdown):
    return markdown.data
