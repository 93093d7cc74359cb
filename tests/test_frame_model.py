"""The frame CNN's training-time masks (numpy only: no PyTorch needed)."""

import numpy as np

from ser_train.frame_model import MASKED_FRAME_CONFIG, FrameModelConfig, _masked


def test_without_masks_the_item_is_untouched_and_nothing_is_drawn():
    x = np.arange(40 * 6, dtype=np.float32).reshape(40, 6)
    rng = np.random.default_rng(0)
    assert _masked(x, FrameModelConfig(), rng) is x
    assert rng.integers(1 << 30) == np.random.default_rng(0).integers(1 << 30)


def test_masks_zero_stretches_of_frames_and_a_column_in_both_halves():
    config = FrameModelConfig(**MASKED_FRAME_CONFIG)
    rng = np.random.default_rng(1)
    half = 49
    for _ in range(200):
        x = np.random.default_rng(2).normal(size=(60, 2 * half)).astype(np.float32) + 5.0   # no zero by chance
        out = _masked(x, config, rng)
        assert out.shape == x.shape and np.all(x != 0.0)                  # the input is not changed
        zero = out == 0.0
        columns = zero.all(axis=0)
        assert np.array_equal(columns[:half], columns[half:])              # a column goes in both halves
        assert columns[:half].sum() <= config.column_masks * config.column_mask_width
        rows = zero[:, ~columns].all(axis=1) if (~columns).any() else np.zeros(len(x), bool)
        assert rows.sum() <= config.time_masks * int(len(x) * config.time_mask_fraction)
        assert np.array_equal(zero, rows[:, None] | columns[None, :])     # nothing else is zeroed
        np.testing.assert_array_equal(out[~zero], x[~zero])
