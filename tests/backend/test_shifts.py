import pytest
import torch

from backend.data import load_task
from backend.data.shifts import apply_shift, apply_shifts, block_permutation
from backend.specs import (
    BlockShuffle, Blur, Contrast, DataSpec, GaussianNoise, Inversion, PixelShuffle, Rotation, SpecError, parse,
)


def block_ids(n=3, c=1, size=8, block=2):
    """Images whose every pixel holds the raster index of its block (plus the image number)."""
    g = size // block
    ids = torch.arange(g * g).view(g, g).repeat_interleave(block, 0).repeat_interleave(block, 1)
    return (ids[None, None] + 10 * torch.arange(n).view(n, 1, 1, 1)).expand(n, c, size, size).to(torch.uint8)


def test_block_shuffle_is_one_fixed_permutation_for_every_image():
    x = block_ids()
    out = apply_shift(x, BlockShuffle(block=2, seed=4))
    perm = block_permutation(x.shape, 2, 4)
    # Block k of every output image holds the id of input block perm[k] (plus its image number).
    image_offset = 10 * torch.arange(3).view(3, 1, 1, 1)
    for k in range(16):
        r, c = divmod(k, 4)
        assert (out[:, :, 2 * r:2 * r + 2, 2 * c:2 * c + 2] - image_offset == perm[k]).all()
    assert not torch.equal(out, x)


def test_block_shuffle_keeps_block_contents_and_depends_on_seed():
    x = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    a = apply_shift(x, BlockShuffle(block=4, seed=0))
    assert torch.equal(a, apply_shift(x, BlockShuffle(block=4, seed=0)))
    assert not torch.equal(a, apply_shift(x, BlockShuffle(block=2, seed=1)))
    assert torch.equal(apply_shift(x, BlockShuffle(block=8)), x)  # one block: nothing moves
    # every 4x4 block of the output is a 4x4 block of the input, unchanged
    blocks_in = {bytes(x[:, :, i:i + 4, j:j + 4].numpy()) for i in (0, 4) for j in (0, 4)}
    blocks_out = {bytes(a[:, :, i:i + 4, j:j + 4].numpy()) for i in (0, 4) for j in (0, 4)}
    assert blocks_in == blocks_out


def test_train_and_test_share_the_permutation():
    spec = parse(DataSpec, {"source": {"kind": "digits"}, "shifts": [{"kind": "block_shuffle", "block": 2}]})
    plain = load_task(parse(DataSpec, {"source": {"kind": "digits"}}))
    shifted = load_task(spec)
    perm = block_permutation(plain.train.x.shape, 2, 0)

    def unshuffle(x):
        n, c = x.shape[:2]
        blocks = x.view(n, c, 4, 2, 4, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, 16, 2, 2)
        restored = torch.empty_like(blocks)
        restored[:, :, perm] = blocks
        return restored.view(n, c, 4, 4, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, 8, 8)

    assert torch.equal(unshuffle(shifted.train.x), plain.train.x)
    assert torch.equal(unshuffle(shifted.test.x), plain.test.x)


def test_block_that_does_not_divide_the_native_size_is_a_clear_error():
    bad = {"source": {"kind": "digits"}, "shifts": [{"kind": "inversion"}, {"kind": "block_shuffle", "block": 3}]}
    with pytest.raises(SpecError) as info:  # at parse: the digits are 8x8 without reading them
        parse(DataSpec, bad, prefix="data")
    assert info.value.field == "data.shifts.1.block" and "does not divide the 8x8" in str(info.value)
    with pytest.raises(SpecError) as info:  # and by the engine, for a spec that skipped the parser
        load_task(DataSpec.model_construct(**{**parse(DataSpec, {"source": {"kind": "digits"}}).__dict__,
                                              "shifts": parse(DataSpec, bad | {"size": 9}).shifts}))
    assert info.value.field == "data.shifts.1.block" and "does not divide the 8x8" in str(info.value)
    with pytest.raises(SpecError):
        apply_shifts(torch.zeros(1, 1, 10, 10, dtype=torch.uint8), [BlockShuffle(block=4)], 0)


def test_pixel_shuffle_permutes_values_including_channels():
    x = torch.arange(3 * 4 * 4, dtype=torch.uint8).view(1, 3, 4, 4).repeat(2, 1, 1, 1)
    out = apply_shift(x, PixelShuffle(seed=2))
    assert torch.equal(out[0], out[1])  # the same permutation for every image
    assert sorted(out[0].flatten().tolist()) == sorted(x[0].flatten().tolist())
    moved_across_channels = (out[0, 0].flatten()[:, None] == x[0, 1:].flatten()[None]).any()
    assert moved_across_channels


def test_simple_shifts_known_answers():
    x = torch.randint(0, 256, (4, 1, 9, 9), dtype=torch.uint8)
    assert torch.equal(apply_shift(apply_shift(x, Inversion()), Inversion()), x)
    assert torch.equal(apply_shift(x, Contrast(factor=1.0)), x)
    flat = torch.full((2, 1, 9, 9), 77, dtype=torch.uint8)
    assert torch.equal(apply_shift(flat, Contrast(factor=0.0)), flat)  # already its own mean
    assert torch.equal(apply_shift(flat, Blur(sigma=1.5)), flat)
    corner = torch.zeros(1, 1, 9, 9, dtype=torch.uint8)
    corner[..., 0, 4] = 255  # top centre -> left centre after 90 degrees counter-clockwise
    assert apply_shift(corner, Rotation(degrees=90))[0, 0, 4, 0] == 255


def test_noise_is_seeded_and_differs_between_train_and_test_streams():
    x = torch.full((3, 1, 8, 8), 128, dtype=torch.uint8)
    a = apply_shift(x, GaussianNoise(std=0.1, seed=1), stream=0)
    assert torch.equal(a, apply_shift(x, GaussianNoise(std=0.1, seed=1), stream=0))
    assert not torch.equal(a, apply_shift(x, GaussianNoise(std=0.1, seed=1), stream=1))
    assert 20 < (a.float() - 128).std() < 32  # std 0.1 of 255
