"""`ser-train resample` (telephone-band corpora) and the warning for input narrower than a model's training audio."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from realtime.scorer import Scorer
from realtime.sources import sound_path
from ser_train import cli
from ser_train.corpora import scan_corpus
from ser_train.dataset import rate_range
from tests.conftest import bursts


def small_corpus(root):
    """Two stereo 44.1 kHz WAVs in a folder corpus, a speaker CSV and a file that is not audio."""
    for speaker in ("s1", "s2"):
        mono = bursts(rate=44100, total_s=2.0, spans=((0.4, 1.6, "noise"),))
        (root / "angry").mkdir(parents=True, exist_ok=True)
        sf.write(root / "angry" / f"{speaker}_a.wav", np.column_stack((mono, mono)), 44100)
    (root / "speakers.csv").write_text("file,speaker\nangry/s1_a.wav,s1\nangry/s2_a.wav,s2\n")
    return root


def test_resample_writes_mono_audio_at_the_rate_under_the_same_names(tmp_path, capsys):
    source = small_corpus(tmp_path / "src")
    assert cli.main(["resample", str(source), str(tmp_path / "dst"), "--rate", "8000"]) == 0
    outputs = sorted((tmp_path / "dst").rglob("*.wav"))
    assert [p.name for p in outputs] == ["s1_a.wav", "s2_a.wav"]
    for path in outputs:
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
        assert abs(info.duration - 2.0) < 0.01
    assert (tmp_path / "dst" / "speakers.csv").read_text() == (source / "speakers.csv").read_text()
    assert "wrote 2 audio files at 8000 Hz" in " ".join(capsys.readouterr().err.split())
    clips = scan_corpus("folder", tmp_path / "dst", speakers_csv=tmp_path / "dst" / "speakers.csv").clips   # the CSV still matches
    assert [c.speaker for c in clips] == ["folder:s1", "folder:s2"] and rate_range(list(clips)) == (8000, 8000)
    assert rate_range(list(scan_corpus("folder", source).clips)) == (44100, 44100) and rate_range([]) is None


def test_resample_counts_a_broken_file_and_exits_1(tmp_path, capsys):
    source = small_corpus(tmp_path / "src")
    (source / "angry" / "s3_broken.wav").write_bytes(b"RIFF not really")
    assert cli.main(["resample", str(source), str(tmp_path / "dst"), "--rate", "8000"]) == 1
    err = "".join(capsys.readouterr().err.split())   # the console wraps long paths
    assert "s3_broken.wav:notareadableaudiofile" in err and "1failed" in err
    assert len(list((tmp_path / "dst").rglob("*.wav"))) == 2


@pytest.mark.parametrize("rate, inside, needle", [(100, False, "--rate must be"), (8000, True, "must lie outside")])
def test_resample_refuses_bad_requests_in_one_line(tmp_path, capsys, rate, inside, needle):
    source = small_corpus(tmp_path / "src")
    target = source / "copy" if inside else tmp_path / "dst"
    assert cli.main(["resample", str(source), str(target), "--rate", str(rate)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not target.exists()


@pytest.mark.parametrize("case, needle", [("full target", "already holds files; give a new or empty folder"),
                                          ("no audio", "no .wav or .flac files under"),
                                          ("target under a file", "is a file, so no folder can be made there")])
def test_resample_refuses_to_overwrite_or_copy_nothing_in_one_line(tmp_path, capsys, case, needle):
    source, target = small_corpus(tmp_path / "src"), tmp_path / "dst"
    if case == "full target":
        target.mkdir()
        (target / "keep.txt").write_text("mine")
    elif case == "no audio":
        source = tmp_path / "notes"
        source.mkdir()
        (source / "readme.txt").write_text("no audio here")
    else:
        (tmp_path / "file").write_text("")
        target = tmp_path / "file" / "dst"
    assert cli.main(["resample", str(source), str(target), "--rate", "8000"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not target.exists() or [p.name for p in target.iterdir()] == ["keep.txt"]


def test_an_empty_mount_point_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    source, target = small_corpus(tmp_path / "src"), tmp_path / "mnt"
    target.mkdir()
    monkeypatch.setattr(os.path, "ismount", lambda path: Path(path) == target)   # the copy could not be renamed there
    assert cli.main(["resample", str(source), str(target), "--rate", "8000"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a mount point; give a new folder inside it" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnt", "src"] and not any(target.iterdir())


def test_linked_folders_are_copied_as_the_corpus_scan_follows_them(tmp_path, capsys):
    source, target = small_corpus(tmp_path / "src"), tmp_path / "dst"
    sad = tmp_path / "elsewhere" / "sad"
    sad.mkdir(parents=True)
    shutil.copy(source / "angry" / "s1_a.wav", sad / "s1_b.wav")
    (sad / "notes.txt").write_text("linked")
    (source / "sad").symlink_to(sad)
    (source / "angry" / "loop").symlink_to(source)   # a link loop ends
    with (source / "speakers.csv").open("a") as csv:
        csv.write("sad/s1_b.wav,s1\n")
    assert cli.main(["resample", str(source), str(target), "--rate", "8000"]) == 0
    copied = sorted(p.relative_to(target) for p in target.rglob("*.wav"))
    assert copied == [c.path.relative_to(source) for c in scan_corpus("folder", source).clips]
    assert copied == [Path("angry/s1_a.wav"), Path("angry/s2_a.wav"), Path("sad/s1_b.wav")]
    assert (target / "sad" / "notes.txt").read_text() == "linked"
    (source / "angry" / "s3_a.wav").symlink_to(tmp_path / "gone.wav")
    capsys.readouterr()
    assert cli.main(["resample", str(source), str(tmp_path / "dst2"), "--rate", "8000"]) == 1
    err = "".join(capsys.readouterr().err.split())
    assert "s3_a.wav:alinktonothing" in err and "wrote3audiofiles" in err and "1failed" in err


def test_a_rate_flac_cannot_hold_is_refused_before_anything_is_written(tmp_path, capsys):
    from ser_train.resample import resample_corpus

    source = small_corpus(tmp_path / "src")
    samples, rate = sf.read(source / "angry" / "s1_a.wav")
    sf.write(source / "angry" / "s3_a.flac", samples, rate)
    assert cli.main(["resample", str(source), str(tmp_path / "dst"), "--rate", "700000"]) == 2
    err = capsys.readouterr().err.strip()
    assert "above FLAC's limit of 655350 Hz" in err and len(err.splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["src"]
    (source / "angry" / "s3_a.flac").unlink()
    assert resample_corpus(source, tmp_path / "dst", 700000) == (2, [])   # WAV holds it
    assert sf.info(tmp_path / "dst" / "angry" / "s1_a.wav").samplerate == 700000


def test_a_file_name_that_is_not_utf8_is_resampled_like_any_other(tmp_path, capsys):
    source, target = small_corpus(tmp_path / "src"), tmp_path / "dst"
    odd = Path(os.fsdecode(b"caf\xfe"), os.fsdecode(b"s3_caf\xff.wav"))
    (source / odd.parent).mkdir()
    shutil.copy(source / "angry" / "s1_a.wav", source / odd)
    (source / odd.parent / "notes.txt").write_text("odd")
    assert cli.main(["resample", str(source), str(target), "--rate", "8000"]) == 0
    assert "wrote 3 audio files" in " ".join(capsys.readouterr().err.split())
    info = sf.info(sound_path(target / odd))
    assert (info.samplerate, info.channels) == (8000, 1)
    assert (target / odd.parent / "notes.txt").read_text() == "odd"


@pytest.mark.parametrize("abort, code", [(KeyboardInterrupt(), 130), (OSError(errno.ENOSPC, "No space left"), 2)])
@pytest.mark.parametrize("given_empty", [False, True])
def test_an_abort_leaves_no_partial_copy_and_a_rerun_works(tmp_path, monkeypatch, capsys, abort, code, given_empty):
    from ser_train import resample

    source, target = small_corpus(tmp_path / "src"), tmp_path / "out" / "dst"
    if given_empty:
        target.mkdir(parents=True)
    decode = resample.FileSource

    def second_file_aborts(path, *args, **kwargs):
        if path.name == "s2_a.wav":
            raise abort
        return decode(path, *args, **kwargs)

    monkeypatch.setattr(resample, "FileSource", second_file_aborts)
    assert cli.main(["resample", str(source), str(target), "--rate", "8000"]) == code
    assert [p.name for p in (tmp_path / "out").iterdir()] == (["dst"] if given_empty else [])
    assert not given_empty or not any(target.iterdir())
    monkeypatch.undo()
    assert cli.main(["resample", str(source), str(target), "--rate", "8000"]) == 0
    assert sorted(p.name for p in target.rglob("*")) == ["angry", "s1_a.wav", "s2_a.wav", "speakers.csv"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["dst"]


def test_a_file_that_cannot_be_written_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    """libsndfile's own error (a full disk, say) used to end as an internal error, exit 1."""
    from ser_train import resample

    def full(*args, **kwargs):
        raise sf.LibsndfileError(0, "Error writing: ")

    source, target = small_corpus(tmp_path / "src"), tmp_path / "dst"
    monkeypatch.setattr(resample.sf, "write", full)
    assert cli.main(["resample", str(source), str(target), "--rate", "8000"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"ser-train: error: cannot write {target / 'angry'}/s") and not target.exists()


def test_a_card_flags_input_narrower_than_its_training_audio(tiny_model):
    card = Scorer(tiny_model).card
    assert card.trained_on_rate_hz == 16000
    assert card.narrower_input(16000) is None and card.narrower_input(48000) is None
    assert "nothing above 4000 Hz" in card.narrower_input(8000)


def test_evaluate_warns_when_the_corpus_is_narrower_than_the_model(tmp_path, tiny_model, capsys):
    cli.main(["resample", str(small_corpus(tmp_path / "src")), str(tmp_path / "dst"), "--rate", "8000"])
    capsys.readouterr()
    assert cli.main(["evaluate", "--model", str(tiny_model), "--corpus", "folder", "--data", str(tmp_path / "dst")]) == 0
    assert "recorded at 8000 Hz" in " ".join(capsys.readouterr().err.split())


def tones(rate: int, seconds: float = 1.0, hz: tuple[float, ...] = (1000.0, 6000.0)) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.2 * sum(np.sin(2 * np.pi * f * t) for f in hz)).astype(np.float32)


