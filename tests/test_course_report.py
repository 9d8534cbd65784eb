"""docs/course-report.md: its figures are the rendering of the report's constants and report/reference/, its verdicts
follow the numbers, and the facts it states about CenterCrop and test image 23 hold."""
import math
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

import helpers as h
from helpers.core.data import DataError, _list_folder, cache_dir, load_official
from helpers.tools.reference.__main__ import main as reference_main
from helpers.tools.report import course
from helpers.notebook.results import REPORT_CAM, REPORT_PROTOCOL, REPORT_STEPS_PER_EPOCH

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "course-report.md"
FULL = ROOT / "report" / "reference" / "full"
FOLDER = os.environ.get("CIFAR10_DIR") or str(ROOT.parent / "shared" / "data" / "cifar10-jpeg")


def test_the_committed_page_is_the_rendering_of_the_reference():
    text = PAGE.read_text()
    assert text == course.render_page(text), "run: python -m helpers.tools.reference readme"


def test_a_page_without_a_block_names_the_missing_markers(tmp_path, capsys):
    page = tmp_path / "course-report.md"
    page.write_text(PAGE.read_text().replace(course.marker("fix")[0], ""))
    with pytest.raises(ValueError, match=r"no 'fix' block; add the markers <!-- course:fix:start -->"):
        course.render_page(page.read_text())
    readme, results = tmp_path / "README.md", tmp_path / "results.md"
    readme.write_text((ROOT / "README.md").read_text())
    results.write_text((ROOT / "docs" / "results.md").read_text())
    args = ["readme", "--readme", str(readme), "--results", str(results), "--course", str(page)]
    assert reference_main(args) == 2 and "no 'fix' block" in capsys.readouterr().err
    empty = "\n".join(f"{a}\n{b}" for a, b in map(course.marker, course.BLOCKS)) + "\n"
    page.write_text(empty)
    assert reference_main(args) == 0 and "course-report.md: rendered figures updated" in capsys.readouterr().out
    assert page.read_text() == course.render_page(empty) != empty
    assert reference_main(args) == 0 and "course-report.md: rendered figures already up to date" in capsys.readouterr().out


def test_the_batch_size_follows_from_the_steps_per_epoch():
    images = REPORT_PROTOCOL["train_images"]
    assert course.batch_sizes_for(REPORT_STEPS_PER_EPOCH, images) == [REPORT_PROTOCOL["batch_size"]]
    assert math.ceil(images / REPORT_PROTOCOL["batch_size"]) == REPORT_STEPS_PER_EPOCH
    assert course.batch_sizes_for(REPORT_STEPS_PER_EPOCH, images, drop_last=True) == []
    assert course.batch_sizes_for(10, 100) == [10, 11] and course.batch_sizes_for(4, 100) == list(range(25, 34))
    assert "holds for b = 128 only" in course.protocol_block()


