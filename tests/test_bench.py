"""The benchmark runs with tiny settings and prints its table with command, machine and data (no timing is tested)."""
import pytest

from helpers.tools import bench


def test_bench_prints_its_table_on_cpu(capsys):
    rows, ck = bench.main(["--device", "cpu", "--data-dir", "synthetic", "--images", "130", "--steps", "1",
                           "--settings", "fp32,bf16+cl", "--recipes", "crop"])
    out = capsys.readouterr().out
    assert "command: python -m helpers.tools.bench --device cpu --data-dir synthetic --images 130" in out
    assert "machine: " in out and "torch " in out and "data: synthetic" in out
    assert "| setting | step eager | step graph | loop eager crop | loop graph crop | report crop | eval |" in out
    assert [r["setting"] for r in rows] == ["fp32", "bf16+cl"]
    for r in rows:
        assert r["step eager"] > 0 and r["loop eager crop"] > 0 and r["eval"] > 0
        assert r["step graph"] == r["loop graph crop"] == "needs CUDA"
        assert f"| {r['setting']} | " in out
    assert ck["megabytes"] > 40 and ck["sync_s"] > 0  # ResNet-18 weights + momentum: about 90 MB
    assert "checkpoint (last.pt of ResNet-18" in out and "needs CUDA; run the same command on a GPU" in out


def test_bench_rejects_a_bad_device(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--device", "tpu", "--no-checkpoint"])
    assert "argument --device: invalid choice: 'tpu' (choose from 'auto', 'cpu', 'cuda')" in capsys.readouterr().err


def test_cam_bench_prints_its_table_naming_command_machine_and_data(capsys):
    from helpers.tools import cam_bench
    assert cam_bench.main(["--images", "4", "--batch-size", "2", "--stem", "cifar", "--no-plain"]) == 0
    out = capsys.readouterr().out
    assert "command: python -m helpers.tools.cam_bench --images 4 --batch-size 2 --stem cifar --no-plain" in out
    assert "machine: " in out and "threads" in out and "data: 4 random 32x32 images, GradCAM at layer4, batches of 2" in out
    assert "helpers.compute_cams" in out and "forward only (floor)" in out and "library, plain" not in out
    df = cam_bench.benchmark(images=2, stems=("imagenet", "cifar"), batch_size=2)
    assert df["how"].tolist() == ["helpers.compute_cams", "forward only (floor)", "library, plain"] * 2
    assert df["map"].tolist() == ["1×1"] * 3 + ["4×4"] * 3 and (df["images_per_s"] > 0).all()
