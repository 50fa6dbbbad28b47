"""DSA augmentation: each op checked against an independent description of what it should do."""

import math

import pytest
import torch

from ddaudit.errors import ConfigError
from ddaudit.evaluate import OPS, DiffAugment, parse_strategy
from ddaudit.evaluate.augment import UNKNOWN_OP


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def positive_images(n=16, c=3, size=16, seed=0):
    """Strictly positive images, so that zeros in an output can only come from padding or cutout."""
    return torch.rand(n, c, size, size, generator=gen(seed)) + 0.5


def test_none_is_identity():
    x = positive_images()
    aug = DiffAugment("none")
    assert aug(x, generator=gen()) is x
    assert aug.grouped(x, 4, generator=gen()) is x
    assert aug.siamese(x, x[:2], generator=gen())[1] is not None
    assert aug.is_identity and parse_strategy("") == ()


def test_unknown_op_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        DiffAugment("color_blur")
    assert str(info.value) == UNKNOWN_OP.format(op="blur", strategy="color_blur", ops=", ".join(OPS))


def test_same_generator_state_same_output_and_different_seed_differs():
    x = positive_images()
    aug = DiffAugment()
    a, b = aug(x, generator=gen(3)), aug(x, generator=gen(3))
    assert torch.equal(a, b)
    outputs = [aug(x, generator=gen(s)) for s in range(4)]
    assert any(not torch.equal(outputs[0], o) for o in outputs[1:])


@pytest.mark.parametrize("strategy", list(OPS) + ["color_crop_cutout_flip_scale_rotate"])
def test_gradients_flow_to_the_images(strategy):
    x = positive_images(8).requires_grad_(True)
    weights = torch.randn(x.shape, generator=gen(1))
    out = DiffAugment(strategy)(x, generator=gen(2))
    (out * weights).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


def test_siamese_gradients_flow_to_both_batches():
    real = positive_images(6).requires_grad_(True)
    syn = positive_images(2, seed=1).requires_grad_(True)
    out_real, out_syn = DiffAugment("crop_scale_rotate").siamese(real, syn, generator=gen())
    (out_real.sum() + out_syn.sum()).backward()
    assert real.grad.abs().sum() > 0 and syn.grad.abs().sum() > 0


def _shift(img, dy, dx):
    """img translated so out[i, j] = img[i - dy, j - dx], zero outside."""
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = img[
        ..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_crop_is_an_integer_translation_with_zero_padding():
    x = positive_images(24, size=16)
    out = DiffAugment("crop")(x, generator=gen(5))
    max_shift = round(16 * 0.125)
    shifts = []
    for i in range(x.shape[0]):
        matches = [
            (dy, dx)
            for dy in range(-max_shift, max_shift + 1)
            for dx in range(-max_shift, max_shift + 1)
            if torch.allclose(out[i], _shift(x[i], dy, dx), atol=1e-5)
        ]
        assert len(matches) == 1, f"sample {i} is not a translation by at most {max_shift} pixels"
        shifts.append(matches[0])
    assert len(set(shifts)) > 5  # per-sample parameters


def test_flip_mirrors_about_half_of_the_samples():
    x = positive_images(64)
    out = DiffAugment("flip")(x, generator=gen(7))
    flipped = 0
    for i in range(x.shape[0]):
        same = torch.allclose(out[i], x[i], atol=1e-5)
        mirrored = torch.allclose(out[i], x[i].flip(-1), atol=1e-5)
        assert same != mirrored
        flipped += mirrored
    assert 16 <= flipped <= 48


def test_cutout_zeroes_one_square_of_at_most_half_the_side():
    x = positive_images(32, size=16)
    out = DiffAugment("cutout")(x, generator=gen(11))
    sides = []
    for i in range(x.shape[0]):
        zero = out[i] == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])  # same square in every channel
        assert torch.equal(out[i][~zero], x[i][~zero])
        rows, cols = zero[0].nonzero(as_tuple=True)
        if rows.numel() == 0:
            continue
        top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
        assert zero[0, top : bottom + 1, left : right + 1].all()  # a filled rectangle
        assert rows.numel() == (bottom - top + 1) * (right - left + 1)
        sides.append((int(bottom - top + 1), int(right - left + 1)))
    assert len(sides) >= 24
    assert max(max(s) for s in sides) == 8  # 0.5 x 16, whole squares exist
    assert all(h <= 8 and w <= 8 for h, w in sides)


def test_color_is_a_per_sample_affine_map_on_grey_images():
    """On one-channel images saturation is a no-op, so colour must be y = a * x + b per sample."""
    x = torch.rand(16, 1, 8, 8, generator=gen(2))
    out = DiffAugment("color")(x, generator=gen(4))
    slopes = []
    for i in range(x.shape[0]):
        design = torch.stack([x[i].flatten(), torch.ones(64)], dim=1).double()
        solution = torch.linalg.lstsq(design, out[i].flatten().double().unsqueeze(1)).solution
        residual = design @ solution - out[i].flatten().double().unsqueeze(1)
        assert residual.abs().max() < 1e-5
        slopes.append(float(solution[0]))
    # contrast factor in [0.5, 1.5)
    assert all(0.5 - 1e-5 <= s < 1.5 + 1e-5 for s in slopes)
    assert max(slopes) - min(slopes) > 0.2


