"""Tests for ser_train.corpora: file-name parsing of the supported corpora."""
from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_train.corpora import (KINDS, LABELS, Clip, CorpusError, CorpusScan, GuessedSpeakersError, scan_corpus,
                               summarize)

REAL_RAVDESS = Path(__file__).resolve().parents[1].parent / "shared/data/ravdess"


def _touch(root: Path, *names: str) -> None:
    """Create empty files (the loader only reads names) below ``root``."""
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def _by_name(scan: CorpusScan) -> dict[str, Clip]:
    return {clip.path.name: clip for clip in scan.clips}


def _rejected(scan: CorpusScan) -> dict[str, str]:
    return {path.name: reason for path, reason in scan.rejected}


def _check_invariants(scan: CorpusScan, kind: str) -> None:
    assert [c.path for c in scan.clips] == sorted(c.path for c in scan.clips)
    for clip in scan.clips:
        assert clip.label in LABELS
        assert clip.corpus == kind
        assert clip.speaker.startswith(f"{kind}:")
        assert clip.gender in ("female", "male", None)
    for _path, reason in scan.rejected:
        assert reason and "\n" not in reason


# ---------------------------------------------------------------- RAVDESS
def test_ravdess_labels_speakers_genders_and_rejects(tmp_path: Path) -> None:
    good = [f"Actor_{a:02d}/03-01-{e:02d}-01-01-01-{a:02d}.wav"
            for a in (1, 2) for e in range(1, 9)]
    good += ["Actor_12/03-02-05-02-02-02-12.FLAC",  # song channel, upper-case suffix
             "Actor_24/01-01-03-01-01-01-24.Wav"]  # full AV modality
    bad = {"03-01-09-01-01-01-01.wav": "emotion", "03-03-01-01-01-01-01.wav": "vocal channel",
           "04-01-01-01-01-01-01.wav": "modality", "02-01-01-01-01-01-03.wav": "modality",  # 02: video only
           "03-01-01-01-01-01-25.wav": "actor",
           "03-01-01-03-01-01-01.wav": "intensity", "3-1-1-1-1-1-1.wav": "pattern",
           "readme.wav": "pattern"}
    _touch(tmp_path, *good, *bad, "notes.txt", "Actor_01/cover.jpg")
    scan = scan_corpus("ravdess", tmp_path)
    _check_invariants(scan, "ravdess")
    assert len(scan.clips) == len(good)
    clips = _by_name(scan)
    assert clips["03-01-05-01-01-01-01.wav"].label == "angry"
    assert clips["03-01-01-01-01-01-02.wav"] == Clip(tmp_path / "Actor_02/03-01-01-01-01-01-02.wav",
                                                     "neutral", "ravdess:02", "female", "ravdess")
    assert clips["03-01-01-01-01-01-01.wav"].gender == "male"
    assert clips["03-02-05-02-02-02-12.FLAC"].speaker == "ravdess:12"
    assert summarize(scan) == f"ravdess: {len(good)} clips (1 of them sung, RAVDESS vocal channel 02), 4 speakers, 8 rejected"
    assert clips["01-01-03-01-01-01-24.Wav"].label == "happy"
    assert Counter(c.label for c in scan.clips if c.speaker == "ravdess:01") == Counter(LABELS[:8])
    rejected = _rejected(scan)
    assert set(rejected) == set(bad)  # non-audio files are ignored, bad audio never dropped
    for name, word in bad.items():
        assert word in rejected[name], rejected[name]


def test_audio_content_and_rate_are_irrelevant(tmp_path: Path) -> None:
    sf.write(tmp_path / "03-01-04-01-01-01-05.wav", np.zeros(1600), 16000)
    sf.write(tmp_path / "03-01-04-01-01-01-06.flac", np.zeros(4800), 48000)
    (tmp_path / "03-01-04-01-01-01-07.wav").write_bytes(b"not audio at all")
    scan = scan_corpus("ravdess", str(tmp_path))
    assert [c.label for c in scan.clips] == ["sad"] * 3
    assert not scan.rejected


