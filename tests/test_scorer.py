import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from realtime.features import DEFAULT_SPEC
from realtime.scorer import DEFAULT_MODEL, ModelError, Scorer, model_path, onnx_digest
from realtime.vad import VadConfig
from tests.conftest import copy_model, edit_card


def test_scores_are_probabilities(tiny_model):
    scorer = Scorer(tiny_model)
    emotion, gender = scorer.score(np.random.default_rng(0).standard_normal((3, 2 * DEFAULT_SPEC.dim)))
    assert emotion.shape == (3, 8) and gender.shape == (3, 2)
    np.testing.assert_allclose(emotion.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(gender.sum(axis=1), 1, atol=1e-5)


def test_shipped_model_loads_and_matches_the_runtime():
    scorer = Scorer(DEFAULT_MODEL)
    assert scorer.card.labels == ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    assert scorer.card.raw["feature_spec_hash"] == DEFAULT_SPEC.hash()


def test_shipped_models_are_found_by_name_and_files_by_path(tiny_model):
    assert model_path("ser-ravdess") == DEFAULT_MODEL
    noisy = Scorer(model_path("ser-ravdess-noisy"))
    assert noisy.card.name == "ser-ravdess-noisy" and noisy.card.labels == Scorer(DEFAULT_MODEL).card.labels
    phone = Scorer(model_path("ser-ravdess-phone")).card
    assert phone.name == "ser-ravdess-phone" and phone.labels == noisy.card.labels
    assert phone.band_rate_hz == 8000 and phone.band_hz == (300.0, 3400.0)
    phone_noisy = Scorer(model_path("ser-ravdess-phone-noisy")).card
    assert phone_noisy.name == "ser-ravdess-phone-noisy" and phone_noisy.labels == phone.labels
    assert (phone_noisy.band_rate_hz, phone_noisy.band_hz) == (phone.band_rate_hz, phone.band_hz)
    narrowband = Scorer(model_path("ser-ravdess-8k")).card
    assert narrowband.name == "ser-ravdess-8k" and narrowband.labels == phone.labels
    assert narrowband.band_rate_hz == 8000 and narrowband.band_hz is None
    assert noisy.card.band_rate_hz is None and Scorer(DEFAULT_MODEL).card.band_rate_hz is None
    assert noisy.card.band_hz is None and Scorer(DEFAULT_MODEL).card.band_hz is None
    assert model_path(str(tiny_model)) == tiny_model
    assert model_path("no-such-model") == Path("no-such-model")   # left for Scorer's one-line error


def test_feature_spec_mismatch_is_one_clear_error(tiny_model, tmp_path):
    model = copy_model(tiny_model, tmp_path)
    edit_card(model, feature_spec_hash="0123456789abcdef")
    with pytest.raises(ModelError, match="feature_spec_hash '0123456789abcdef' is not the digest of its feature_spec .*retrain"):
        Scorer(model)


@pytest.mark.parametrize("tracker", [{"octave_cost": 0.1}, {"pitch_peaks_only": True},
                                     {"octave_cost": 0.1, "pitch_peaks_only": True}])
def test_the_card_fixes_the_features_the_runtime_computes(tiny_model, tmp_path, tracker):
    """A model trained with `--pitch-octave-cost` or `--pitch-peaks-only` is served with that pitch tracker; a card
    whose digest does not match the spec it lists is refused."""
    from realtime.pipeline import Pipeline

    spec = replace(DEFAULT_SPEC, **tracker)
    model = copy_model(tiny_model, tmp_path)
    edit_card(model, feature_spec=asdict(spec), feature_spec_hash=spec.hash())
    assert Pipeline(Scorer(model)).windows.features.spec == spec
    assert Pipeline(Scorer(tiny_model)).windows.features.spec == DEFAULT_SPEC
    edit_card(model, feature_spec_hash=DEFAULT_SPEC.hash())
    with pytest.raises(ModelError, match=f"inconsistent: its feature_spec_hash '{DEFAULT_SPEC.hash()}' is not the "
                                         f"digest of its feature_spec \\({spec.hash()}\\), so it was edited"):
        Scorer(model)


@pytest.mark.parametrize("change", [{"octave_cost": -1.0}, {"pitch_peaks_only": "yes"}, {"f0_max_hz": 1000.0},
                                    {"n_fft": 256}, {"sample_rate": 22050}])
def test_a_card_can_choose_the_pitch_tracker_and_nothing_else(tiny_model, tmp_path, change):
    """The code fixes every setting but the pitch tracker's octave cost and candidates, so a card with another
    (digest and all) is refused."""
    spec = replace(DEFAULT_SPEC, **change)
    model = copy_model(tiny_model, tmp_path)
    edit_card(model, feature_spec=asdict(spec), feature_spec_hash=spec.hash())
    with pytest.raises(ModelError, match=f"trained with feature spec {spec.hash()} \\(version 2\\), which this "
                                         f"runtime does not compute; retrain"):
        Scorer(model)


def test_a_card_from_a_newer_ser_train_says_so(tiny_model, tmp_path):
    model = copy_model(tiny_model, tmp_path)
    edit_card(model, feature_spec={**asdict(DEFAULT_SPEC), "formant_count": 3})
    with pytest.raises(ModelError, match="lists feature settings this runtime does not know \\(formant_count\\): "
                                         "a newer ser-train wrote it"):
        Scorer(model)


def test_older_feature_spec_is_rejected(tiny_model, tmp_path):
    model = copy_model(tiny_model, tmp_path)
    card = json.loads(model.with_suffix(".json").read_text())
    card["feature_spec"]["version"] = 0
    edit_card(model, feature_spec=card["feature_spec"])
    with pytest.raises(ModelError, match="\\(version 0\\), which this runtime does not compute"):
        Scorer(model)


def test_wrong_label_count_is_rejected(tiny_model, tmp_path):
    model = copy_model(tiny_model, tmp_path)
    edit_card(model, labels=["neutral", "angry"])
    with pytest.raises(ModelError, match="outputs 8 emotions.*card lists 2"):
        Scorer(model)


@pytest.mark.parametrize("damage", ["missing_card", "corrupt_card", "missing_onnx", "corrupt_onnx", "no_key"])
def test_broken_models_give_model_errors(tiny_model, tmp_path, damage):
    model = copy_model(tiny_model, tmp_path)
    if damage == "missing_card":
        model.with_suffix(".json").unlink()
    elif damage == "corrupt_card":
        model.with_suffix(".json").write_text("{not json")
    elif damage == "missing_onnx":
        model.unlink()
    elif damage == "corrupt_onnx":
        model.write_bytes(b"\x08\x01garbage" * 10)
    else:
        edit_card(model, adaptation=None)
    with pytest.raises(ModelError):
        Scorer(model)


def test_a_graph_beside_another_models_card_is_refused(tmp_path):
    """Same labels, same input width: only the checksum the card records tells the two apart."""
    shutil.copy(model_path("ser-ravdess-8k"), tmp_path / "mix.onnx")
    shutil.copy(DEFAULT_MODEL.with_suffix(".json"), tmp_path / "mix.json")
    with pytest.raises(ModelError, match="not the graph its card mix.json was written with"):
        Scorer(tmp_path / "mix.onnx")
    edit_card(tmp_path / "mix.onnx", onnx_sha256=None)      # a card written before the checksum: not checked
    assert Scorer(tmp_path / "mix.onnx").card.name == "ser-ravdess"


def test_shipped_cards_record_their_graphs_checksum():
    for card in DEFAULT_MODEL.parent.glob("*.json"):
        assert json.loads(card.read_text())["onnx_sha256"] == onnx_digest(card.with_suffix(".onnx").read_bytes())


def test_an_upper_case_suffix_is_a_model_too(tiny_model, tmp_path):
    shutil.copy(tiny_model, tmp_path / "M.ONNX")
    shutil.copy(tiny_model.with_suffix(".json"), tmp_path / "M.json")
    assert Scorer(tmp_path / "M.ONNX").path == tmp_path / "M.ONNX"


def test_a_file_that_is_not_a_model_is_named(tmp_path):
    (tmp_path / "call.wav").write_bytes(b"RIFF")
    for given in (tmp_path / "call.wav", tmp_path):
        with pytest.raises(ModelError, match=f"--model {given} is not a model"):
            Scorer(given)


def test_the_models_beside_a_source_tree_serve_when_the_package_is_not_installed(monkeypatch):
    from realtime import scorer

    def not_installed(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(scorer.resources, "files", not_installed)
    assert scorer._shipped_models() == Path(scorer.__file__).resolve().parents[1] / "models"
    assert (scorer._shipped_models() / "ser-ravdess.onnx").is_file()


def test_card_and_graph_must_agree_about_frames(tiny_model, tmp_path):
    """A card announcing a frame member for a graph without a frames input is refused in one line."""
    model = copy_model(tiny_model, tmp_path)
    columns = len(DEFAULT_SPEC.frame_names)
    edit_card(model, frame_model={"weight": 0.5, "pop_mean": [0.0] * columns, "pop_std": [1.0] * columns})
    with pytest.raises(ModelError, match="disagree about the 'frames' input"):
        Scorer(model)
    edit_card(model, frame_model={"weight": 0.5, "pop_mean": [0.0] * 3, "pop_std": [1.0] * 3})
    with pytest.raises(ModelError, match="wrong size"):
        Scorer(model)


def test_the_card_names_the_vad_its_windows_were_cut_with(tiny_model, tmp_path):
    from realtime.pipeline import Pipeline

    model = copy_model(tiny_model, tmp_path)
    card = json.loads(model.with_suffix(".json").read_text())
    assert card.pop("vad") == asdict(VadConfig())                            # written by the fit
    model.with_suffix(".json").write_text(json.dumps(card))
    assert Scorer(model).card.vad == VadConfig()               # cards before the field: the default
    edit_card(model, vad={"webrtc_hears_silence": True})
    scorer = Scorer(model)
    assert scorer.card.vad.webrtc_hears_silence
    assert Pipeline(scorer).windows.frame_vad._hears_silence                     # served as trained
    assert not Pipeline(scorer, vad=VadConfig()).windows.frame_vad._hears_silence
    edit_card(model, vad={"no_such_setting": 1})
    with pytest.raises(ModelError, match="malformed"):
        Scorer(model)


def test_the_card_sets_the_variance_prior_the_runtime_adapts_with(tiny_model, tmp_path):
    from realtime.pipeline import Pipeline

    model = copy_model(tiny_model, tmp_path)
    assert "variance_prior_windows" not in json.loads(model.with_suffix(".json").read_text())["adaptation"]
    pipeline = Pipeline(Scorer(model))                    # cards before it: the mean's prior
    assert pipeline.adapter.config.variance_prior == pipeline.adapter.config.prior_windows == 2.0
    card = json.loads(model.with_suffix(".json").read_text())
    card["adaptation"]["variance_prior_windows"] = 10
    model.with_suffix(".json").write_text(json.dumps(card))
    pipeline = Pipeline(Scorer(model), adapt=False)
    assert pipeline.adapter.config.variance_prior == 10.0 and not pipeline.adapter.config.enabled
    assert pipeline.frame_adapter is None or pipeline.frame_adapter.config.variance_prior == 10.0


def test_card_format_and_statistic_sizes_are_checked(tiny_model, tmp_path):
    from realtime.scorer import ModelError, Scorer
    model = copy_model(tiny_model, tmp_path)
    edit_card(model, format=2)
    with pytest.raises(ModelError, match="format"):
        Scorer(model)
    edit_card(model, format=1)
    card = json.loads(model.with_suffix(".json").read_text())
    card["adaptation"]["pop_std"] = card["adaptation"]["pop_std"][:-1]
    model.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="wrong size"):
        Scorer(model)