def test_color_saturation_scales_deviation_from_the_channel_mean():
    """With no brightness/contrast change, a pixel's channel deviations are all scaled by one factor."""
    x = torch.rand(8, 3, 4, 4, generator=gen(3))
    aug = DiffAugment("color", brightness=0.0, contrast=1.0)
    draws = aug.draw([8], gen(1))
    draws.u[:, 2] = 0.0  # contrast uniform 0 -> factor 1.0 (ratio 1.0)
    out = aug.apply(x, draws)
    dev_in = x - x.mean(dim=1, keepdim=True)
    dev_out = out - out.mean(dim=1, keepdim=True)
    factor = (dev_out * dev_in).sum(dim=(1, 2, 3)) / (dev_in**2).sum(dim=(1, 2, 3))
    torch.testing.assert_close(dev_out, dev_in * factor.view(-1, 1, 1, 1), atol=1e-5, rtol=1e-5)
    assert ((factor >= 0) & (factor < 2.0 + 1e-5)).all()


def radial_images(n, size=17):
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    r = torch.sqrt(coords.view(-1, 1) ** 2 + coords.view(1, -1) ** 2)
    return torch.cos(r / 3.0).expand(n, 1, size, size).clone() + 2.0, r


def test_rotate_keeps_radially_symmetric_images_inside_the_circle():
    x, r = radial_images(8)
    out = DiffAugment("rotate")(x, generator=gen(9))
    inside = r < 6
    # bilinear resampling of a smooth image: small interpolation error only
    assert (out[:, :, inside] - x[:, :, inside]).abs().max() < 0.05
    assert (out - x).abs().amax(dim=(1, 2, 3)).max() > 0.01


def test_rotate_angle_is_at_most_fifteen_degrees():
    """A horizontal line through the centre tilts by at most 15 degrees."""
    size = 33
    x = torch.zeros(32, 1, size, size)
    x[:, :, size // 2, :] = 1.0
    out = DiffAugment("rotate")(x, generator=gen(2))
    cols = torch.arange(size, dtype=torch.float32)
    angles = []
    for i in range(out.shape[0]):
        img = out[i, 0]
        weights = img[:, 4:-4]
        ys = (weights * torch.arange(size, dtype=torch.float32).view(-1, 1)).sum(0) / weights.sum(0)
        xs = cols[4:-4]
        slope = ((xs - xs.mean()) * (ys - ys.mean())).sum() / ((xs - xs.mean()) ** 2).sum()
        angles.append(math.degrees(math.atan(float(slope))))
    assert max(abs(a) for a in angles) <= 15.5
    assert max(abs(a) for a in angles) > 5


def test_scale_is_symmetric_about_the_centre():
    x = torch.ones(16, 1, 16, 16)
    out = DiffAugment("scale")(x, generator=gen(13))
    torch.testing.assert_close(out, out.flip(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(out, out.flip(-2), atol=1e-5, rtol=0)
    assert torch.allclose(out[:, :, 6:10, 6:10], torch.ones(1), atol=1e-5)
    shrunk = (out < 0.5).flatten(1).any(dim=1)  # scale factor > 1 pulls zero padding in
    assert 0 < int(shrunk.sum()) < 16


def test_mode_s_draws_one_op_per_batch():
    aug = DiffAugment()
    draws = aug.draw([5, 3, 4], gen(0))
    assert draws.op.shape == (12,) and draws.u.shape[0] == 12
    for start, stop in ((0, 5), (5, 8), (8, 12)):
        assert (draws.op[start:stop] == draws.op[start]).all()
    seen = {int(aug.draw([1], gen(s)).op[0]) for s in range(60)}
    assert seen == set(range(len(OPS)))


def test_single_call_applies_one_op_family_to_the_whole_batch():
    x = positive_images(16)
    aug = DiffAugment("flip_cutout")
    for seed in range(6):
        out = aug(x, generator=gen(seed))
        has_cut = (out == 0).flatten(1).any(dim=1)
        has_flip = torch.tensor([not torch.allclose(out[i], x[i]) and not bool(has_cut[i]) for i in range(16)])
        assert not (has_cut.any() and has_flip.any())


def test_siamese_uses_the_same_parameters_for_every_image():
    x = positive_images(1).expand(10, -1, -1, -1).contiguous()
    aug = DiffAugment("crop_scale_rotate")
    per_sample = aug(x, generator=gen(1))
    assert any(not torch.equal(per_sample[0], per_sample[i]) for i in range(1, 10))
    for seed in range(4):
        a, b = aug.siamese(x, x[:3].clone(), generator=gen(seed))
        assert torch.equal(a, a[:1].expand_as(a))
        assert torch.equal(a[:3], b)


def test_grouped_gives_each_slice_its_own_draw():
    one = positive_images(6)
    x = one.repeat(4, 1, 1, 1)
    out = DiffAugment("crop").grouped(x, 4, generator=gen(0))
    slices = out.view(4, 6, *one.shape[1:])
    assert any(not torch.equal(slices[0], slices[g]) for g in range(1, 4))
    with pytest.raises(ValueError):
        DiffAugment().grouped(x, 5, generator=gen(0))


def test_apply_treats_rows_independently():
    """Augmenting concatenated batches equals augmenting each with its rows of the draw table."""
    aug = DiffAugment()
    x1, x2 = positive_images(5, seed=1), positive_images(7, seed=2)
    for seed in range(8):
        draws = aug.draw([5, 7], gen(seed))
        both = aug.apply(torch.cat([x1, x2]), draws)
        assert torch.equal(both[:5], aug.apply(x1, draws.rows(0, 5)))
        assert torch.equal(both[5:], aug.apply(x2, draws.rows(5, 12)))