def test_ravdess_one_take_twice_is_a_second_copy(tmp_path: Path) -> None:
    _touch(tmp_path, "Actor_01/03-01-05-01-01-01-01.wav", "flac/03-01-05-01-01-01-01.flac",   # the same take
           "Actor_01/01-01-05-01-01-01-01.wav",     # its audio taken from the audio-video file, sorted first
           "Actor_02/03-01-05-01-01-01-02.wav")     # another actor's take of the same line
    scan = scan_corpus("ravdess", tmp_path)
    assert [c.path.name for c in scan.clips] == ["03-01-05-01-01-01-01.wav", "03-01-05-01-01-01-02.wav"]
    assert _rejected(scan) == {name: f"a second copy of {tmp_path / 'Actor_01/03-01-05-01-01-01-01.wav'}"
                               for name in ("01-01-05-01-01-01-01.wav", "03-01-05-01-01-01-01.flac")}


# ---------------------------------------------------------------- TESS
def test_tess(tmp_path: Path) -> None:
    _touch(tmp_path, "OAF_angry/OAF_back_angry.wav", "YAF_dog_ps.wav", "oaf_lot_fear.wav",
           "YAF_bite_pleasant_surprise.wav", "YAF_bite_pleasant_surprised.wav",
           "OAF_hall_Neutral.WAV",
           "YAF_rain_disgust.flac", "YAF_rain_happy.wav", "OAF_rain_sad.wav",
           "XAF_back_angry.wav", "OAF_back_bored.wav", "OAF_back.wav")
    scan = scan_corpus("tess", tmp_path)
    _check_invariants(scan, "tess")
    clips = _by_name(scan)
    assert {n: c.label for n, c in clips.items()} == {
        "OAF_back_angry.wav": "angry", "YAF_dog_ps.wav": "surprised", "oaf_lot_fear.wav": "fearful",
        "YAF_bite_pleasant_surprise.wav": "surprised",
        "YAF_bite_pleasant_surprised.wav": "surprised",
        "OAF_hall_Neutral.WAV": "neutral", "YAF_rain_disgust.flac": "disgust",
        "YAF_rain_happy.wav": "happy", "OAF_rain_sad.wav": "sad"}
    assert clips["oaf_lot_fear.wav"].speaker == "tess:OAF"
    assert {c.speaker for c in scan.clips} == {"tess:OAF", "tess:YAF"}
    assert {c.gender for c in scan.clips} == {"female"}
    rejected = _rejected(scan)
    assert set(rejected) == {"XAF_back_angry.wav", "OAF_back_bored.wav", "OAF_back.wav"}
    assert "speaker" in rejected["XAF_back_angry.wav"]
    assert "emotion" in rejected["OAF_back_bored.wav"]


# ---------------------------------------------------------------- EMO-DB
def test_emodb(tmp_path: Path) -> None:
    expected = {"03a01Fa.wav": ("happy", "emodb:03", "male"),
                "08b02Wb.wav": ("angry", "emodb:08", "female"),
                "13a05Lc.wav": ("boredom", "emodb:13", "female"),
                "14a07Eb.wav": ("disgust", "emodb:14", "female"),
                "10a02Ac.wav": ("fearful", "emodb:10", "male"),
                "16b03Tb.wav": ("sad", "emodb:16", "female"),
                "11a01Nc.wav": ("neutral", "emodb:11", "male"),
                "12B10Fa.wav": ("happy", "emodb:12", "male")}
    _touch(tmp_path, *(f"wav/{n}" for n in expected), "wav/03a01Xa.wav", "wav/3a01Fa.wav", "wav/20a01Fa.wav",
           "wav/03x01Na.wav")
    scan = scan_corpus("emodb", tmp_path)
    _check_invariants(scan, "emodb")
    assert {n: (c.label, c.speaker, c.gender) for n, c in _by_name(scan).items()} == expected
    rejected = _rejected(scan)
    assert set(rejected) == {"03a01Xa.wav", "3a01Fa.wav", "20a01Fa.wav", "03x01Na.wav"}
    assert "emotion" in rejected["03a01Xa.wav"]
    assert "unknown EMO-DB speaker '20'" in rejected["20a01Fa.wav"]      # EMO-DB has ten speakers
    assert "unknown EMO-DB text code 'x01'" in rejected["03x01Na.wav"]    # and ten texts


