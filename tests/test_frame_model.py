"""The frame CNN's training: masks (numpy only) and weight averaging (PyTorch)."""

import numpy as np

from realtime.adapt import AdaptConfig, SpeakerAdapter
from ser_train.frame_model import (AVERAGED_FRAME_CONFIG, MASKED_FRAME_CONFIG, FrameModelConfig, WeightAverage,
                                   _masked, train_frame_member)
from tests.conftest import needs_torch


def test_without_masks_the_item_is_untouched_and_nothing_is_drawn():
    x = np.arange(40 * 6, dtype=np.float32).reshape(40, 6)
    rng = np.random.default_rng(0)
    assert _masked(x, FrameModelConfig(), rng) is x
    assert rng.integers(1 << 30) == np.random.default_rng(0).integers(1 << 30)


def test_masks_zero_stretches_of_frames_and_a_column_in_both_halves():
    config = FrameModelConfig(**MASKED_FRAME_CONFIG)
    rng = np.random.default_rng(1)
    half, draws, with_rows, with_columns = 49, 200, 0, 0
    for _ in range(draws):
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
        with_rows += bool(rows.any())
        with_columns += bool(columns.any())
    # masks are really applied: a draw lacks every stretch with p = (1/7)^2 and every column with p = (1/5)^2
    # (widths drawn from 0); seeded, 197 and 192 of the 200 draws have them
    assert with_rows >= 0.8 * draws and with_columns >= 0.8 * draws, (with_rows, with_columns)


@needs_torch
def test_weight_average_is_the_mean_of_the_snapshots():
    import torch

    network = torch.nn.Linear(3, 2)
    average, snapshots = WeightAverage(network), []
    for k in range(4):
        with torch.no_grad():
            for p in network.parameters():
                p.normal_(mean=float(k))
        snapshots.append([p.detach().clone().numpy() for p in network.parameters()])
        average.add(network)
    average.load_into(network)
    for k, p in enumerate(network.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), np.mean([s[k] for s in snapshots], axis=0), rtol=1e-6, atol=1e-6)


def _toy_sessions(rng, n=60, columns=6):
    labels = rng.integers(0, 3, n)
    return [[rng.normal(size=(int(rng.integers(25, 60)), 2 * columns)).astype(np.float32) + label]
            for label in labels], labels


@needs_torch
def test_averaging_trains_more_epochs_and_recomputes_the_norms_as_a_plain_mean():
    import torch

    variants, labels = _toy_sessions(np.random.default_rng(0))
    adapter = SpeakerAdapter(np.zeros(6), np.ones(6), AdaptConfig())
    plain = train_frame_member(variants, labels, 3, len(labels), adapter, FrameModelConfig(epochs=2), seed=0)
    averaged = train_frame_member(variants, labels, 3, len(labels), adapter,
                                  FrameModelConfig(epochs=2, **AVERAGED_FRAME_CONFIG), seed=0)
    assert not torch.equal(plain.network.convs[0].weight, averaged.network.convs[0].weight)
    batches = int(np.ceil(len(labels) / FrameModelConfig.batch))
    for norm in averaged.network.norms:    # one recount over an epoch's batches, then the usual momentum again
        assert int(norm.num_batches_tracked) == batches and norm.momentum == 0.1
    assert all(int(norm.num_batches_tracked) == 2 * batches for norm in plain.network.norms)
    probabilities = averaged.predict_proba([v[0] for v in variants])
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    assert (probabilities.argmax(1) == labels).mean() > 0.9   # the classes sit a whole unit apart
