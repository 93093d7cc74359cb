from pathlib import Path

import numpy as np
import soundfile as sf

from realtime.features import DEFAULT_SPEC
from realtime.sources import FileSource
from realtime.scorer import Scorer
from ser_train import cli
from ser_train.corpora import Clip
from ser_train.dataset import at_level, extract, played
from ser_train.evaluate import evaluate
from ser_train.fit import NOISE_COPY_SNR_DB, NOISE_GENDER_SPAN, FitConfig, _fit_heads, gender_voices, session_noise
from ser_train.models import candidates
from ser_train.sessions import WindowTable
from ser_train.noise import COLOURS, Noise, active_rms, coloured_noise, speaker_levels
from tests.conftest import bursts


def band_power(x: np.ndarray, low: int, high: int) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    return float(spectrum[low:high].mean())


def test_coloured_noise_has_unit_rms_and_its_colour():
    rng = lambda: np.random.default_rng(5)  # noqa: E731
    white, pink, brown = (coloured_noise(32000, COLOURS[c], rng()) for c in ("white", "pink", "brown"))
    for noise in (white, pink, brown):
        assert abs(np.sqrt(np.mean(noise ** 2)) - 1.0) < 1e-9 and abs(noise.mean()) < 1e-9
    tilt = [band_power(x, 100, 200) / band_power(x, 10000, 12000) for x in (white, pink, brown)]
    assert 0.7 < tilt[0] < 1.4                                  # flat
    assert 40 < tilt[1] < 150 and 4000 < tilt[2] < 20000        # about 1/f and 1/f^2 over a factor of ~70
    np.testing.assert_array_equal(coloured_noise(100, 1.0, rng()), coloured_noise(100, 1.0, rng()))


def test_active_rms_is_the_level_of_the_louder_half():
    quiet, loud = np.full(3200, 0.001, np.float32), np.full(3200, 0.1, np.float32)
    assert abs(active_rms(np.concatenate((quiet, loud)), 16000) - 0.1) < 1e-6
    assert active_rms(np.zeros(10, np.float32), 16000) == 0.0


def test_noise_mix_sits_snr_below_the_reference_and_moves_with_the_gain():
    silence = np.zeros(16000, np.float32)
    mixed = Noise(snr_db=20.0, exponent=1.0, reference_rms=0.1, seed=3).mix(silence)
    assert mixed.dtype == np.float32 and abs(np.sqrt(np.mean(mixed.astype(np.float64) ** 2)) - 0.01) < 1e-5
    louder = Noise(20.0, 1.0, 0.1, 3).mix(silence, gain_db=20.0)
    np.testing.assert_allclose(louder, 10 * mixed, rtol=1e-5, atol=1e-7)
    assert np.abs(Noise(-40.0, 0.0, 0.1, 3).mix(silence)).max() == 1.0   # clipped at full scale


def test_speaker_levels_are_medians_and_skip_unreadable_files(tmp_path: Path):
    paths = []
    for i, amplitude in enumerate((0.01, 0.1, 1.0)):
        paths.append(tmp_path / f"{i}.wav")
        sf.write(paths[-1], np.full(1600, amplitude, np.float32), 16000)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    clips = [Clip(p, "angry", "s1", None, "folder") for p in (*paths, tmp_path / "bad.wav")]
    levels = speaker_levels(clips)
    assert list(levels) == ["s1"] and abs(levels["s1"] - 0.1) < 1e-3       # 16-bit WAV rounds the 0.1


def test_extract_hears_copies_over_noise_and_caches_them_apart(tmp_path: Path):
    path = tmp_path / "a.wav"
    sf.write(path, bursts(total_s=2.0, spans=((0.4, 1.6, "tone"),)), 16000)
    clip = Clip(path, "angry", "s1", None, "folder")
    cache = tmp_path / "cache"
    noise = Noise(snr_db=10.0, exponent=0.0, reference_rms=0.1, seed=1)
    plain, noisy = (extract([clip], DEFAULT_SPEC, cache_dir=cache, workers=1, noise=lambda c, f: n)[0]
                    for n in (None, noise))
    assert (plain.noise, noisy.noise) == (None, noise)
    flatness = DEFAULT_SPEC.names.index("flatness_mean")
    assert noisy.vectors[0, flatness] > plain.vectors[0, flatness]   # a tone over white noise is less tonal
    assert len(list(cache.rglob("*.npz"))) == 2
    again = extract([clip], DEFAULT_SPEC, cache_dir=cache, workers=1, noise=lambda c, f: noise)[0]
    np.testing.assert_array_equal(again.vectors, noisy.vectors)


def test_voice_copies_get_one_noise_per_speaker_and_factor_and_real_audio_none():
    fit = FitConfig(copy_snr_db=NOISE_COPY_SNR_DB)
    clip = lambda speaker, name: Clip(Path(name), "angry", speaker, None, "folder")  # noqa: E731
    levels = {"a": 0.02, "b": 0.03}
    noises = {f: session_noise(clip("a", "x.wav"), f, fit, levels) for f in fit.voice_factors}
    assert session_noise(clip("a", "x.wav"), 1.0, fit, levels) is None
    assert session_noise(clip("a", "x.wav"), 0.9, FitConfig(), levels) is None   # off by default
    assert session_noise(clip("c", "x.wav"), 0.9, fit, levels) is None          # no level for the speaker
    for factor, noise in noises.items():
        other = session_noise(clip("a", "y.wav"), factor, fit, levels)
        assert (other.snr_db, other.exponent, other.reference_rms) == (noise.snr_db, noise.exponent, 0.02)
        assert other.seed != noise.seed                                          # its own noise sample per clip
        assert 10.0 <= noise.snr_db <= 40.0 and 0.0 <= noise.exponent <= 2.0
    assert len({n.snr_db for n in noises.values()}) == len(noises)