# ---------------------------------------------------------------- CREMA-D
CREMAD_GOOD = ("1001_DFA_ANG_XX.wav", "1002_IEO_HAP_HI.wav", "1003_TIE_NEU_X.wav",
               "1001_ITS_DIS_LO.wav", "1002_IWW_SAD_MD.wav", "1091_ITS_FEA_LO.wav")
CREMAD_BAD = ("1001_DFA_BOR_XX.wav", "1001_DFA_ANG_ZZ.wav", "101_DFA_ANG_XX.wav")
DEMOGRAPHICS = "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n" \
               "1002,21,Female,Caucasian,Not Hispanic\n1003,21,Female,Caucasian,Not Hispanic\n"


def test_cremad_with_demographics_found_under_root(tmp_path: Path) -> None:
    _touch(tmp_path, *(f"AudioWAV/{n}" for n in CREMAD_GOOD + CREMAD_BAD))
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/VideoDemographics.csv").write_text(DEMOGRAPHICS)
    scan = scan_corpus("cremad", tmp_path)
    _check_invariants(scan, "cremad")
    clips = _by_name(scan)
    assert [clips[n].label for n in CREMAD_GOOD] == [
        "angry", "happy", "neutral", "disgust", "sad", "fearful"]
    assert clips["1001_DFA_ANG_XX.wav"].speaker == "cremad:1001"
    assert clips["1001_DFA_ANG_XX.wav"].gender == "male"
    assert clips["1002_IEO_HAP_HI.wav"].gender == "female"
    assert clips["1091_ITS_FEA_LO.wav"].gender is None  # actor missing from the CSV
    assert summarize(scan) == f"cremad: {len(CREMAD_GOOD)} clips, 4 speakers (1 of unknown gender), 3 rejected"
    rejected = _rejected(scan)
    assert set(rejected) == set(CREMAD_BAD)
    assert "emotion" in rejected["1001_DFA_BOR_XX.wav"]
    assert "level" in rejected["1001_DFA_ANG_ZZ.wav"]


def test_cremad_without_demographics_and_with_explicit_csv(tmp_path: Path) -> None:
    _touch(tmp_path / "corpus", *CREMAD_GOOD)
    assert {c.gender for c in scan_corpus("cremad", tmp_path / "corpus").clips} == {None}
    (tmp_path / "demo.csv").write_text(DEMOGRAPHICS)
    clips = _by_name(scan_corpus("cremad", tmp_path / "corpus", speakers_csv=tmp_path / "demo.csv"))
    assert clips["1003_TIE_NEU_X.wav"].gender == "female"
    (tmp_path / "bad.csv").write_text("Actor,Gender\n1001,Male\n")
    with pytest.raises(CorpusError, match="ActorID|actorid"):
        scan_corpus("cremad", tmp_path / "corpus", speakers_csv=tmp_path / "bad.csv")


# ---------------------------------------------------------------- SAVEE
def test_savee(tmp_path: Path) -> None:
    _touch(tmp_path, "AudioData/DC_a01.wav", "AudioData/JE_sa03.wav", "AudioData/JK_su10.wav",
           "AudioData/KL_n05.wav", "JE/h02.wav", "KL/d01.wav", "kl/f02.wav",
           "AudioData/XX_a01.wav", "AudioData/DC_z01.wav", "loose/a01.wav")
    scan = scan_corpus("savee", tmp_path)
    _check_invariants(scan, "savee")
    assert {(c.path.name, c.label, c.speaker) for c in scan.clips} == {
        ("DC_a01.wav", "angry", "savee:DC"), ("JE_sa03.wav", "sad", "savee:JE"),
        ("JK_su10.wav", "surprised", "savee:JK"), ("KL_n05.wav", "neutral", "savee:KL"),
        ("h02.wav", "happy", "savee:JE"), ("d01.wav", "disgust", "savee:KL"),
        ("f02.wav", "fearful", "savee:KL")}
    assert {c.gender for c in scan.clips} == {"male"}
    rejected = _rejected(scan)
    assert set(rejected) == {"XX_a01.wav", "DC_z01.wav", "a01.wav"}
    assert "speaker" in rejected["XX_a01.wav"] and "emotion" in rejected["DC_z01.wav"]
    assert "folder" in rejected["a01.wav"]


