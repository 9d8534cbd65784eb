"""The batched recipes have the torchvision reference's distribution and, for given draws, its output."""
import math

import pytest
import torch
import torchvision.transforms.functional as TF

from helpers.core.recipes import RECIPES, augment_batch, draw_params, eval_batch

N = 20_000


def _draws(name):
    return draw_params(RECIPES[name], N, torch.Generator().manual_seed(1))


def _chi2_uniform(values, k):
    counts = torch.bincount(values, minlength=k).double()
    expected = len(values) / k
    return float(((counts - expected) ** 2 / expected).sum())


def test_crop_offsets_uniform_over_0_to_8():
    p = _draws("crop")
    for key in ("dx", "dy"):
        assert p[key].min() == 0 and p[key].max() == 8
        # chi-square with 8 degrees of freedom: 26.1 is the 0.1% critical value
        assert _chi2_uniform(p[key], 9) < 26.1


def test_flip_rate_is_one_half():
    rate = _draws("crop_flip")["flip"].float().mean().item()
    assert abs(rate - 0.5) < 4 * math.sqrt(0.25 / N)


def test_angles_uniform_in_plus_minus_30():
    a = _draws("flip_rotate")["angle"]
    assert a.min() >= -30 and a.max() <= 30
    assert abs(a.mean().item()) < 4 * 30 / math.sqrt(3 * N)
    assert abs(a.var().item() - 30 ** 2 / 3) < 0.05 * 30 ** 2 / 3  # variance of U(-30, 30)
    # same mass in each of six 10-degree bins
    assert _chi2_uniform(((a + 30) // 10).clamp(max=5).long(), 6) < 20.5


def test_each_image_gets_its_own_draw():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    x[:] = x[0]  # identical inputs: any difference comes from per-sample parameters
    out = augment_batch(RECIPES["crop"], x, torch.Generator().manual_seed(0))
    distinct = {tuple(o.flatten()[:200].tolist()) for o in out}
    assert len(distinct) > 30


def _images(n=16):
    g = torch.Generator().manual_seed(3)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)


def test_crop_matches_torchvision_for_same_offsets():
    x = _images()
    p = draw_params(RECIPES["crop"], len(x), torch.Generator().manual_seed(5))
    out = augment_batch(RECIPES["crop"], x, params=p)
    for i in range(len(x)):
        ref = TF.crop(TF.pad(x[i], [4]), int(p["dy"][i]), int(p["dx"][i]), 32, 32).float() / 255
        assert torch.equal(out[i], ref)


def test_flip_rotate_matches_torchvision_for_same_draws():
    x = _images(32)
    p = draw_params(RECIPES["flip_rotate"], len(x), torch.Generator().manual_seed(6))
    out = augment_batch(RECIPES["flip_rotate"], x, params=p)
    for i in range(len(x)):
        img = x[i].float() / 255
        if p["flip"][i]:
            img = TF.hflip(img)
        ref = TF.rotate(img, float(p["angle"][i]))  # RandomRotation's defaults: nearest, fill 0
        assert torch.equal(out[i], ref), f"image {i}, angle {float(p['angle'][i])}"


def test_torchvision_reference_pipeline_uses_the_same_steps():
    names = [type(t).__name__ for t in RECIPES["flip_rotate"].train_transform().transforms]
    assert names == ["RandomHorizontalFlip", "RandomRotation", "ToTensor"]
    assert RECIPES["flip_rotate"].train_transform().transforms[1].degrees == [-30.0, 30.0]


def test_normalize_matches_torchvision_and_normalize_false_drops_it():
    x = _images(4)
    ref = torch.stack([RECIPES["normalize"].train_transform().transforms[1](xi.float() / 255) for xi in x])
    assert torch.allclose(augment_batch(RECIPES["normalize"], x), ref, atol=1e-6)
    assert torch.allclose(eval_batch(RECIPES["normalize"], x), ref, atol=1e-6)
    assert torch.equal(eval_batch(RECIPES["normalize"], x, normalize=False), x.float() / 255)
    assert torch.equal(eval_batch(RECIPES["crop"], x), x.float() / 255)


@pytest.mark.parametrize("name", list(RECIPES))
def test_batched_form_keeps_shape_and_range(name):
    out = augment_batch(RECIPES[name], _images(), torch.Generator().manual_seed(0))
    assert out.shape == (16, 3, 32, 32) and out.dtype == torch.float32
    if not RECIPES[name].normalize:
        assert out.min() >= 0 and out.max() <= 1