def test_gender_head_hears_real_audio_and_with_noise_copies_the_nearest_copies():
    factors = np.array([1.0, *FitConfig().voice_factors])
    assert factors[gender_voices(factors, FitConfig())].tolist() == [1.0]
    near = gender_voices(factors, FitConfig(copy_snr_db=NOISE_COPY_SNR_DB, gender_copy_span=NOISE_GENDER_SPAN))
    assert factors[near].tolist() == [1.0, 0.95, 1.05]


def test_noisy_gender_copies_draw_their_own_noise_and_leave_the_copies_clean():
    clip = Clip(Path("x.wav"), "angry", "a", None, "folder")
    levels = {"a": 0.02}
    both = FitConfig(copy_snr_db=NOISE_COPY_SNR_DB, gender_noise_snr_db=NOISE_COPY_SNR_DB)
    copy, gender = session_noise(clip, 0.95, both, levels), session_noise(clip, 0.95, both, levels, gender_copy=True)
    assert gender.seed != copy.seed and gender.snr_db != copy.snr_db and 10.0 <= gender.snr_db <= 40.0
    assert session_noise(clip, 0.95, FitConfig(), levels, gender_copy=True) is None
    gender_only = FitConfig(gender_noise_snr_db=NOISE_COPY_SNR_DB)
    assert session_noise(clip, 0.95, gender_only, levels) is None                 # the emotion head's copies stay clean
    assert session_noise(clip, 0.95, gender_only, levels, gender_copy=True) == gender


def _gendered_table(shift: float) -> WindowTable:
    """Two labels, four speakers (two per gender), real audio only; ``shift`` moves every vector, as a room would."""
    rng = np.random.default_rng(int(shift))
    speakers = np.repeat(["a", "b", "c", "d"], 12)
    n = len(speakers)
    gender = np.isin(speakers, ["b", "d"]).astype(int)
    frames = np.empty(n, dtype=object)
    for i in range(n):
        frames[i] = rng.standard_normal((5, 3))
    return WindowTable(x=rng.standard_normal((n, 4)) + gender[:, None] + shift, frames=frames, label=np.arange(n) % 2,
                       gender=gender, speaker=speakers, session=np.char.add(speakers, "@1"), factor=np.ones(n),
                       clip=np.arange(n), duration_s=np.ones(n), labels=("neutral", "angry"))


def test_noisy_gender_copies_train_the_gender_head_alone():
    table, room = _gendered_table(0.0), _gendered_table(3.0)
    candidate = candidates(["logreg"])[0]
    emotion, gender, _, z = _fit_heads(table, candidate, FitConfig(), 1)
    emotion_too, gender_too, _, z_too = _fit_heads(table, candidate, FitConfig(), 1, room)
    probe = np.random.default_rng(5).standard_normal((20, 8))
    np.testing.assert_array_equal(z, z_too)
    np.testing.assert_array_equal(emotion.predict_proba(probe), emotion_too.predict_proba(probe))
    assert np.abs(gender.predict_proba(probe) - gender_too.predict_proba(probe)).max() > 0.01


def test_played_mixes_noise_over_the_whole_clip_in_blocks(tmp_path: Path):
    path = tmp_path / "a.wav"
    sf.write(path, bursts(total_s=1.05, spans=((0.2, 0.8, "noise"),)), 16000)
    source = lambda: FileSource(path, 16000, block=1600, speed=0)  # noqa: E731
    clean = np.concatenate(list(played(source(), 0.0, None, 1600)))
    noise = Noise(snr_db=5.0, exponent=1.0, reference_rms=0.05, seed=2)
    blocks = list(played(source(), 6.0, noise, 1000))
    assert [len(b) for b in blocks] == [1000] * 16 + [800]
    np.testing.assert_array_equal(np.concatenate(blocks), noise.mix(at_level(clean, 6.0), 6.0))


def test_evaluate_records_the_noise_it_replayed(tmp_path: Path, tiny_model, clip_conditions):
    root = tmp_path / "corpus" / "angry"
    root.mkdir(parents=True)
    sf.write(root / "s1_a.wav", bursts(total_s=2.0, spans=((0.4, 1.6, "noise"),)), 16000)
    clips = [Clip(root / "s1_a.wav", "angry", "s1", None, "folder")]
    report = evaluate(Scorer(tiny_model), clips, adapt=False, progress=False, noise=(0.0, 2.0))
    assert report["noise"] == {"snr_db": 0.0, "exponent": 2.0} and report["n"] == 1
    assert [(c["noise"].snr_db, c["noise"].exponent) for c in clip_conditions] == [(0.0, 2.0)]   # and replayed it


def test_non_finite_snr_is_one_line(tmp_path, tiny_model, capsys):
    assert cli.main(["evaluate", "--model", str(tiny_model), "--corpus", "folder", "--data", str(tmp_path),
                     "--snr-db", "inf"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--snr-db must be a finite number" in err