def test_savee_speaker_folders_share_file_names(tmp_path: Path) -> None:
    """SAVEE ships as AudioData/<speaker>/a01.wav: the same names in every speaker's folder."""
    _touch(tmp_path, *(f"AudioData/{s}/{n}.wav" for s in ("DC", "JE", "JK", "KL") for n in ("a01", "sa01")),
           "flat/DC_a01.wav")
    scan = scan_corpus("savee", tmp_path)
    assert Counter(c.speaker for c in scan.clips) == {f"savee:{s}": 2 for s in ("DC", "JE", "JK", "KL")}
    assert _rejected(scan) == {"DC_a01.wav": f"a second copy of {tmp_path / 'AudioData/DC/a01.wav'}"}


# ---------------------------------------------------------------- folder
FOLDER_FILES = ("angry/spk1_a.wav", "anger/spk2-b.wav", "Happiness/spk1_c.flac", "sadness/x.wav",
                "fear/spk3_d.wav", "surprise/spk3_e.wav", "disgusted/spk2_f.wav",
                "bored/spk1_g.wav",
                "neutral/spk4_h.wav", "calm/sub/spk4_i.WAV")


def test_folder_without_csv(tmp_path: Path) -> None:
    _touch(tmp_path, *FOLDER_FILES, "excited/spk1_z.wav", "loose.wav", "angry/readme.md")
    scan = scan_corpus("folder", tmp_path)
    _check_invariants(scan, "folder")
    clips = _by_name(scan)
    assert [clips[Path(f).name].label for f in FOLDER_FILES] == [
        "angry", "angry", "happy", "sad", "fearful", "surprised", "disgust", "boredom",
        "neutral", "calm"]
    assert clips["spk2-b.wav"].speaker == "folder:spk2" and clips["x.wav"].speaker == "folder:x"
    assert {c.gender for c in scan.clips} == {None}
    rejected = _rejected(scan)
    assert set(rejected) == {"spk1_z.wav", "loose.wav"}
    assert "excited" in rejected["spk1_z.wav"]


def test_folder_with_speakers_csv(tmp_path: Path) -> None:
    _touch(tmp_path / "data", *FOLDER_FILES)
    (tmp_path / "speakers.csv").write_text(
        "file,speaker,gender\nangry/spk1_a.wav,alice,f\nanger/spk2-b.wav,bob,Male\n"
        "x.wav,carol,female\ncalm/sub/spk4_i.WAV,dave,\nspk3_d.wav,erin,F\n")
    scan = scan_corpus("folder", tmp_path / "data", speakers_csv=tmp_path / "speakers.csv")
    clips = _by_name(scan)
    assert {n: (c.speaker, c.gender) for n, c in clips.items()} == {
        "spk1_a.wav": ("folder:alice", "female"), "spk2-b.wav": ("folder:bob", "male"),
        "x.wav": ("folder:carol", "female"), "spk4_i.WAV": ("folder:dave", None),
        "spk3_d.wav": ("folder:erin", "female")}
    assert len(scan.rejected) == len(FOLDER_FILES) - 5  # unlisted files are rejected, not guessed
    assert all("speakers CSV" in reason for _p, reason in scan.rejected)


@pytest.mark.parametrize("text, match", [("file,gender\nx.wav,f\n", "speaker"),
                                         ("file,speaker,gender\nx.wav,carol,robot\n", ":2:")])
def test_folder_bad_speakers_csv(tmp_path: Path, text: str, match: str) -> None:
    _touch(tmp_path / "data", "sad/x.wav")
    (tmp_path / "speakers.csv").write_text(text)
    with pytest.raises(CorpusError, match=match):
        scan_corpus("folder", tmp_path / "data", speakers_csv=tmp_path / "speakers.csv")


