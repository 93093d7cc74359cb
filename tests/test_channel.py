"""The telephone-line pass band: the filter, the models that hear through it, and the flags that set it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from realtime.channel import TAPS, BandPass, through
from realtime.features import DEFAULT_SPEC
from realtime.pipeline import Pipeline, WindowFeaturizer
from realtime.scorer import ModelError, Scorer
from ser_train import cli
from ser_train.corpora import Clip
from ser_train.dataset import extract
from tests.conftest import bursts
from tests.test_cli import segment_events
from tests.test_resample import band_power, small_corpus, tones


def test_streamed_in_any_blocks_it_equals_the_filter_over_the_whole_signal():
    x = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    band = BandPass(300, 3400, 16000)
    whole = np.convolve(x.astype(np.float64), band.taps)[(TAPS - 1) // 2:][:len(x)]   # no delay
    for sizes in ((5000,), (3, 100, 1600, 7, 2000, 1290), (60,) * 84):
        band.reset()
        edges = np.cumsum((0, *sizes))
        heard = np.concatenate(list(through(band, (x[a:b] for a, b in zip(edges, edges[1:])))))
        assert len(heard) == len(x) and heard.dtype == np.float32
        np.testing.assert_allclose(heard, whole, atol=1e-5)


def test_it_passes_the_voice_band_and_removes_what_a_phone_line_cannot_carry():
    x = tones(16000, hz=(100.0, 1000.0, 5000.0))
    heard = np.concatenate(list(through(BandPass(300, 3400, 16000), [x])))
    kept = band_power(heard, 16000, 900, 1100) / band_power(x, 16000, 900, 1100)
    assert 0.98 < kept < 1.02
    for low, high in ((50, 150), (4900, 5100)):
        assert band_power(heard, 16000, low, high) < 1e-4 * band_power(x, 16000, low, high)   # 40 dB down


@pytest.mark.parametrize("low, high", [(0, 3400), (3400, 300), (300, 8000)])
def test_a_band_that_is_not_one_is_refused(low, high):
    with pytest.raises(ValueError, match="pass band"):
        BandPass(low, high, 16000)


def test_the_featurizer_hears_the_stream_through_the_band_in_any_blocks():
    x = bursts(total_s=3.0, spans=((0.5, 2.0, "speechlike"),))

    def vectors(band_hz, block):
        featurizer = WindowFeaturizer(DEFAULT_SPEC, band_hz=band_hz)
        windows = [w for i in range(0, len(x), block) for w in featurizer.push(x[i:i + block])] + featurizer.flush()
        return np.array([w.vector for w in windows if w.event.kind == "segment"])

    banded = vectors((300, 3400), 1600)
    assert len(banded) == 1
    np.testing.assert_allclose(vectors((300, 3400), 999), banded, rtol=1e-6, atol=1e-6)
    centroid = DEFAULT_SPEC.names.index("centroid_mean")
    assert banded[0, centroid] < 0.6 * vectors(None, 1600)[0, centroid]   # white noise loses its highs


def banded_model(tiny_model, tmp_path, band):
    path = tmp_path / "phone.onnx"
    shutil.copy(tiny_model, path)
    card = json.loads(tiny_model.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**card, "band_hz": band}))
    return path


def test_a_card_with_a_band_makes_the_pipeline_hear_through_it(tiny_model, tmp_path):
    assert Scorer(tiny_model).card.band_hz is None
    assert Pipeline(Scorer(tiny_model)).windows.band is None
    pipeline = Pipeline(Scorer(banded_model(tiny_model, tmp_path, [300, 3400])))
    assert (pipeline.windows.band.low_hz, pipeline.windows.band.high_hz) == (300, 3400)


def test_replay_through_a_phone_model_is_identical_for_every_chunk_size(burst_file, tiny_model, tmp_path):
    phone = banded_model(tiny_model, tmp_path, [300, 3400])
    reference = segment_events(burst_file, 160, phone)
    assert len(reference) == 3 and reference != segment_events(burst_file, 160, tiny_model)
    for chunk in (1000, 4096):
        assert segment_events(burst_file, chunk, phone) == reference


@pytest.mark.parametrize("band", [[3400, 300], [300, 9000], ["low", 3400]])
def test_a_card_with_a_broken_band_is_one_model_error(tiny_model, tmp_path, band):
    with pytest.raises(ModelError, match="malformed"):
        Scorer(banded_model(tiny_model, tmp_path, band))


def test_extraction_hears_copies_through_the_band_and_caches_them_apart(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, bursts(total_s=2.0, spans=((0.4, 1.6, "speechlike"),)), 16000)
    clip = Clip(path, "angry", "s1", None, "folder")
    cache = tmp_path / "cache"
    wide, phone = (extract([clip], DEFAULT_SPEC, cache_dir=cache, workers=1, band_hz=band)[0]
                   for band in (None, (300.0, 3400.0)))
    assert len(list(cache.rglob("*.npz"))) == 2 and not np.allclose(wide.vectors, phone.vectors)
    again = extract([clip], DEFAULT_SPEC, cache_dir=cache, workers=1, band_hz=(300.0, 3400.0))[0]
    np.testing.assert_array_equal(again.vectors, phone.vectors)


def test_evaluate_can_play_a_corpus_through_a_phone_line(tmp_path, tiny_model, clip_conditions):
    data = small_corpus(tmp_path / "src")
    out = tmp_path / "phone.json"
    assert cli.main(["evaluate", "--model", str(tiny_model), "--corpus", "folder", "--data", str(data),
                     "--band", "300-3400", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["band_hz"] == [300.0, 3400.0] and report["n"] == 2
    assert [(c["line"].low_hz, c["line"].high_hz) for c in clip_conditions] == [(300.0, 3400.0)] * 2  # each clip hears it


@pytest.mark.parametrize("text", ["3400-300", "300", "300-9000", "low-high"])
def test_a_bad_band_flag_is_one_line_and_exit_2(tmp_path, tiny_model, capsys, text):
    with pytest.raises(SystemExit) as stop:
        cli.main(["evaluate", "--model", str(tiny_model), "--corpus", "folder", "--data", str(tmp_path),
                  "--band", text])
    assert stop.value.code == 2
    assert "expected LOW-HIGH in Hz" in capsys.readouterr().err