@pytest.mark.parametrize("size", [(1, 3, 32, 32), (8, 3, 32, 32)])
def test_center_crop_32_returns_a_cifar_sized_tensor_unchanged(size):
    x = torch.randint(0, 256, size, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(T.CenterCrop(32)(x), x)
    assert torch.equal(T.CenterCrop(28)(x), x[..., 2:30, 2:30])  # a smaller crop does cut the border


def test_center_crop_32_returns_a_cifar_image_unchanged():
    data = h.load_cifar10("synthetic", 20, 20, 0)
    for img in data.test_x[:4]:
        pil = Image.fromarray(img.permute(1, 2, 0).numpy())
        assert T.CenterCrop(32)(pil).tobytes() == pil.tobytes()
        assert torch.equal(T.ToTensor()(T.CenterCrop(32)(pil)), T.ToTensor()(pil))


def _reference_copy(tmp_path) -> Path:
    root = tmp_path / "reference"
    shutil.copytree(FULL, root / "full")
    return root


def _set_history(root: Path, folder: str, epoch: int, **values):
    path = root / "full" / folder / "history.csv"
    hist = pd.read_csv(path)
    for column, value in values.items():
        hist.loc[hist["epoch"] == epoch, column] = value
    hist.to_csv(path, index=False)


def _set_final(root: Path, folder: str, acc: float, other: float | None = None):
    import json
    path = root / "full" / folder / "record.json"
    record = json.loads(path.read_text())
    record["results"]["final_test_acc"] = acc
    if other is not None:
        record["results"]["raw_final_test_acc"] = other
    path.write_text(json.dumps(record))


def test_the_tables_read_the_reference_histories(tmp_path):
    root = _reference_copy(tmp_path)
    _set_history(root, "normalize_seed0", 53, train_loss=0.5, raw_test_acc=12.34)
    log = course.normalize_log_block(root)
    assert "| 53 | 0.0154 | 0.5000 | 31.56% | 12.34% |" in log and "within 0.4846 of the report's" in log
    _set_history(root, "none_seed0", 30, test_acc=45.0)
    short = course.short_training_block(root)
    assert "| no augmentation | 45.00% (outside) |" in short and "6 of 8 cells fall inside" in short


def test_the_verdicts_follow_the_numbers(tmp_path):
    root = _reference_copy(tmp_path)
    assert course.fix_block(root).startswith("**Not reproduced**, whether")
    assert "**The order is reproduced**" in course.augmentation_block(root)
    _set_final(root, "normalize_lr0.5_seed0", 80.0, other=76.0)  # lr 0.5 now beats lr 0.1 either way
    assert course.fix_block(root).startswith("**Reproduced** with Normalize and without Normalize:")
    _set_final(root, "crop_seed0", 70.0)
    aug = course.augmentation_block(root)
    assert "**The order differs** in the full-scale reference" in aug and "| +13.98 points |" in aug
    assert "above the reference's in 3 of 3 settings: by 0.93 to 13.98 points" in course.gap_block(root)


def test_the_cam_block_names_the_reports_image_class_and_layer():
    text = course.cam_block()
    assert f"`test_dataset.data[{REPORT_CAM['image_index']}]`" in text
    assert f"class {REPORT_CAM['target_class']}, which is *{h.CLASSES[REPORT_CAM['target_class']]}*" in text


OFFICIAL_LABEL_OF_REPORT_IMAGE = "truck"  # the page's claim about test image 23 in the official order


def test_the_reports_image_in_the_official_order_is_a_truck():
    try:
        data = load_official(cache_dir() / "cifar10-official", download=False)
    except DataError:
        pytest.skip("the official CIFAR-10 files are not in the cache (no download here)")
    label = h.CLASSES[int(data["test_y"][REPORT_CAM["image_index"]])]
    assert label == OFFICIAL_LABEL_OF_REPORT_IMAGE and f"**{label}**" in PAGE.read_text()


@pytest.mark.real_data
@pytest.mark.skipif(not Path(FOLDER, "test").is_dir(), reason=f"no CIFAR-10 folder at {FOLDER}")
def test_the_same_index_in_a_class_folder_copy_is_an_airplane():
    label, path = _list_folder(Path(FOLDER), None)["test"][REPORT_CAM["image_index"]]
    assert h.CLASSES[label] == "airplane" and path.parent.name == "airplane"


def test_the_readme_verdicts_judge_the_full_scale_reference_against_each_of_the_reports_figures(tmp_path):
    from helpers.tools.report import readme

    def verdicts(root) -> dict:
        rows = readme.results_table(root).split("| claim |")[1].splitlines()[2:]
        return {row.split(" | ")[0].lstrip("| "): row.split(" | ")[-1].rstrip(" |") for row in rows}
    root = _reference_copy(tmp_path)
    before = verdicts(root)
    assert sorted(before) == sorted(["no augmentation, lr 0.1", "random flip + rotation, lr 0.1", "random crop, lr 0.1",
                                     "normalization, lr 0.1, tested without normalization", "normalization, lr 0.5",
                                     "normalization, lr 0.5, tested without normalization"])  # the report's figures
    assert before["random crop, lr 0.1"].startswith("consistent (p = ")
    _set_final(root, "crop_seed0", 60.0)  # far under the report's 83.98%
    after = verdicts(root)
    assert after["random crop, lr 0.1"].startswith("differs (p") and after["random crop, lr 0.1"].endswith(", lower")
    assert {k: v for k, v in after.items() if k != "random crop, lr 0.1"} == {
        k: v for k, v in before.items() if k != "random crop, lr 0.1"}