def test_folder_finds_its_speakers_csv_at_the_root(tmp_path: Path) -> None:
    _touch(tmp_path, "angry/a.wav", "sad/b.wav")
    (tmp_path / "speakers.csv").write_text("file,speaker,gender\nangry/a.wav,alice,f\nsad/b.wav,bob,m\n")
    clips = _by_name(scan_corpus("folder", tmp_path))
    assert {n: (c.speaker, c.gender) for n, c in clips.items()} == {"a.wav": ("folder:alice", "female"),
                                                                    "b.wav": ("folder:bob", "male")}


def test_folder_refuses_speakers_guessed_from_names_that_hold_one_label_each(tmp_path: Path) -> None:
    _touch(tmp_path, "angry/angry_01.wav", "angry/angry_02.wav", "sad/sad_01.wav", "sad/sad_02.wav")
    with pytest.raises(GuessedSpeakersError, match="one label only.*speakers.csv"):
        scan_corpus("folder", tmp_path)
    assert len(scan_corpus("folder", tmp_path, need_speakers=False).clips) == 4   # a cold evaluation groups nothing


@pytest.mark.parametrize("data, match", [("ActorID,Sex\n1001,Mal\xe9\n".encode("latin-1"), "is not UTF-8 text"),
                                         (b"ActorID,Sex\n1001," + b"x" * 200_000, "cannot be read as CSV")])
def test_an_unreadable_csv_is_named(tmp_path: Path, data: bytes, match: str) -> None:
    _touch(tmp_path / "corpus", *CREMAD_GOOD)
    (tmp_path / "demo.csv").write_bytes(data)
    with pytest.raises(CorpusError, match=f"demo.csv {match}"):
        scan_corpus("cremad", tmp_path / "corpus", speakers_csv=tmp_path / "demo.csv")


def test_cremad_actors_of_unknown_sex_are_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _touch(tmp_path / "corpus", *CREMAD_GOOD)
    (tmp_path / "demo.csv").write_text("ActorID,Sex\n1001,Male\n1002,Other\n1003\n")
    clips = _by_name(scan_corpus("cremad", tmp_path / "corpus", speakers_csv=tmp_path / "demo.csv"))
    assert [clips[n].gender for n in ("1001_DFA_ANG_XX.wav", "1002_IEO_HAP_HI.wav", "1003_TIE_NEU_X.wav")] == [
        "male", None, None]
    assert "2 of 3 actors have a Sex other than Male/Female (first: 1002)" in caplog.text


# ---------------------------------------------------------------- links and copies
def test_linked_folders_are_followed_once_and_broken_links_counted(tmp_path: Path) -> None:
    _touch(tmp_path / "elsewhere", "Actor_03/03-01-01-01-01-01-03.wav")
    _touch(tmp_path / "corpus", "Actor_01/03-01-01-01-01-01-01.wav")
    (tmp_path / "corpus/Actor_03").symlink_to(tmp_path / "elsewhere/Actor_03")
    (tmp_path / "corpus/Actor_01/loop").symlink_to(tmp_path / "corpus")                 # a link loop ends
    (tmp_path / "corpus/Actor_01/03-01-02-01-01-01-01.wav").symlink_to(tmp_path / "gone.wav")
    scan = scan_corpus("ravdess", tmp_path / "corpus")
    assert sorted(c.speaker for c in scan.clips) == ["ravdess:01", "ravdess:03"]
    assert _rejected(scan) == {"03-01-02-01-01-01-01.wav": "a link to nothing"}


def test_a_corpus_unpacked_twice_counts_each_clip_once(tmp_path: Path) -> None:
    names = [f"Actor_01/03-01-0{e}-01-01-01-01.wav" for e in (1, 2)]
    _touch(tmp_path, *names, *(f"audio_speech_actors_01-24/{n}" for n in names))   # Kaggle's layout
    scan = scan_corpus("ravdess", tmp_path)
    assert [c.path for c in scan.clips] == [tmp_path / n for n in names]
    assert [reason for _, reason in scan.rejected] == [f"a second copy of {tmp_path / n}" for n in names]