def band_power(x: np.ndarray, rate: int, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum())


def test_a_narrowband_model_hears_wider_audio_through_its_own_rate(tmp_path):
    from realtime.sources import FileSource, Resampler

    same = np.arange(8, dtype=np.float32)
    assert Resampler(16000, 16000)(same) is same and not Resampler(16000, 16000).band_limited   # no stage at all
    assert not Resampler(8000, 16000, band_rate=8000).band_limited       # already narrow: the path of training
    path = tmp_path / "wide.wav"
    sf.write(path, tones(16000), 16000)
    for block in (1600, 4096):
        source = FileSource(path, 16000, block=block, speed=0, band_rate=8000)
        heard = np.concatenate([chunk.samples for chunk in source])
        assert abs(len(heard) - 16000) <= 1 and "heard through 8000 Hz" in source.describe()
        kept, removed = band_power(heard, 16000, 900, 1100), band_power(heard, 16000, 4200, 8000)
        assert removed < 1e-6 * kept
    plain = np.concatenate([chunk.samples for chunk in FileSource(path, 16000, speed=0)])
    assert band_power(plain, 16000, 5900, 6100) > 0.5 * band_power(plain, 16000, 900, 1100)


def test_only_a_card_trained_on_narrower_audio_asks_for_a_band(tiny_model, tmp_path):
    import json
    import shutil

    assert Scorer(tiny_model).card.band_rate_hz is None
    narrow = tmp_path / "narrow.onnx"
    shutil.copy(tiny_model, narrow)
    card = json.loads(tiny_model.with_suffix(".json").read_text())
    narrow.with_suffix(".json").write_text(json.dumps({**card, "trained_on_rate_hz": 8000}))
    loaded = Scorer(narrow).card
    assert loaded.band_rate_hz == 8000 and loaded.narrower_input(8000) is None
    assert "ser-ravdess-phone" not in loaded.narrower_input(4000)   # already a telephone-rate model


def test_resample_keeps_the_band_below_the_new_nyquist(tmp_path):
    from ser_train.resample import resample_corpus
    src = tmp_path / "src" / "angry"; src.mkdir(parents=True)
    t = np.arange(44100) / 44100
    sf.write(src / "s1_a.wav", 0.5 * np.sin(2 * np.pi * 3000 * t), 44100)
    resample_corpus(tmp_path / "src", tmp_path / "dst", 8000)
    out, rate = sf.read(tmp_path / "dst" / "angry" / "s1_a.wav")
    assert rate == 8000 and abs(np.sqrt(np.mean(out[800:-800] ** 2)) - 0.5 / np.sqrt(2)) < 0.01
