import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from realtime.features import DEFAULT_SPEC, FeatureSpec
from realtime.scorer import Scorer
from ser_train import cli
from ser_train.corpora import scan_corpus
from ser_train.evaluate import evaluate, session_order
from ser_train.frame_model import torch_available
from tests.conftest import SHARED_RAVDESS, bursts, copy_model

RATE = 16000


def folder_corpus(root: Path) -> Path:
    """Two speakers, two labels the model has, one it lacks, and one silent clip."""
    for label, kind in (("angry", "noise"), ("sad", "tone"), ("boredom", "noise")):
        (root / label).mkdir(parents=True)
        for speaker in ("s1", "s2"):
            sf.write(root / label / f"{speaker}_{label}.wav", bursts(total_s=2.0, spans=((0.4, 1.6, kind),)), 16000)
    sf.write(root / "sad" / "s1_silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    return root


@pytest.mark.parametrize("adapt", [True, False])
def test_evaluate_counts_skips_and_silent_clips(tmp_path, tiny_model, adapt):
    clips = list(scan_corpus("folder", folder_corpus(tmp_path / "corpus")).clips)
    report = evaluate(Scorer(tiny_model), clips, adapt=adapt, progress=False)
    assert report["skipped"] == 2                      # boredom is not a model label
    assert report["n"] == 5 and report["no_speech"] == 1
    assert report["labels"] == ["sad", "angry"]        # argmax over the labels both sides share
    assert sum(map(sum, report["confusion"])) == 4     # the silent clip is an error, not a row
    assert 0 <= report["uar"] <= 1 and set(report["per_class"]) == {"sad", "angry"}
    assert report["gender_accuracy"] is None           # the folder corpus has no genders
    spans = report.get("by_session_position")          # adapted: figures by the clip's place in its session
    assert (sum(span["n"] for span in spans) == 5 and spans[0]["positions"] == "1-5") if adapt else spans is None


def test_session_order_is_seeded_and_grouped_by_speaker(tmp_path):
    clips = list(scan_corpus("folder", folder_corpus(tmp_path / "corpus")).clips)
    first, again = session_order(clips, seed=3), session_order(clips, seed=3)
    assert first == again
    assert all(len({c.speaker for c in session}) == 1 for session in first)


@pytest.mark.parametrize("mode", ["--adapt", "--no-adapt"])
def test_evaluate_cli_writes_strict_json_into_a_new_folder(tmp_path, tiny_model, mode, capsys):
    corpus = folder_corpus(tmp_path / "corpus")
    (corpus / "loose.wav").write_bytes(b"")                    # rejected by the scan: not in a label folder
    out = tmp_path / "new" / "figures.json"
    code = cli.main(["evaluate", "--model", str(tiny_model), "--corpus", "folder", "--data", str(corpus), mode,
                     "--json", str(out)])
    assert code == 0
    figures = json.loads(out.read_text(), parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert {"n", "skipped", "accuracy", "uar", "gender_accuracy", "per_class", "confusion"} <= set(figures)
    assert figures["rejected"] == 1 and figures["skipped"] == 2
    printed = capsys.readouterr()
    assert printed.out == ""                                    # progress and figures go to stderr
    assert f"n=5  accuracy {figures['accuracy']:.3f}  UAR {figures['uar']:.3f}" in printed.err   # on one line


def test_evaluate_noise_colour_without_its_level_is_one_line(tmp_path, tiny_model, capsys):
    assert cli.main(["evaluate", "--model", str(tiny_model), "--corpus", "folder", "--data", str(tmp_path),
                     "--noise", "white"]) == 2
    assert "--noise sets the colour of --snr-db's noise; give --snr-db too" in error_line(capsys.readouterr().err)


def test_the_headline_names_the_band_clips_were_played_through():
    from ser_train.report import figures_headline
    report = {"n": 3, "accuracy": 1.0, "uar": 1.0, "gender_accuracy": None, "ece": None, "no_speech": 0, "skipped": 0,
              "adapt": False, "band_hz": [300.0, 3400.0]}
    assert figures_headline(report).endswith("(cold, through 300-3400 Hz)")


def test_evaluate_a_corpus_without_speaker_names_needs_no_adapt(tmp_path, tiny_model, capsys):
    for label in ("angry", "sad"):
        (tmp_path / label).mkdir()
        for n in range(2):
            sf.write(tmp_path / label / f"{label}{n}.wav", bursts(total_s=2.0, spans=((0.4, 1.6, "noise"),)), RATE)
    argv = ["evaluate", "--model", str(tiny_model), "--corpus", "folder", "--data", str(tmp_path)]
    assert cli.main(argv) == 2 and "--no-adapt and without --snr-db" in error_line(capsys.readouterr().err)
    assert cli.main([*argv, "--no-adapt", "--snr-db", "20"]) == 2      # its noise is set against each speaker
    assert cli.main([*argv, "--no-adapt"]) == 0


def test_evaluate_a_corpus_of_labels_the_model_lacks_is_one_line(tmp_path, tiny_model, capsys):
    (tmp_path / "boredom").mkdir()
    for speaker in ("s1", "s2"):
        sf.write(tmp_path / "boredom" / f"{speaker}_a.wav", bursts(total_s=1.0), RATE)
    assert cli.main(["evaluate", "--model", str(tiny_model), "--corpus", "folder", "--data", str(tmp_path)]) == 2
    line = error_line(capsys.readouterr().err)
    assert "none of the clips' labels (boredom) is one of the model's (neutral, calm," in line


def test_evaluate_held_out_replays_only_the_speakers_a_kept_fold_model_names(tmp_path, tiny_model):
    from ser_train.fit import HELD_OUT_KEY

    fold = tmp_path / "fold1"
    shutil.copy(tiny_model, fold.with_suffix(".onnx"))
    card = json.loads(tiny_model.with_suffix(".json").read_text())
    card["metrics"][HELD_OUT_KEY] = ["folder:s1"]
    card["training"] = {"fit_config": {"seed": 7}}
    fold.with_suffix(".json").write_text(json.dumps(card))
    out = tmp_path / "figures.json"
    corpus = folder_corpus(tmp_path / "corpus")
    for seed, flags in ((7, []), (2, ["--seed", "2"])):     # the fit's clip order, unless --seed says otherwise
        assert cli.main(["evaluate", "--model", str(fold.with_suffix(".onnx")), "--corpus", "folder", "--data",
                         str(corpus), "--held-out", "--json", str(out), *flags]) == 0
        figures = json.loads(out.read_text())
        assert figures["n"] + figures["skipped"] == 4      # s1's four clips (one of them silent), not s2's three
        assert figures["seed"] == seed


def test_held_out_without_a_fold_model_is_one_line(tmp_path, tiny_model, capsys):
    corpus = folder_corpus(tmp_path / "corpus")
    assert cli.main(["evaluate", "--model", str(tiny_model), "--corpus", "folder", "--data", str(corpus),
                     "--held-out"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--held-out needs a fold model kept by" in err


@pytest.mark.parametrize("flags", [["--no-streaming-cv", "--keep-folds", "folds"], ["--no-streaming-cv", "--report", "r"],
                                   ["--no-frame-model", "--frame-masks"],
                                   ["--no-frame-model", "--frame-averaging"]])
def test_flags_that_contradict_each_other_are_one_line(tmp_path, capsys, flags):
    assert cli.main(["fit", "--corpus", f"folder={tmp_path}", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(flag in err for flag in flags if flag.startswith("--"))


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_a_variance_prior_that_is_not_positive_is_one_line(tmp_path, capsys, value):
    assert cli.main(["fit", "--corpus", f"folder={tmp_path}", "--variance-prior-windows", value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--variance-prior-windows must be a positive number" in err


@pytest.mark.parametrize("flags, message", [(["--families", "svc,forest"], "unknown classifier family 'forest'"),
                                            (["--folds", "1"], "--folds must be at least 2")])
def test_a_bad_search_setting_is_one_line_before_the_corpus_is_read(tmp_path, capsys, flags, message):
    assert cli.main(["fit", "--corpus", f"ravdess={tmp_path / 'missing'}", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize("command", ["fit", "evaluate"])
@pytest.mark.parametrize("seed", ["-1", "x"])
def test_a_seed_below_0_is_a_usage_error_before_the_corpus_is_read(tmp_path, capsys, command, seed):
    """It used to fail after the corpus scan, with numpy's message that did not name --seed."""
    args = {"fit": ["--corpus", f"folder={tmp_path}"],
            "evaluate": ["--model", "ser-ravdess", "--corpus", "folder", "--data", str(tmp_path)]}[command]
    with pytest.raises(SystemExit) as stopped:
        cli.main([command, *args, "--seed", seed])
    assert stopped.value.code == 2
    assert f"argument --seed: expected 0 or a positive whole number, got '{seed}'" in capsys.readouterr().err


def test_a_report_without_a_model_card_is_one_line(tmp_path, capsys):
    assert cli.main(["report", "--model", str(tmp_path / "nope.onnx"), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no model card at" in err and not (tmp_path / "rep").exists()


@pytest.mark.parametrize("text,needle", [("{}", "is not a model card: it has no metrics"),
                                         ("[1, 2]", "is not a model card: it has no metrics"),
                                         ("nope", "is not JSON (Expecting value")])
def test_a_report_on_a_card_that_is_not_one_is_one_line(tmp_path, tiny_model, capsys, text, needle):
    model = copy_model(tiny_model, tmp_path)
    model.with_suffix(".json").write_text(text)
    assert cli.main(["report", "--model", str(model), "--out", str(tmp_path / "rep")]) == 2
    assert f"{model.with_suffix('.json')} {needle}" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "rep").exists()


@pytest.mark.parametrize("name, folder", [("ser-ravdess", "report"), ("ser-ravdess-phone", "report-phone")])
def test_the_shipped_reports_are_what_report_writes_from_the_shipped_cards(tmp_path, name, folder):
    """`report` takes a shipped model's name, and the committed report.md is its output, not an edited copy."""
    committed = Path(__file__).resolve().parents[1] / "models" / folder
    assert cli.main(["report", "--model", name, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.md").read_text() == (committed / "report.md").read_text()
    assert {p.name for p in tmp_path.iterdir()} == {p.name for p in committed.iterdir()}


def test_convergence_warnings_are_collected_and_others_still_shown():
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with pytest.warns(UserWarning, match="another") as shown:
        with cli.convergence_warnings_counted() as caught:
            for _ in range(3):
                warnings.warn("Maximum iterations (200) reached", ConvergenceWarning)
            warnings.warn("another warning", UserWarning)
    assert caught == ["Maximum iterations (200) reached"] * 3
    assert [w.category for w in shown] == [UserWarning]


def test_non_finite_gain_is_one_line(tmp_path, tiny_model, capsys):
    assert cli.main(["evaluate", "--model", str(tiny_model), "--corpus", "folder", "--data", str(tmp_path),
                     "--gain-db", "nan"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--gain-db must be a finite number" in err


def test_bad_corpus_is_one_line(tmp_path, capsys):
    assert cli.main(["fit", "--corpus", f"ravdess={tmp_path / 'missing'}"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_streaming_cv_with_two_speakers_is_refused_in_one_line_before_extraction(tmp_path, capsys, monkeypatch):
    from ser_train import fit

    corpus = folder_corpus(tmp_path / "corpus")
    monkeypatch.setattr(fit, "extract", lambda *args, **kwargs: pytest.fail("features were extracted first"))
    assert cli.main(["fit", "--corpus", f"folder={corpus}", "--no-frame-model", "--families", "logreg",
                     "--out", str(tmp_path / "m")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ser-train: error")]
    assert len(errors) == 1 and "at least 3 speakers (found 2)" in errors[0] and "--no-streaming-cv" in errors[0]


def test_a_fold_trained_on_one_gender_says_it_has_no_gender_head(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    rows = ["file,speaker,gender"]
    for label, kind in (("angry", "noise"), ("sad", "tone")):
        (corpus / label).mkdir(parents=True)
        for speaker in ("f1", "f2", "m1"):
            for take in range(2):
                name = f"{label}/{speaker}_{take}.wav"
                sf.write(corpus / name, bursts(total_s=1.5, spans=((0.3, 1.2, kind),)), RATE)
                rows.append(f"{name},{speaker},{speaker[0]}")
    (corpus / "speakers.csv").write_text("\n".join(rows) + "\n")
    assert cli.main(["fit", "--corpus", f"folder={corpus}", "--no-frame-model", "--families", "logreg",
                     "--folds", "3", "--out", str(tmp_path / "m")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert err.count("training speakers are not of both known genders") == 1   # only the fold that holds out m1
    assert "(more speakers or fewer --folds mix them)" in err                    # 3 folds: 2 would
    assert json.loads((tmp_path / "m.json").read_text())["gender_trained"]


@pytest.mark.parametrize("flag, tracker", [("--pitch-octave-cost", {"octave_cost": 0.1}),
                                           ("--pitch-peaks-only", {"pitch_peaks_only": True})])
def test_the_pitch_tracker_reaches_every_extraction_and_the_card(tmp_path, monkeypatch, flag, tracker):
    from ser_train import fit

    specs = []
    extract = fit.extract
    monkeypatch.setattr(fit, "extract", lambda clips, spec, **kw: specs.append(spec) or extract(clips, spec, **kw))
    corpus = two_label_corpus(tmp_path / "corpus")
    assert cli.main(["fit", "--corpus", f"folder={corpus}", "--no-frame-model", "--no-streaming-cv", "--families",
                     "logreg", "--noisy-gender-copies", flag, "--out", str(tmp_path / "m")]) == 0
    assert len(specs) == 2 and all(spec == replace(DEFAULT_SPEC, **tracker) for spec in specs)   # table, gender copies
    assert Scorer(tmp_path / "m.onnx").card.spec == specs[0]


@pytest.mark.parametrize("low_rate, warned", [(8000, True), (16000, False)])
def test_fit_warns_when_the_training_audio_mixes_sample_rates(tmp_path, capsys, monkeypatch, low_rate, warned):
    from ser_train import fit

    def stop(*args, **kwargs):
        raise ValueError("stopped before extraction")

    corpus = folder_corpus(tmp_path / "corpus")
    sf.write(corpus / "angry" / "s1_low.wav", bursts(rate=low_rate, total_s=2.0, spans=((0.4, 1.6, "noise"),)), low_rate)
    monkeypatch.setattr(fit, "extract", stop)
    assert cli.main(["fit", "--corpus", f"folder={corpus}", "--no-frame-model", "--no-streaming-cv",
                     "--out", str(tmp_path / "m")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert ("recorded at 8000 to 16000 Hz" in err and "--rate 8000" in err) == warned
    assert "stopped before extraction" in err


@pytest.mark.parametrize("flags, span", [([], 0.0), (["--reverb-copies", "--gender-copies"], 0.05),
                                         (["--noise-copies"], 0.05)])
def test_gender_copies_flag_lets_the_nearest_copies_train_the_gender_head(tmp_path, monkeypatch, flags, span):
    from ser_train import fit

    configs = []
    monkeypatch.setattr(fit, "fit_model", lambda *args: configs.append(args[4]) or {"metrics": {}})
    corpus = folder_corpus(tmp_path / "corpus")
    assert cli.main(["fit", "--corpus", f"folder={corpus}", *flags, "--out", str(tmp_path / "m")]) == 0
    assert configs[0].gender_copy_span == span
    assert (configs[0].copy_rt60_s is not None) == ("--reverb-copies" in flags)


@pytest.mark.skipif(not SHARED_RAVDESS.exists(), reason="needs the RAVDESS subset at ../shared/data/ravdess "
                                                        "(present in CI, not in a user's clone)")
def test_fit_on_four_real_actors_exports_a_working_model(tmp_path):
    data = tmp_path / "ravdess"
    # two men (odd) and two women (even): GroupKFold puts 06+03 and 04+01 together, so each fold trains a gender head
    # and the gender figures are real (with Actor_01-04 each fold trained on one gender and every one was null)
    for actor in ("Actor_01", "Actor_03", "Actor_04", "Actor_06"):
        shutil.copytree(SHARED_RAVDESS / actor, data / actor)
    out = tmp_path / "model" / "small"
    frame_model = ["--frame-epochs", "2", "--frame-masks", "--frame-averaging"] if torch_available() else ["--no-frame-model"]
    assert cli.main(["fit", "--corpus", f"ravdess={data}", "--emotions", "neutral,angry,sad,happy", *frame_model,
                     "--families", "logreg", "--folds", "2", "--seed", "1", "--noise-copies", "--band", "300-3400",
                     "--noisy-gender-copies", "--reverb-copies", "--vad-hears-silence", "--variance-prior-windows", "10",
                     "--pitch-octave-cost", "--pitch-peaks-only", "--out", str(out),
                     "--report", str(tmp_path / "rep"), "--keep-folds", str(tmp_path / "folds")]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    stream = card["metrics"]["streaming_cv"]
    assert card["labels"] == ["neutral", "happy", "sad", "angry"]
    assert card["trained_on_rate_hz"] == 16000           # the shared RAVDESS copy is 16 kHz
    assert card["training"]["fit_config"]["seed"] == 1
    environment = card["training"]["environment"]
    assert environment["scikit-learn"] and environment["blas"] and environment["cpu"]
    assert environment["torch_cpu"] if torch_available() else "torch" not in environment
    assert card["training"]["fit_config"]["copy_snr_db"] == [10.0, 40.0]
    assert card["training"]["fit_config"]["gender_copy_span"] == 0.05
    assert "also train the gender head" in card["metrics"]["protocol"]
    assert card["training"]["fit_config"]["gender_noise_snr_db"] == [10.0, 40.0]
    assert "to train the gender head alone" in card["metrics"]["protocol"]
    assert card["training"]["fit_config"]["copy_rt60_s"] == [0.2, 1.0]
    assert "heard in a synthetic reverberant room" in card["metrics"]["protocol"]
    assert card["band_hz"] == [300.0, 3400.0] and "300-3400 Hz pass band" in card["metrics"]["protocol"]
    assert card["vad"]["webrtc_hears_silence"] and "webrtcvad hears every frame" in card["metrics"]["protocol"]
    assert card["adaptation"]["variance_prior_windows"] == 10.0 and "weight of 10 windows" in card["metrics"]["protocol"]
    assert card["feature_spec"]["octave_cost"] == 0.1 and "octave cost of 0.1 per octave" in card["metrics"]["protocol"]
    assert card["feature_spec"]["pitch_peaks_only"] and "local maxima are pitch candidates" in card["metrics"]["protocol"]
    assert card["feature_spec_hash"] == FeatureSpec(**{**card["feature_spec"], "percentiles": (10, 50, 90)}).hash()
    assert stream["adapt"]["n"] == stream["cold"]["n"] == 4 * 28
    # chance is 0.25 for four classes, and labels unrelated to the audio reach 0.28; measured adapted 0.547, cold 0.492
    assert stream["adapt"]["uar"] > 0.38 and stream["cold"]["uar"] > 0.38
    assert stream["adapt"]["gender_accuracy"] > 0.85 and stream["cold"]["gender_accuracy"] > 0.85   # 0.991, 0.982
    assert len(stream["fold_chosen"]) == 2 and all(c.startswith("logreg(") for c in stream["fold_chosen"])
    assert set(stream["uar_at_level"]) == {"-10 dB", "+10 dB"}
    clean = {mode: stream[mode]["uar"] for mode in ("adapt", "cold")}
    # a recording level 10 dB off hardly matters (measured at most 0.039 from the clean figure)
    assert all(abs(u[mode] - clean[mode]) <= 0.1 for u in stream["uar_at_level"].values() for mode in clean)
    assert set(stream["in_noise"]) == {"white noise, 20 dB SNR", "pink noise, 20 dB SNR"}
    assert set(stream["in_room"]) == {"room, RT60 0.3 s", "room, RT60 0.6 s"}
    # in noise or a room: above chance, and not far above the clean figure (measured 0.492-0.609 with clean
    # 0.547/0.492; the pink noise cold figure is the furthest above, +0.070); gender measured 0.848-0.982
    degraded = [*stream["in_noise"].values(), *stream["in_room"].values()]
    assert all(0.33 < u[mode] < clean[mode] + 0.2 for u in degraded for mode in clean)
    assert all(u[f"gender_{mode}"] > 0.7 for u in degraded for mode in clean)
    assert card["metrics"]["onnx_max_abs_diff"] <= 1e-4
    assert ("frame_model" in card) == torch_available()
    assert card["training"]["fit_config"]["frame"]["time_masks"] == (2 if torch_available() else 0)
    assert ("masks: per item 2 stretches of up to 10% of its frames" in card["metrics"]["protocol"]) == torch_available()
    assert card["training"]["fit_config"]["frame"]["average_epochs"] == (10 if torch_available() else 0)
    assert ("weights averaged (SWA) over 10 more epochs" in card["metrics"]["protocol"]) == torch_available()
    assert (tmp_path / "rep" / "confusion_adapt.png").exists()
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "each fold's own search chose: `logreg(" in report and "another recording level" in report
    assert "pink noise, 20 dB SNR: UAR adapted" in report and "room, RT60 0.6 s: UAR adapted" in report
    assert "--emotions neutral,happy,sad,angry --families logreg --folds 2" in report   # its Reproduce line
    # the kept fold models name their held-out actors, and replaying one gives its fold's figure again
    held = [json.loads((tmp_path / "folds" / f"fold{k}.json").read_text())["metrics"]["held_out_speakers"]
            for k in (1, 2)]
    assert sorted(held[0] + held[1]) == [f"ravdess:0{a}" for a in (1, 3, 4, 6)]
    figures = tmp_path / "fold1.json"
    assert cli.main(["evaluate", "--model", str(tmp_path / "folds" / "fold1.onnx"), "--corpus", "ravdess",
                     "--data", str(data), "--held-out", "--seed", "1", "--json", str(figures)]) == 0
    assert json.loads(figures.read_text())["uar"] == stream["adapt"]["fold_uar"][0]


def test_reproduce_command_carries_every_non_default_setting():
    from ser_train.fit import NOISE_COPY_SNR_DB, NOISE_GENDER_SPAN, PITCH_OCTAVE_COST, REVERB_COPY_RT60_S, FitConfig
    from ser_train.frame_model import AVERAGED_FRAME_CONFIG, MASKED_FRAME_CONFIG, FrameModelConfig
    from ser_train.report import reproduce_command

    card = lambda fit: {"name": "m", "training": {"corpora": ["ravdess=D"], "fit_config": asdict(fit)}}  # noqa: E731
    command = "ser-train fit --corpus ravdess=D --families logreg,svc,mlp,hgb"
    assert reproduce_command(card(FitConfig())) == f"{command} --out models/m"
    assert reproduce_command(card(FitConfig(frame_model=False, seed=3))) == f"{command} --no-frame-model --seed 3 --out models/m"
    noisy = FitConfig(copy_snr_db=NOISE_COPY_SNR_DB, gender_copy_span=NOISE_GENDER_SPAN)
    assert reproduce_command(card(noisy)) == f"{command} --noise-copies --out models/m"
    gender_room = FitConfig(gender_noise_snr_db=NOISE_COPY_SNR_DB)
    assert reproduce_command(card(gender_room)) == f"{command} --noisy-gender-copies --out models/m"
    echo = FitConfig(copy_rt60_s=REVERB_COPY_RT60_S)
    assert reproduce_command(card(echo)) == f"{command} --reverb-copies --out models/m"
    heard = FitConfig(copy_rt60_s=REVERB_COPY_RT60_S, gender_copy_span=NOISE_GENDER_SPAN)
    assert reproduce_command(card(heard)) == f"{command} --reverb-copies --gender-copies --out models/m"
    phone = FitConfig(band_hz=(300.0, 3400.0))
    assert reproduce_command(card(phone)) == f"{command} --band 300-3400 --out models/m"
    hears = FitConfig(copy_rt60_s=REVERB_COPY_RT60_S, vad_hears_silence=True)
    assert reproduce_command(card(hears)) == f"{command} --reverb-copies --vad-hears-silence --out models/m"
    pitch = FitConfig(copy_rt60_s=REVERB_COPY_RT60_S, octave_cost=PITCH_OCTAVE_COST)
    assert reproduce_command(card(pitch)) == f"{command} --reverb-copies --pitch-octave-cost --out models/m"
    peaks = replace(pitch, pitch_peaks_only=True)
    assert reproduce_command(card(peaks)) == f"{command} --reverb-copies --pitch-octave-cost --pitch-peaks-only --out models/m"
    firm = FitConfig(copy_rt60_s=REVERB_COPY_RT60_S, variance_prior_windows=10.0)
    assert reproduce_command(card(firm)) == f"{command} --reverb-copies --variance-prior-windows 10 --out models/m"
    masked = FitConfig(copy_rt60_s=REVERB_COPY_RT60_S, frame=FrameModelConfig(**MASKED_FRAME_CONFIG))
    assert reproduce_command(card(masked)) == f"{command} --frame-masks --reverb-copies --out models/m"
    assert "--frame-masks" not in reproduce_command(card(replace(masked, frame_model=False)))
    both = FitConfig(frame=FrameModelConfig(**MASKED_FRAME_CONFIG, **AVERAGED_FRAME_CONFIG))
    assert reproduce_command(card(both)) == f"{command} --frame-masks --frame-averaging --out models/m"
    assert "--frame-averaging" not in reproduce_command(card(replace(both, frame_model=False)))
    subset = FitConfig(folds=4, emotions=("neutral", "happy", "sad", "angry"))
    assert reproduce_command(card(subset)) == ("ser-train fit --corpus ravdess=D --emotions neutral,happy,sad,angry "
                                               "--families logreg,svc,mlp,hgb --folds 4 --out models/m")
    demographics = FitConfig(speakers=("cremad=C/VideoDemographics.csv",))
    assert reproduce_command(card(demographics)) == ("ser-train fit --corpus ravdess=D --speakers cremad=C/VideoDemographics.csv "
                                                     "--families logreg,svc,mlp,hgb --out models/m")


def test_evaluate_plays_clips_at_the_given_level(tmp_path, tiny_model):
    clips = list(scan_corpus("folder", folder_corpus(tmp_path / "corpus")).clips)
    scorer = Scorer(tiny_model)
    silent = evaluate(scorer, clips, adapt=False, progress=False, gain_db=-200.0)
    assert silent["gain_db"] == -200.0 and silent["no_speech"] == silent["n"]   # nothing left to hear
    assert evaluate(scorer, clips, adapt=False, progress=False)["no_speech"] == 1


def test_voice_copies_get_one_level_per_speaker_and_factor():
    from ser_train.corpora import Clip
    from ser_train.fit import FitConfig, session_gain_db

    fit = FitConfig(copy_gain_db=(-10.0, 20.0))
    clip = lambda speaker, name: Clip(Path(name), "angry", speaker, None, "folder")  # noqa: E731
    gains = {f: session_gain_db(clip("a", "x.wav"), f, fit) for f in fit.voice_factors}
    assert session_gain_db(clip("a", "x.wav"), 1.0, fit) == 0.0                 # real audio keeps its level
    assert all(session_gain_db(clip("a", "y.wav"), f, fit) == g for f, g in gains.items())  # one level per session
    assert all(-10.0 <= g <= 20.0 for g in gains.values()) and len(set(gains.values())) == len(gains)
    assert session_gain_db(clip("a", "x.wav"), 0.9, FitConfig(copy_gain_db=(0.0, 0.0))) == 0.0


def test_report_names_the_resampling_of_a_narrowband_model():
    from ser_train.report import _resample_note

    assert _resample_note({"sample_rate": 16000}) == ""                       # cards from before the field
    assert _resample_note({"sample_rate": 16000, "trained_on_rate_hz": 16000}) == ""
    assert "ser-train resample ORIGINAL COPY --rate 8000" in _resample_note({"sample_rate": 16000,
                                                                             "trained_on_rate_hz": 8000})


def test_evaluate_title_says_when_a_corpus_has_no_gender_labels():
    from ser_train.report import figures_headline

    report = {"n": 8, "accuracy": 0.5, "uar": 0.4567, "gender_accuracy": None, "ece": None, "no_speech": 0,
              "skipped": 1, "adapt": True, "per_class": {}}
    assert "gender n/a  ECE n/a" in figures_headline(report)
    report.update(gender_accuracy=0.98765, ece=0.1)
    assert "UAR 0.457  gender 0.988  ECE 0.100" in figures_headline(report)


def test_report_counts_the_clips_a_replay_found_no_speech_in():
    from ser_train.report import _level_note

    def stream(**silent):
        room = {"adapt": 0.6, "cold": 0.5, "gender_adapt": 0.9, "gender_cold": 0.8, **silent}
        return {"uar_at_level": {"-10 dB": {"adapt": 0.6, "cold": 0.5, **silent}}, "in_room": {"room": room}}

    assert _level_note(stream(no_speech=0)).count("without speech") == 0
    assert _level_note(stream(no_speech=25)).count("25 clips without speech, counted as errors") == 2
    assert "Pooled before" in _level_note({**stream(), "note": "Pooled before the fix."})  # a card's own note


def test_a_model_without_a_gender_head_has_no_gender_accuracy(tmp_path, tiny_model):
    model = tmp_path / "genderless.onnx"
    shutil.copy(tiny_model, model)
    card = json.loads(tiny_model.with_suffix(".json").read_text())
    model.with_suffix(".json").write_text(json.dumps({**card, "gender_trained": False}))
    clips = [c for c in scan_corpus("folder", folder_corpus(tmp_path / "corpus")).clips]
    clips = [type(c)(c.path, c.label, c.speaker, "female", c.corpus) for c in clips]    # genders known
    assert evaluate(Scorer(tiny_model), clips, adapt=False, progress=False)["gender_accuracy"] is not None
    assert evaluate(Scorer(model), clips, adapt=False, progress=False)["gender_accuracy"] is None


def test_the_report_of_a_model_without_a_gender_head_shows_no_gender_figures(tmp_path):
    """No gender plot (an empty one read as 0 % accuracy), n/a in the table, and no word of a gender head."""
    from realtime.scorer import model_path
    from ser_train.report import write_report

    card = json.loads(model_path("ser-ravdess").with_suffix(".json").read_text())
    card["gender_trained"] = False
    stream = card["metrics"]["streaming_cv"]
    for mode in ("adapt", "cold"):
        stream[mode]["gender_accuracy"] = None
    for figures in (*stream["in_noise"].values(), *stream["in_room"].values()):
        figures.update(gender_adapt=None, gender_cold=None)
    (tmp_path / "m.json").write_text(json.dumps(card))
    text = write_report(tmp_path / "m.json", tmp_path / "report").read_text()
    assert not (tmp_path / "report" / "gender.png").exists() and "gender.png" not in text
    assert "| adapt | 1200 | " in text and " | n/a | " in text and "gender head" not in text
    assert (tmp_path / "report" / "classifiers.png").exists() and "| sad | 0.510 | 0.453 |" in text


def test_evaluate_names_the_files_it_cannot_decode(tmp_path, tiny_model, capsys):
    corpus = folder_corpus(tmp_path / "corpus")
    (corpus / "angry" / "s2_broken.wav").write_bytes(b"RIFF" + bytes(100))
    out = tmp_path / "figures.json"
    assert cli.main(["evaluate", "--model", str(tiny_model), "--corpus", "FOLDER", "--data", str(corpus),
                     "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["unreadable"] == 1 and "s2_broken.wav" in figures["unreadable_files"][0]
    assert figures["no_speech"] == 1          # the silent clip alone: an unreadable one is not counted there too
    assert sum(span["no_speech"] for span in figures["by_session_position"]) == 1     # nor in the session spans
    printed = " ".join(capsys.readouterr().err.split())    # the table wraps to the console's width
    assert "no speech 1" in printed and "unreadable 1" in printed and "unreadable: " in printed
    assert "s2_broken.wav" in printed


@pytest.mark.parametrize("argv,needle", [
    (["fit", "--out", "{file}/model"], "--out"),
    (["fit", "--report", "{file}"], "--report"),
    (["fit", "--keep-folds", "{file}/folds"], "--keep-folds"),
    (["fit", "--out", "/proc/ser-test/model"], "--out"),    # refused by the filesystem, even to root
    (["evaluate", "--model", "ser-ravdess", "--corpus", "folder", "--json", "{tmp}"], "--json"),
    (["evaluate", "--model", "ser-ravdess", "--corpus", "folder", "--json", "{file}/x.json"], "--json")])
def test_output_paths_are_checked_before_any_work(tmp_path, capsys, argv, needle):
    """A path that cannot be written fails at once, not after hours of fitting or replaying."""
    (tmp_path / "file").write_text("")
    argv = [a.format(file=tmp_path / "file", tmp=tmp_path) for a in argv]
    data = ["--corpus", f"folder={tmp_path / 'none'}"] if argv[0] == "fit" else ["--data", str(tmp_path / "none")]
    assert cli.main([*argv, *data]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"ser-train: error: {needle}")


@pytest.mark.parametrize("emotions,needle", [("ANGRY,", "--emotions gives only angry"),
                                             (" , ", "--emotions ' , ' names no emotion"),
                                             (None, "the corpora hold only angry")])
def test_one_emotion_is_refused_before_any_work(tmp_path, capsys, emotions, needle):
    corpus = tmp_path / "corpus"
    for speaker in ("s1", "s2", "s3"):
        (corpus / "angry").mkdir(parents=True, exist_ok=True)
        sf.write(corpus / "angry" / f"{speaker}_{len(speaker)}.wav", bursts(total_s=1.0), 16000)
    flags = ["--emotions", emotions] if emotions else []
    assert cli.main(["fit", "--corpus", f"folder={corpus}", *flags, "--out", str(tmp_path / "m")]) == 2
    assert needle in error_line(capsys.readouterr().err) and not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("silent,needle", [
    (("sad",), "no clip labelled sad holds speech that the VAD finds, so the model could not learn it"),
    (("angry", "sad"), "no clip holds speech that the VAD finds"),
])
def test_a_label_without_speech_is_refused_before_training(tmp_path, capsys, silent, needle):
    """It used to train, then fail the export check on a graph with fewer outputs, and leave both files behind."""
    corpus = tmp_path / "corpus"
    for label in ("angry", "sad"):
        (corpus / label).mkdir(parents=True)
        for speaker in ("s1", "s2", "s3"):
            audio = np.zeros(RATE, np.float32) if label in silent else bursts(total_s=1.5, spans=((0.3, 1.2, "noise"),))
            sf.write(corpus / label / f"{speaker}_{label}.wav", audio, RATE)
    argv = ["fit", "--corpus", f"folder={corpus}", "--no-frame-model", "--no-streaming-cv", "--families", "logreg",
            "--out", str(tmp_path / "m")]
    assert cli.main(argv) == 2
    assert needle in error_line(capsys.readouterr().err)
    assert not list(tmp_path.glob("m.*"))


@pytest.mark.parametrize("target", ["card", "model", "clip"])
def test_evaluate_json_never_overwrites_the_model_its_card_or_a_clip(tmp_path, tiny_model, capsys, target):
    (tmp_path / "m").mkdir()
    model = copy_model(tiny_model, tmp_path / "m")
    data = folder_corpus(tmp_path / "corpus")
    path = {"card": model.with_suffix(".json"), "model": model, "clip": data / "angry" / "s1_angry.wav"}[target]
    before = path.read_bytes()
    assert cli.main(["evaluate", "--model", str(model), "--corpus", "folder", "--data", str(data),
                     "--json", str(path)]) == 2
    assert f"--json {path} would overwrite {path}, an input of this run" in error_line(capsys.readouterr().err)
    assert path.read_bytes() == before


def two_label_corpus(root: Path) -> Path:
    for label, kind in (("angry", "noise"), ("sad", "tone")):
        (root / label).mkdir(parents=True)
        for speaker in ("s1", "s2", "s3"):
            sf.write(root / label / f"{speaker}_{label}.wav", bursts(total_s=1.5, spans=((0.3, 1.2, kind),)), RATE)
    return root


def test_a_file_given_by_two_corpus_roots_counts_once(tmp_path, capsys):
    """The same corpus twice, or a root inside another, used to double its clips in training."""
    from rich.console import Console

    corpus = two_label_corpus(tmp_path / "corpus")
    clips, _ = cli.scan_all([("folder", corpus), ("folder", tmp_path / "corpus" / "angry" / "..")], Console(stderr=True))
    assert sorted(c.path.name for c in clips) == sorted(p.name for p in corpus.rglob("*.wav"))
    assert "6 of them already given by an earlier --corpus (the same recordings): counted once" in capsys.readouterr().err


def test_a_recording_copied_to_another_root_counts_once(tmp_path, capsys):
    """An 8 kHz copy beside the original (ser-train resample) used to double every recording."""
    from rich.console import Console

    for root, suffix in (("orig", "wav"), ("copy8k", "flac")):
        for actor in ("01", "02"):
            (tmp_path / root / f"Actor_{actor}").mkdir(parents=True)
            (tmp_path / root / f"Actor_{actor}" / f"03-01-05-01-02-01-{actor}.{suffix}").write_bytes(b"x")
    specs = [("ravdess", tmp_path / "orig"), ("ravdess", tmp_path / "copy8k")]
    clips, _ = cli.scan_all(specs, Console(stderr=True))
    assert sorted(c.path.parent.parent.name for c in clips) == ["orig", "orig"]
    assert "2 of them already given by an earlier --corpus (the same recordings)" in capsys.readouterr().err


def test_one_folder_speaker_name_under_two_roots_or_of_two_genders_is_warned_about(tmp_path, capsys):
    from rich.console import Console

    for root, gender in (("A", "male"), ("B", "female")):
        for label in ("angry", "sad"):
            (tmp_path / root / label).mkdir(parents=True)
            (tmp_path / root / label / "x.wav").write_bytes(b"x")
        (tmp_path / root / "speakers.csv").write_text(f"file,speaker,gender\nangry/x.wav,s1,{gender}\n"
                                                      f"sad/x.wav,s1,{gender}\n")
    clips, _ = cli.scan_all([("folder", tmp_path / "A"), ("folder", tmp_path / "B")], Console(stderr=True, width=300))
    err = capsys.readouterr().err
    assert len(clips) == 4 and {c.speaker for c in clips} == {"folder:s1"}
    assert "speakers folder:s1 also appear under an earlier folder corpus: each name is taken as one person" in err
    assert "speakers labelled both female and male: folder:s1" in err


QUICK_FIT = ["--no-frame-model", "--no-streaming-cv", "--families", "logreg"]


def test_out_keeps_a_dotted_name_and_a_failed_fit_leaves_the_model_there_untouched(tmp_path, monkeypatch, capsys):
    """`--out m/model-v1.5` used to write m/model-v1.onnx (another model's name, perhaps); and a fit that failed
    its export check used to leave its own files in place of the model already there."""
    from realtime.scorer import Scorer
    from ser_train import export, fit

    corpus = two_label_corpus(tmp_path / "corpus")
    out = tmp_path / "m" / "model-v1.5"
    assert cli.main(["fit", "--corpus", f"folder={corpus}", *QUICK_FIT, "--out", f"{out}.onnx"]) == 0
    files = sorted(p.name for p in out.parent.iterdir())
    assert files == ["model-v1.5.json", "model-v1.5.onnx"]
    assert Scorer(out).card.name == "model-v1.5"      # the runtime finds it by the same stem
    assert cli.main(["report", "--model", str(out), "--out", str(tmp_path / "rep")]) == 2     # and report: its card,
    assert f"{out}.json has no streaming CV figures" in capsys.readouterr().err             # not model-v1.json
    before = {name: (out.parent / name).read_bytes() for name in files}

    def fails(*args, **kwargs):
        raise export.ExportError("ONNX and scikit-learn disagree")

    monkeypatch.setattr(fit, "check_equality", fails)
    assert cli.main(["fit", "--corpus", f"folder={corpus}", *QUICK_FIT, "--seed", "1", "--out", str(out)]) == 1
    assert "internal error: ExportError: ONNX and scikit-learn disagree" in capsys.readouterr().err.splitlines()[-1]
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before          # and no staging folder left


@pytest.mark.parametrize("out", ["", "models/", "m/.."])
def test_an_out_that_names_no_model_is_a_usage_error(capsys, out):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["fit", "--corpus", "folder=x", "--out", out])
    assert stopped.value.code == 2 and "argument --out: expected the model's path without suffix" in capsys.readouterr().err


def error_line(err: str) -> str:
    """The error that ends a run, after the corpus summary; never a traceback."""
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("ser-train: error: "), err
    return err.strip().splitlines()[-1]


def cremad_corpus(root: Path) -> Path:
    """Two actors (male 1001, female 1002), an angry and a sad clip each, without the demographics CSV."""
    root.mkdir(parents=True)
    for actor in ("1001", "1002"):
        for emotion, kind in (("ANG", "noise"), ("SAD", "tone")):
            sf.write(root / f"{actor}_DFA_{emotion}_XX.wav", bursts(total_s=2.0, spans=((0.4, 1.6, kind),)), RATE)
    return root


def test_evaluate_takes_cremad_genders_from_a_csv_given_with_speakers(tmp_path, tiny_model, capsys):
    corpus = cremad_corpus(tmp_path / "AudioWAV")
    argv = ["evaluate", "--model", str(tiny_model), "--corpus", "cremad", "--data", str(corpus), "--json",
            str(tmp_path / "out.json")]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "cremad: 4 clips, 2 speakers (2 of unknown gender), 0 rejected" in err
    assert f"no VideoDemographics.csv under {corpus}, so its actors' genders are unknown" in err
    assert json.loads((tmp_path / "out.json").read_text())["gender_accuracy"] is None
    (tmp_path / "VideoDemographics.csv").write_text("ActorID,Sex\n1001,Male\n1002,Female\n")
    assert cli.main([*argv, "--speakers", str(tmp_path / "VideoDemographics.csv")]) == 0
    err = capsys.readouterr().err
    assert "cremad: 4 clips, 2 speakers, 0 rejected" in err and "VideoDemographics.csv under" not in err
    assert json.loads((tmp_path / "out.json").read_text())["gender_accuracy"] is not None


@pytest.mark.parametrize("argv, needle", [
    (["fit", "--corpus", "tess=T", "--speakers", "tess=s.csv"], "a tess corpus takes neither"),
    (["fit", "--corpus", "ravdess=R", "--speakers", "cremad=s.csv"], "--speakers cremad=CSV: there is no cremad corpus"),
    (["fit", "--corpus", "folder=A", "--corpus", "folder=B", "--speakers", "folder=s.csv"],
     "give one folder corpus and one CSV for it"),
    (["fit", "--corpus", "cremad=C", "--speakers", "cremad=a.csv", "--speakers", "cremad=b.csv"],
     "give one cremad corpus and one CSV for it"),
    (["evaluate", "--model", "m", "--corpus", "savee", "--data", "S", "--speakers", "s.csv"],
     "a savee corpus takes neither"),
])
def test_speakers_for_a_corpus_that_cannot_take_them_is_one_line(tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    assert needle in error_line(capsys.readouterr().err)


def test_speakers_without_a_kind_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["fit", "--corpus", "cremad=C", "--speakers", "demographics.csv"])
    assert stop.value.code == 2 and "expected KIND=CSV (e.g. cremad=" in capsys.readouterr().err


def test_a_corpus_of_the_wrong_kind_is_one_line(tmp_path, capsys):
    (tmp_path / "Actor_01").mkdir()
    sf.write(tmp_path / "Actor_01" / "03-01-05-01-01-01-01.wav", bursts(total_s=1.0), 16000)
    assert cli.main(["fit", "--corpus", f"emodb={tmp_path}", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err                  # not the corpus summary and its rejects first
    line = error_line(err)
    assert "none of the 1 audio files" in line and "is a emodb clip" in line and "right kind" in line


def test_an_unknown_log_level_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--log-level", "bogus", "report", "--model", "m", "--out", "o"])
    assert stop.value.code == 2 and "Traceback" not in capsys.readouterr().err


def test_a_bug_is_one_line_and_debug_shows_its_traceback(tmp_path, capsys, monkeypatch, caplog):
    from ser_train import report

    def broken(*args):
        raise KeyError("bug")

    monkeypatch.setattr(report, "write_report", broken)
    card = tmp_path / "m.json"
    card.write_text("{}")
    argv = ["report", "--model", str(card), "--out", str(tmp_path / "r")]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: KeyError" in err and "--log-level DEBUG report" in err
    caplog.set_level("DEBUG", logger="ser-train")
    assert cli.main(["--log-level", "DEBUG", *argv]) == 1
    assert any(record.exc_info and record.exc_info[0] is KeyError for record in caplog.records)


def test_evaluate_clip_decision_is_duration_weighted(monkeypatch):
    from realtime.pipeline import Event
    from ser_train import evaluate as ev
    events = [Event("segment", 0, 3 * RATE, emotion_probs={"a": 1.0, "b": 0.0}, gender_probs={"female": 1.0, "male": 0.0}),
              Event("segment", 3 * RATE, 4 * RATE, emotion_probs={"a": 0.0, "b": 1.0}, gender_probs={"female": 0.0, "male": 1.0})]
    pipeline = SimpleNamespace(sample_rate=RATE, scorer=SimpleNamespace(card=SimpleNamespace(band_rate_hz=None)),
                               push=lambda block: [], flush=lambda: events)
    monkeypatch.setattr(ev, "FileSource", lambda *a, **k: [])
    monkeypatch.setattr(ev, "played", lambda source, *a: [])
    emotion, gender = ev.clip_probs(pipeline, Path("x.wav"))
    np.testing.assert_allclose(emotion, [0.75, 0.25]); np.testing.assert_allclose(gender, [0.75, 0.25])


def test_a_card_names_every_corpus_whose_terms_its_weights_inherit():
    """The licence line was RAVDESS's whatever the corpora; the shipped models' (RAVDESS alone) is unchanged."""
    from ser_train.fit import RAVDESS_LICENCE, licence

    shipped = json.loads((Path(__file__).resolve().parents[1] / "models" / "ser-ravdess.json").read_text())
    assert licence(["ravdess=../shared/data/ravdess"]) == RAVDESS_LICENCE == shipped["licence"]
    mixed = licence(["ravdess=a", "emodb=b", "folder=c"])
    assert mixed.startswith(RAVDESS_LICENCE) and "Also trained on emodb, folder: the weights inherit those corpora's" in mixed
    assert licence(["tess=t"]) == ("Trained on tess: the weights inherit that corpus's terms and citation "
                                    "requirements; check them before any use.")