def test_a_corpus_of_another_kind_is_named_by_a_file_that_is_there(tmp_path: Path) -> None:
    _touch(tmp_path, "b/OAF_back_angry.wav", "c/OAF_dog_sad.wav")
    (tmp_path / "a.wav").symlink_to(tmp_path / "gone.wav")
    with pytest.raises(CorpusError, match=r"none of the 3 audio files .* is a ravdess clip \(the first, OAF_back_angry"):
        scan_corpus("ravdess", tmp_path)


# ---------------------------------------------------------------- errors and summary
def test_corpus_errors(tmp_path: Path) -> None:
    _touch(tmp_path, "file.wav", "empty/notes.txt")
    with pytest.raises(CorpusError, match="unknown corpus kind"):
        scan_corpus("iemocap", tmp_path)
    with pytest.raises(CorpusError, match="does not exist"):
        scan_corpus("ravdess", tmp_path / "missing")
    with pytest.raises(CorpusError, match="not a directory"):
        scan_corpus("ravdess", tmp_path / "file.wav")
    with pytest.raises(CorpusError, match="no .wav or .flac"):
        scan_corpus("tess", tmp_path / "empty")
    with pytest.raises(CorpusError, match="speakers_csv"):
        scan_corpus("ravdess", tmp_path, speakers_csv=tmp_path / "x.csv")
    with pytest.raises(CorpusError, match="does not exist"):
        scan_corpus("folder", tmp_path, speakers_csv=tmp_path / "x.csv")
    assert issubclass(CorpusError, ValueError)


def test_summarize_and_frozen(tmp_path: Path) -> None:
    _touch(tmp_path, "03-01-01-01-01-01-01.wav", "03-01-02-01-01-01-02.wav", "bad.wav")
    scan = scan_corpus("ravdess", tmp_path)
    assert summarize(scan) == "ravdess: 2 clips, 2 speakers, 1 rejected"
    with pytest.raises(dataclasses.FrozenInstanceError):
        scan.clips[0].label = "happy"  # type: ignore[misc]
    assert set(KINDS) == {"ravdess", "tess", "emodb", "cremad", "savee", "folder"}


# ---------------------------------------------------------------- real data
@pytest.mark.skipif(not REAL_RAVDESS.is_dir(),
                    reason=f"needs the RAVDESS subset at ../shared/data/ravdess (present in CI, not in a user's "
                           f"clone): {REAL_RAVDESS} is missing")
def test_real_ravdess_subset() -> None:
    scan = scan_corpus("ravdess", REAL_RAVDESS)
    assert summarize(scan) == "ravdess: 1200 clips, 20 speakers, 0 rejected"
    genders = Counter(g for _s, g in {(c.speaker, c.gender) for c in scan.clips})
    assert genders == {"male": 10, "female": 10}
    per_actor = Counter((c.speaker, c.label) for c in scan.clips)
    for speaker in {c.speaker for c in scan.clips}:
        assert per_actor[(speaker, "neutral")] == 4
        assert all(per_actor[(speaker, label)] == 8 for label in LABELS[1:8])


def test_every_emodb_speaker_has_its_documented_gender(tmp_path):
    from ser_train.corpora import scan_corpus
    genders = {"03": "male", "08": "female", "09": "female", "10": "male", "11": "male", "12": "male",
               "13": "female", "14": "female", "15": "male", "16": "female"}
    for s in genders:
        (tmp_path / f"{s}a01Fa.wav").touch()
    assert {c.speaker: c.gender for c in scan_corpus("emodb", tmp_path).clips} == {f"emodb:{s}": g for s, g in genders.items()}


def test_a_second_copy_differing_in_case_is_a_duplicate(tmp_path):
    from ser_train.corpora import scan_corpus
    (tmp_path / "a").mkdir(); (tmp_path / "b").mkdir()
    (tmp_path / "a/03-01-01-01-01-01-01.wav").touch(); (tmp_path / "b/03-01-01-01-01-01-01.WAV").touch()
    scan = scan_corpus("ravdess", tmp_path)
    assert len(scan.clips) == 1 and len(scan.rejected) == 1
