from dataclasses import replace

import numpy as np
import pytest

from realtime.features import DEFAULT_SPEC, FeatureSpec, FeatureStream, dct_matrix, functionals, mel_filterbank
from tests.conftest import SHARED_RAVDESS, bursts

RATE, HOP = 16000, 320


def synthetic_clip() -> np.ndarray:
    """A voiced-like synthetic signal: with no corpus beside this clone it still exercises every feature."""
    t = np.arange(3 * 16000) / 16000
    return (bursts(total_s=3.0, spans=((0.3, 2.6, "noise"),)) * 0.1
            + 0.2 * np.sin(2 * np.pi * (120 + 30 * t) * t) * (t > 0.3) * (t < 2.6)).astype(np.float32)


@pytest.fixture(params=["ravdess", "synthetic"])
def speech_clip(request) -> np.ndarray:
    """A real RAVDESS clip (skipped, saying why, without ../shared/data) and a synthetic one (always runs)."""
    if request.param == "synthetic":
        return synthetic_clip()
    path = SHARED_RAVDESS / "Actor_01" / "03-01-05-02-01-01-01.flac"
    if not path.exists():
        pytest.skip(f"needs the RAVDESS subset at ../shared/data/ravdess (present in CI, not in a user's clone): "
                    f"{path} is missing; the 'synthetic' case still runs")
    import soundfile as sf

    return sf.read(path, dtype="float32")[0]


def clip_vector(samples: np.ndarray) -> np.ndarray:
    """Offline reference: the window vector of a whole clip computed in one batch."""
    stream = FeatureStream(capacity_s=len(samples) / DEFAULT_SPEC.sample_rate + 1.0)
    stream.push(samples)
    return functionals(stream.window_frames(0, len(samples)))


@pytest.mark.parametrize("chunk", [160, 512, 4096])
def test_chunk_size_does_not_change_the_features(chunk, speech_clip):
    """Pushing a clip in chunks of any size gives bit-identical features to pushing it in one block."""
    x = speech_clip
    one_block = clip_vector(x)
    stream = FeatureStream(capacity_s=10)
    for i in range(0, len(x), chunk):
        stream.push(x[i:i + chunk])
    chunked = functionals(stream.window_frames(0, len(x)))
    assert chunked.shape == (DEFAULT_SPEC.dim,)
    np.testing.assert_array_equal(chunked, one_block)     # frames are computed when read, not per push


def test_filterbank_and_dct_match_the_references():
    librosa = pytest.importorskip("librosa")
    from scipy.fft import dct

    spec = DEFAULT_SPEC
    ref = librosa.filters.mel(sr=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels, fmin=spec.fmin_hz,
                              fmax=spec.fmax_hz)
    np.testing.assert_allclose(mel_filterbank(spec), ref, atol=1e-6)
    v = np.random.default_rng(0).standard_normal(spec.n_mels)
    np.testing.assert_allclose(dct_matrix(spec.n_mels, spec.n_mfcc) @ v, dct(v, norm="ortho")[:spec.n_mfcc])


_OCTAVE_ERROR = pytest.mark.xfail(
    strict=True, reason="known pitch bug without an octave cost (the shipped models' spec; peaks only alone): above "
                        "~150 Hz, where a multiple of the lag fits in the search range, the argmax can pick 2x/3x "
                        "the lag (173 and 311 Hz read as 86.5 and 155.5 Hz)")
OCTAVE_COST = replace(DEFAULT_SPEC, octave_cost=0.1)   # `ser-train fit --pitch-octave-cost`
PEAKS_ONLY = replace(OCTAVE_COST, pitch_peaks_only=True)   # and `--pitch-peaks-only`
PEAKS_ALONE = replace(DEFAULT_SPEC, pitch_peaks_only=True)   # `--pitch-peaks-only` without the cost


