"""Bad input through the real CLI: one clean `ser: error: PATH: ...` line and exit 2, or valid
output wherever the audio is valid; never a traceback. (A missing path and a directory are
covered in test_cli.py; model faults at the CLI level are at the end.)"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from benchmarks.fuzz_replay import Outcome, replay_outcome
from realtime import cli, sources
from tests.conftest import copy_model, edit_card

RATE = 16000
EXCERPT_S = (8.0, 21.0)       # three utterances of the demo recording
RETRAIN = "retrain it with `ser-train fit` or pass a matching --model"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    audio, _ = sf.read(cli.demo_path(), dtype="float32", start=int(EXCERPT_S[0] * RATE), stop=int(EXCERPT_S[1] * RATE))
    return audio


@pytest.fixture(scope="module")
def reference(speech: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    found = replay_segments(write(tmp_path_factory.mktemp("ref") / "speech.wav", speech))
    assert len(found) == 3, found   # the excerpt's three utterances: equal to none would prove nothing
    return found


def write(path: Path, audio: np.ndarray, rate: int = RATE, subtype: str = "FLOAT") -> Path:
    sf.write(path, audio, rate, subtype=subtype)
    return path


def replay(path: Path, *extra: str) -> tuple[Outcome, list[dict]]:
    """Replay in-process; return the outcome and the JSONL events written."""
    outcome = replay_outcome(path, *extra)
    jsonl = path.with_name(path.name + ".jsonl")
    events = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
    return outcome, events


def replay_segments(path: Path) -> list[dict]:
    outcome, events = replay(path)
    assert outcome.kind == "output", outcome.detail
    return [{k: e[k] for k in ("start_s", "end_s", "emotion")} for e in events if e["type"] == "segment"]


def assert_error(path: Path, needle: str) -> tuple[str, list[dict]]:
    """Check for one clean error line naming ``path``; return it and the events written before it."""
    outcome, events = replay(path)
    assert outcome.kind == "error" and needle in outcome.detail, outcome.detail
    return outcome.detail, events


def wav_bytes(tmp_path: Path, audio: np.ndarray) -> bytes:
    return write(tmp_path / "source.wav", audio, subtype="PCM_16").read_bytes()


# --- files that are not audio: one clean line, exit 2 ----------------------------------------------

def test_permission_denied(tmp_path, speech, monkeypatch):
    path = write(tmp_path / "locked.wav", speech)
    if os.geteuid() == 0:  # root reads mode-000 files, so deny the check the way the kernel would
        real_access = os.access
        monkeypatch.setattr(sources.os, "access", lambda p, mode: False if Path(p) == path else real_access(p, mode))
    else:
        path.chmod(0)
    assert_error(path, "permission denied")


def test_fifo_is_not_a_regular_file(tmp_path):
    path = tmp_path / "pipe.wav"
    os.mkfifo(path)
    assert_error(path, "not a regular file")


@pytest.mark.parametrize("name,content,needle", [
    ("empty.wav", b"", "file is empty"),
    ("text.wav", b"this is not audio\n" * 50, "not a readable audio file"),
    ("image.wav", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "not a readable audio file"),
])
def test_non_audio_files(tmp_path, name, content, needle):
    path = tmp_path / name
    path.write_bytes(content)
    line, _ = assert_error(path, needle)
    assert line.count(str(path)) == 1, line   # libsndfile's own "Error opening b'PATH'" is left out


def test_truncated_header(tmp_path, speech):
    path = tmp_path / "header.wav"
    path.write_bytes(wav_bytes(tmp_path, speech)[:30])
    assert_error(path, "not a readable audio file")


def test_header_without_frames(tmp_path, speech):
    path = tmp_path / "no_frames.wav"
    path.write_bytes(wav_bytes(tmp_path, speech[:0]))
    assert_error(path, "no audio frames")


def test_unsupported_codec(tmp_path, speech):
    data = bytearray(wav_bytes(tmp_path, speech))
    data[20:22] = struct.pack("<H", 0x0161)  # WMA in a WAV container
    path = tmp_path / "wma.wav"
    path.write_bytes(bytes(data))
    assert_error(path, "not a readable audio file")


@pytest.mark.parametrize("rate", [1, 100, 10 ** 9])
def test_absurd_header_rate(tmp_path, speech, rate):
    data = bytearray(wav_bytes(tmp_path, speech))
    data[24:28] = struct.pack("<I", rate)  # resampling 1 Hz to 16 kHz would take minutes and gigabytes
    path = tmp_path / "rate.wav"
    path.write_bytes(bytes(data))
    assert_error(path, "unsupported sample rate")


def test_truncated_flac_body_keeps_what_was_decoded(tmp_path, speech):
    data = write(tmp_path / "speech.flac", speech, subtype="PCM_16").read_bytes()
    path = tmp_path / "cut.flac"
    path.write_bytes(data[:len(data) * 2 // 3])
    message, events = assert_error(path, "decoding failed after")
    decoded_s = float(re.search(r"after ([0-9.]+) s", message).group(1))
    assert events[-1]["type"] == "stats" and events[-1]["end_s"] == pytest.approx(decoded_s, abs=0.05)
    assert [e["emotion"] for e in events if e["type"] == "segment"][:1] == ["angry"]
    # every frame up to the fault arrives, not only the whole 64k-frame reads before it, and unchanged
    delivered = []
    with pytest.raises(sources.SourceError):
        delivered.extend(chunk.samples for chunk in sources.FileSource(path, RATE, speed=0))
    delivered = np.concatenate(delivered)
    assert len(delivered) >= decodable_frames(path, 4096) > sources.READ_FRAMES
    np.testing.assert_allclose(delivered, speech[:len(delivered)], atol=1 / 32768)


def decodable_frames(path: Path, frames: int) -> int:
    """How many frames of a damaged file decode when read ``frames`` at a time."""
    count = 0
    with sf.SoundFile(path) as handle:
        try:
            while len(block := handle.read(frames)) == frames:
                count += frames
            count += len(block)
        except sf.LibsndfileError:
            pass
    return count


# --- valid audio in any shape: valid output ---------------------------------------------------------

def test_truncated_wav_body_replays_what_is_there(tmp_path, speech, reference, caplog):
    path = tmp_path / "cut.wav"
    data = wav_bytes(tmp_path, speech)
    path.write_bytes(data[:44 + 2 * int(9.0 * RATE)])
    segments = replay_segments(path)
    assert segments == reference[:2]
    assert "cut.wav: the file holds 9.0 s, less than its header declares (truncated?)" in caplog.text


@pytest.mark.parametrize("name,cut,warned", [("whole.wav", None, False), ("cut.aiff", 0.5, True),
                                             ("unknown-length.wav", "placeholder", False)])
def test_a_file_shorter_than_its_header_is_warned_of(tmp_path, speech, caplog, name, cut, warned):
    """libsndfile plays a WAV or AIFF cut short as if whole; a recorder that could not know the length
    (writing to a pipe) leaves the largest length in the header, which is no cut."""
    path = write(tmp_path / name, speech[:RATE], subtype="PCM_16")
    data = bytearray(path.read_bytes())
    if cut == "placeholder":
        at = data.index(b"data") + 4
        data[at:at + 4] = data[4:8] = b"\xff\xff\xff\xff"
    elif cut:
        data = data[:int(len(data) * cut)]
    path.write_bytes(bytes(data))
    assert replay(path)[0].kind == "output"
    assert ("less than its header declares" in caplog.text) == warned, caplog.text


def test_a_file_name_that_is_not_utf8_plays(tmp_path, speech, reference):
    path = write(tmp_path / "speech.wav", speech).rename(tmp_path / os.fsdecode(b"caf\xe9.wav"))  # Latin-1
    assert replay_segments(path) == reference


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_sample_formats_give_identical_segments(tmp_path, speech, reference, subtype):
    assert replay_segments(write(tmp_path / f"{subtype}.wav", speech, subtype=subtype)) == reference


def test_8_bit_gives_the_same_windows_roughly(tmp_path, speech, reference):
    segments = replay_segments(write(tmp_path / "u8.wav", speech, subtype="PCM_U8"))
    assert len(segments) == len(reference)  # 48 dB of quantisation noise moves edges and labels, not windows
    for got, ref in zip(segments, reference):
        assert got["start_s"] < ref["end_s"] and ref["start_s"] < got["end_s"]


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 32000, 44100, 48000, 96000])
def test_sample_rates_are_resampled(tmp_path, speech, reference, rate):
    audio = soxr.resample(speech, RATE, rate) if rate != RATE else speech
    segments = replay_segments(write(tmp_path / f"r{rate}.wav", audio, rate))
    assert [s["start_s"] for s in segments] == pytest.approx([r["start_s"] for r in reference], abs=0.05)
    if rate > RATE:  # nothing lost below 8 kHz, so the same labels
        assert [s["emotion"] for s in segments] == [r["emotion"] for r in reference]


@pytest.mark.parametrize("channels", [2, 6])
def test_channels_are_downmixed(tmp_path, speech, reference, channels):
    path = write(tmp_path / f"ch{channels}.wav", np.column_stack([speech] * channels))
    assert replay_segments(path) == reference


@pytest.mark.parametrize("name,audio", [
    ("silence", np.zeros(5 * RATE, dtype=np.float32)),
    ("short", np.full(100, 0.1, dtype=np.float32)),  # shorter than one 20 ms hop
])
def test_no_speech_gives_no_windows(tmp_path, name, audio):
    outcome, events = replay(write(tmp_path / f"{name}.wav", audio))
    assert outcome.kind == "output", outcome.detail
    assert [e["type"] for e in events] == ["stats"] and events[0]["end_s"] == round(len(audio) / RATE, 3)


@pytest.mark.parametrize("peak_dbfs,hint", [
    (-54, "no speech found: the input peaked at -54 dBFS, and speech under -40 dBFS often goes undetected"),
    (None, "no speech found: the input is silent"),
    (-20, None),         # found: no hint
])
def test_the_summary_says_why_no_speech_was_found(tmp_path, speech, capsys, peak_dbfs, hint):
    audio = np.zeros_like(speech) if peak_dbfs is None else speech / np.abs(speech).max() * 10 ** (peak_dbfs / 20)
    assert cli.main(["replay", str(write(tmp_path / "level.wav", audio)), "--speed", "0", "--headless"]) == 0
    summary = capsys.readouterr().err
    if hint:
        assert "0 segments" in summary and hint in summary, summary
    else:
        assert "0 segments" not in summary and "no speech found" not in summary, summary


def test_clipping_is_counted(tmp_path, speech, reference, capsys):
    path = write(tmp_path / "clipped.wav", np.clip(speech * 20, -1, 1))
    outcome, events = replay(path)
    assert outcome.kind == "output", outcome.detail
    assert events[-1]["clipped_blocks"] > 10
    assert cli.main(["replay", str(path), "--speed", "0", "--headless"]) == 0
    assert f"clipped blocks {events[-1]['clipped_blocks']}" in capsys.readouterr().err   # and in the summary
    assert len([e for e in events if e["type"] == "segment"]) == len(reference)


def test_nan_and_inf_are_zeroed_and_counted(tmp_path, speech, reference):
    audio = np.column_stack((speech, speech))
    audio[RATE // 2:RATE // 2 + 300, 0] = np.nan  # in the leading pause, so the speech is intact
    audio[RATE // 2 + 300, 1] = np.inf
    audio[RATE // 2 + 301, 1] = -np.inf
    outcome, events = replay(write(tmp_path / "nan.wav", audio))
    assert outcome.kind == "output", outcome.detail
    assert events[-1]["nonfinite_samples"] == 302
    assert [e["emotion"] for e in events if e["type"] == "segment"] == [r["emotion"] for r in reference]


def test_dc_offset_does_not_hide_speech(tmp_path, speech, reference):
    assert len(replay_segments(write(tmp_path / "dc.wav", speech + 0.3))) == len(reference)


# --- model faults at the CLI: one line that says what to do, exit 2 ---------------------------------

@pytest.mark.parametrize("damage", ["missing_onnx", "corrupt_onnx", "missing_card", "mismatched_card",
                                    "wrong_label_count", "older_feature_spec"])
def test_model_faults_are_one_line(tiny_model, tmp_path, capsys, speech, damage):
    model = copy_model(tiny_model, tmp_path)
    card = json.loads(model.with_suffix(".json").read_text())
    if damage == "missing_onnx":
        model.unlink()
    elif damage == "corrupt_onnx":
        model.write_bytes(model.read_bytes()[:200])
    elif damage == "missing_card":
        model.with_suffix(".json").unlink()
    elif damage == "mismatched_card":
        edit_card(model, feature_spec_hash="0123456789abcdef")
    elif damage == "wrong_label_count":
        edit_card(model, labels=card["labels"][:5])
    else:
        edit_card(model, feature_spec={**card["feature_spec"], "version": 0})
    clip = write(tmp_path / "speech.wav", speech)
    assert cli.main(["replay", str(clip), "--speed", "0", "--headless", "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ser: error: model") and RETRAIN in err, err
    assert ("could not be loaded" in err) == (damage == "corrupt_onnx")   # not taken for another model's graph


def test_a_model_name_that_is_not_shipped_lists_the_shipped_ones(tmp_path, capsys, speech, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip = write(tmp_path / "speech.wav", speech)
    assert cli.main(["replay", str(clip), "--speed", "0", "--headless", "--model", "ser-ravdes"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no shipped model named ser-ravdes (shipped: ser-ravdess, ser-ravdess-8k," in err


def test_card_that_is_not_a_json_object(tiny_model, tmp_path, capsys, speech):
    model = copy_model(tiny_model, tmp_path)
    model.with_suffix(".json").write_text("[]")
    clip = write(tmp_path / "speech.wav", speech)
    assert cli.main(["replay", str(clip), "--speed", "0", "--headless", "--model", str(model)]) == 2
    assert RETRAIN in capsys.readouterr().err


def test_downmix_is_the_mean_of_the_channels():
    from realtime.sources import SourceStats, to_mono_float
    block = np.array([[1.0, 0.0, 0.5], [0.2, 0.4, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(to_mono_float(block, SourceStats()), [0.5, 0.2], rtol=1e-6)
