import numpy as np
import pytest

from realtime.adapt import AdaptConfig, Smoother, SpeakerAdapter, normalize_session

DIM = 6


def adapter(**kwargs) -> SpeakerAdapter:
    return SpeakerAdapter(np.zeros(DIM), np.ones(DIM), AdaptConfig(**kwargs))


@pytest.mark.parametrize("variance_prior", [None, 10.0])
def test_window_n_never_sees_later_windows(variance_prior):
    rng = np.random.default_rng(0)
    session = rng.normal(3.0, 2.0, (20, DIM))
    altered = session.copy()
    altered[12:] = rng.normal(-50.0, 9.0, (8, DIM))
    config = {"variance_prior_windows": variance_prior}
    a, b = (np.array(normalize_session(s, adapter(**config))) for s in (session, altered))
    np.testing.assert_array_equal(a[:12], b[:12])
    assert not np.allclose(a[12:], b[12:])


def test_starts_at_the_population_and_moves_to_the_speaker():
    ad = adapter(prior_windows=2.0, forgetting=1.0)
    x = np.full(DIM, 4.0)
    np.testing.assert_allclose(ad.normalize(x), 4.0, rtol=1e-6)  # no windows yet: population z-score
    rng = np.random.default_rng(1)
    for _ in range(200):
        ad.update(rng.normal(4.0, 0.5, DIM))
    assert np.all(np.abs(ad.normalize(x)) < 0.3)  # the speaker's own mean is now near zero
    assert ad.windows_seen == 200


def _std(ad: SpeakerAdapter) -> np.ndarray:
    """The standard deviation the adapter divides by: one over the slope of its z-score."""
    return 1.0 / (ad.normalize(np.ones(DIM)) - ad.normalize(np.zeros(DIM)))


def test_a_variance_prior_shrinks_the_session_variance_alone():
    rng = np.random.default_rng(3)
    windows = rng.normal(0.5, 0.2, (40, DIM))        # the population: mean 0, std 1
    kept = {"forgetting": 1.0}
    same, default = adapter(variance_prior_windows=2.0, **kept), adapter(**kept)
    firm = adapter(variance_prior_windows=1e6, **kept)
    for x in windows:
        for ad in (same, default, firm):
            ad.update(x)
    np.testing.assert_array_equal(same.normalize(windows), default.normalize(windows))  # = the mean's prior
    mean = windows.mean(axis=0) * 40 / 42   # 40 of the mean's 42 windows are the session's
    for ad in (default, firm):              # and it adapts alike
        np.testing.assert_allclose(ad.normalize(np.zeros(DIM)) * _std(ad), -mean, rtol=1e-4)
    assert np.all(_std(default) < 0.45)                     # the session's spread, widened by the shifted prior
    np.testing.assert_allclose(_std(firm), np.sqrt(1 + mean ** 2), rtol=1e-3)   # the population's, about that mean


POP_MEAN, POP_STD = np.arange(-2.0, 4.0), np.array([0.5, 1.5, 2.5, 2.0, 1.5, 4.0])   # z-scores unlike x itself


def test_model_input_keeps_population_view():
    ad = SpeakerAdapter(POP_MEAN, POP_STD, AdaptConfig())
    ad.update(np.full(DIM, 5.0))
    z = ad.model_input(np.full(DIM, 5.0))
    assert z.shape == (2 * DIM,)
    np.testing.assert_array_equal(z[:DIM], ad.normalize(np.full(DIM, 5.0)))           # the adapted half first
    np.testing.assert_allclose(z[DIM:], [14.0, 4.0, 2.0, 2.0, 2.0, 0.5], rtol=1e-6)   # (5 - mean) / std


def test_a_frame_window_counts_as_one_window_of_its_moments():
    """Frames (n, dim) update the session with their mean and second moment, once."""
    rng = np.random.default_rng(2)
    frames = rng.normal(3.0, 2.0, (40, DIM))
    by_frames, by_moments = (SpeakerAdapter(POP_MEAN, POP_STD, AdaptConfig()) for _ in range(2))
    by_frames.update(frames)
    by_moments.weight, by_moments.windows_seen = 1.0, 1
    by_moments._sum, by_moments._sum_sq = frames.mean(axis=0), (frames ** 2).mean(axis=0)
    np.testing.assert_allclose(by_frames.normalize(frames), by_moments.normalize(frames), rtol=1e-12)
    assert by_frames.windows_seen == 1
    z = by_frames.model_input(frames)
    assert z.shape == (40, 2 * DIM)
    np.testing.assert_allclose(z[:, DIM:], (frames - POP_MEAN) / POP_STD, rtol=1e-6)   # population view, per frame
    assert not np.allclose(z[:, DIM:], frames, atol=0.1)


def test_disabled_adapter_makes_every_window_a_session_of_its_own():
    """As training's cold windows: `ser --no-adapt` scores what the card's cold figures measured."""
    ad, alone = adapter(enabled=False), adapter()
    ad.update(np.full(DIM, 9.0))
    x = np.linspace(-1.0, 3.0, DIM)
    ad.update(x)
    normalize_session([x], alone)
    np.testing.assert_array_equal(ad.model_input(x), alone.model_input(x))
    assert ad.windows_seen == 1


def test_a_pending_window_is_normalised_as_the_next_one_without_being_counted():
    """A partial is scored as training scores every window (itself included), and leaves the session as it was."""
    ad, reference = adapter(), adapter()
    first, second = np.full(DIM, 1.5), np.linspace(-2.0, 2.0, DIM)
    expected = normalize_session([first, second], reference)[1]
    ad.update(first)
    before = (ad.weight, ad.windows_seen, ad._sum.copy(), ad._sum_sq.copy())
    np.testing.assert_array_equal(ad.model_input(second, pending=True), expected)
    assert (ad.weight, ad.windows_seen) == before[:2]
    np.testing.assert_array_equal(ad._sum, before[2])
    np.testing.assert_array_equal(ad._sum_sq, before[3])


def test_smoother_label_is_sticky_within_margin():
    smoother = Smoother(["a", "b"], alpha=1.0, margin=0.1)
    assert smoother.push(np.array([0.6, 0.4])) == "a"
    assert smoother.push(np.array([0.48, 0.52])) == "a"   # within the margin: keep
    assert smoother.push(np.array([0.3, 0.7])) == "b"


def test_smoother_averages_and_holds_the_label_back_until_the_average_turns():
    smoother = Smoother(["a", "b"], alpha=0.25, margin=0.1)
    assert smoother.push(np.array([0.1, 0.9])) == "b"
    np.testing.assert_allclose(smoother.probs, [0.1, 0.9])
    # each window's "a" lead (0.8) would switch at once; the average moves a quarter of the way per window
    for averaged in ([0.3, 0.7], [0.45, 0.55]):
        assert smoother.push(np.array([0.9, 0.1])) == "b"
        np.testing.assert_allclose(smoother.probs, averaged)
    assert smoother.push(np.array([0.9, 0.1])) == "a"      # 0.5625 vs 0.4375: now past the margin
    np.testing.assert_allclose(smoother.probs, [0.5625, 0.4375])