def tone_pitch(spec: FeatureSpec, hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Voicing and F0 in Hz of the inner frames of one second of a pure tone."""
    stream = FeatureStream(spec)
    stream.push(0.5 * np.sin(2 * np.pi * hz * np.arange(16000) / 16000))
    frames = stream.frames_between(2, stream.n_frames - 2)
    return frames[:, -2], 55 * 2 ** (frames[:, -1] / 12)


@pytest.mark.parametrize("spec, tone_hz", [(DEFAULT_SPEC, 118.0), (DEFAULT_SPEC, 141.0),   # lags 135.59 and 113.48
                                           pytest.param(DEFAULT_SPEC, 173.0, marks=_OCTAVE_ERROR),
                                           pytest.param(DEFAULT_SPEC, 311.0, marks=_OCTAVE_ERROR),
                                           (PEAKS_ALONE, 118.0), (PEAKS_ALONE, 141.0),
                                           pytest.param(PEAKS_ALONE, 173.0, marks=_OCTAVE_ERROR),
                                           pytest.param(PEAKS_ALONE, 311.0, marks=_OCTAVE_ERROR),
                                           *((spec, hz) for spec in (OCTAVE_COST, PEAKS_ONLY)
                                             for hz in (80.0, 118.0, 141.0, 173.0, 311.0, 450.0))])
def test_pitch_of_a_pure_tone(spec, tone_hz):
    # The lags are not whole numbers of samples, so only the parabolic interpolation gets F0 right: measured error
    # at most 1.5e-5 (118 Hz) and 1.2e-5 (141 Hz); the whole-sample peak would be 0.30 % / 0.42 % off, one sample
    # more 1.0 % / 0.46 %. With the octave cost the worst is 80 Hz, 2.5e-4 (as without it); without the step onto the
    # peak it was 2.5e-3. Tolerance 0.2 %.
    voicing, f0_hz = tone_pitch(spec, tone_hz)
    assert np.all(voicing > 0.9)
    np.testing.assert_allclose(f0_hz, tone_hz, rtol=2e-3)


@pytest.mark.parametrize("tone_hz", [80.0, 118.0, 141.0, 173.0, 250.0, 311.0, 450.0, 495.0])
def test_peaks_only_changes_nothing_where_the_cost_already_lands_on_a_peak(tone_hz):
    """Inside the range a tone's chosen lag is a true peak either way: peaks + cost reads what the cost alone reads
    (after its step onto the peak), bit for bit."""
    for got, expected in zip(tone_pitch(PEAKS_ONLY, tone_hz), tone_pitch(OCTAVE_COST, tone_hz)):
        np.testing.assert_array_equal(got, expected)


def test_octave_cost_keeps_the_search_range():
    """A 520 Hz tone lies just past the 500 Hz edge: the tracker with the cost reads the edge (507.9 Hz, the
    interpolation's half sample), not a lag outside the range it searches."""
    _, f0_hz = tone_pitch(OCTAVE_COST, 520.0)
    lag_min = np.floor(OCTAVE_COST.sample_rate / OCTAVE_COST.f0_max_hz)
    assert np.all(f0_hz <= OCTAVE_COST.sample_rate / (lag_min - 0.5) + 1e-9)


def test_peaks_only_reads_no_pitch_at_the_edge_of_the_range():
    """A 30 Hz hum, below the range: its autocorrelation falls over the whole search range, so the shipped tracker
    reads its edge as a voiced 500 Hz; with peaks only there is no candidate and the frame is unvoiced. A 520 Hz
    tone, just above the range: peaks only reads its second period (260 Hz), the nearest true peak inside."""
    voicing, f0_hz = tone_pitch(DEFAULT_SPEC, 30.0)
    assert np.all(voicing > DEFAULT_SPEC.voicing_threshold) and np.all(f0_hz > 490)   # what it mends
    for spec in (PEAKS_ONLY, PEAKS_ALONE):
        voicing, _ = tone_pitch(spec, 30.0)
        assert not voicing.any()
    voicing, f0_hz = tone_pitch(PEAKS_ONLY, 520.0)
    assert np.all(voicing > 0.9)
    np.testing.assert_allclose(f0_hz, 260.0, rtol=2e-3)


@pytest.mark.parametrize("f0_hz", [150.0, 200.0, 250.0, 300.0, 350.0])
def test_octave_cost_reads_a_harmonic_voice_at_its_own_period(f0_hz):
    """A voice-like tone (14 harmonics, 1 % jitter): the shipped spec reads 300 Hz as 100 Hz on every frame
    (and 150 Hz as 75 Hz on 55 %); with the octave cost every frame is within 5 %."""
    rng = np.random.default_rng(0)
    phase = 2 * np.pi * np.cumsum(f0_hz * (1 + 0.01 * rng.standard_normal(16000))) / 16000
    voice = 0.1 * sum(np.sin(k * phase) / k for k in range(1, 15))
    read = {}
    for name, spec in (("shipped", DEFAULT_SPEC), ("octave cost", OCTAVE_COST), ("peaks only", PEAKS_ONLY)):
        stream = FeatureStream(spec)
        stream.push(voice)
        read[name] = 55 * 2 ** (stream.frames_between(0, stream.n_frames)[:, -1] / 12)
    np.testing.assert_allclose(read["octave cost"], f0_hz, rtol=0.05)
    np.testing.assert_allclose(read["peaks only"], f0_hz, rtol=0.05)
    assert np.mean(read["shipped"] < 0.75 * f0_hz) > (0.9 if f0_hz in (300.0, 350.0) else 0.2)   # what it mends


def test_names_match_vector_and_empty_window_is_zero():
    assert len(DEFAULT_SPEC.names) == DEFAULT_SPEC.dim == len(set(DEFAULT_SPEC.names))
    stream = FeatureStream()
    stream.push(np.zeros(100, dtype=np.float32))
    assert not functionals(stream.window_frames(0, 100)).any()


def test_spec_hash_changes_with_the_spec():
    assert DEFAULT_SPEC.hash() == replace(DEFAULT_SPEC).hash()
    assert DEFAULT_SPEC.hash() != replace(DEFAULT_SPEC, n_mfcc=13).hash()
    assert DEFAULT_SPEC.hash() != OCTAVE_COST.hash()
    assert DEFAULT_SPEC.hash() == "bec3b36fd5bb2357"   # the shipped cards': a field added later, at its old value,
                                                       # leaves the digest alone


def test_frames_after_a_gap_equal_the_continuous_stream(speech_clip):
    """Frames are computed on demand; a window after unread silence must match a full computation."""
    x = speech_clip
    lazy, full = FeatureStream(capacity_s=10), FeatureStream(capacity_s=10)
    lazy.push(x)
    full.push(x)
    everything = full.frames_between(0, full.n_frames)
    late = lazy.frames_between(full.n_frames // 2, full.n_frames)
    np.testing.assert_allclose(late, everything[full.n_frames // 2:], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("rows", [1, 2, 37, 400])
def test_stats_equal_numpy_mean_std_and_percentiles_bit_for_bit(rows):
    from realtime.features import _stats

    x = np.random.default_rng(rows).standard_normal((rows, 5)) * 30 + 7
    stats = _stats(x, DEFAULT_SPEC)
    np.testing.assert_array_equal(stats[0], x.mean(axis=0))
    np.testing.assert_array_equal(stats[1], x.std(axis=0))
    np.testing.assert_array_equal(stats[2:], np.percentile(x, DEFAULT_SPEC.percentiles, axis=0))


def test_frame_range_holds_exactly_the_frames_inside():
    stream = FeatureStream()
    stream.push(np.zeros(RATE, np.float32))
    L = DEFAULT_SPEC.frame_length
    assert stream.frame_range(0, RATE) == (0, (RATE - L) // HOP + 1)
    assert stream.frame_range(1, 3 * HOP + L) == (1, 4)          # frame 0 starts before the window; frame 3 ends at it


def test_pitch_statistics_use_only_voiced_frames():
    frames = np.zeros((4, len(DEFAULT_SPEC.frame_names)))
    frames[:, -2] = [0.9, 0.1, 0.8, 0.2]        # voicing
    frames[:, -1] = [10.0, 40.0, 20.0, 30.0]    # f0 semitones
    v = dict(zip(DEFAULT_SPEC.names, functionals(frames)))
    assert v["voiced_fraction"] == 0.5 and v["f0_mean"] == 15.0
