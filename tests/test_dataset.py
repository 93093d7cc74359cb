import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from realtime.features import DEFAULT_SPEC
from ser_train.corpora import Clip
from ser_train.dataset import at_level, extract, worker_context
from tests.conftest import bursts


def test_at_level_scales_and_clips_at_full_scale():
    x = np.array([0.05, -0.2, 0.6], dtype=np.float32)
    assert at_level(x, 0.0) is x
    np.testing.assert_allclose(at_level(x, -20.0), x / 10, rtol=1e-6)
    np.testing.assert_allclose(at_level(x, 20.0), [0.5, -1.0, 1.0], rtol=1e-6)
    assert at_level(x, 20.0).dtype == np.float32


def test_extract_plays_each_copy_at_its_level_and_caches_levels_apart(tmp_path: Path):
    path = tmp_path / "a.wav"
    sf.write(path, bursts(total_s=2.0, spans=((0.4, 1.6, "noise"),)), 16000)
    clip = Clip(path, "angry", "s1", None, "folder")
    level = lambda gain: lambda c, factor: gain  # noqa: E731
    cache = tmp_path / "cache"
    plain, quieter = (extract([clip], DEFAULT_SPEC, cache_dir=cache, workers=1, gain_db=level(g))[0] for g in (0, -12))
    assert (plain.gain_db, quieter.gain_db) == (0.0, -12.0)
    energy = DEFAULT_SPEC.names.index("energy_db_p50")   # a frame inside the burst
    assert abs(plain.vectors[0, energy] - quieter.vectors[0, energy] - 12.0) < 0.01   # 12 dB quieter, not a cache hit
    assert len(list(cache.rglob("*.npz"))) == 2
    again = extract([clip], DEFAULT_SPEC, cache_dir=cache, workers=1, gain_db=level(-12))[0]
    np.testing.assert_array_equal(again.vectors, quieter.vectors)

def test_extraction_workers_start_from_a_fork_server_not_a_fork_of_the_threaded_parent():
    """The progress bar's thread runs while the pool starts, and a fork would copy the locks it holds."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("this platform has no fork server: its workers spawn")
    assert worker_context().get_start_method() == "forkserver"


def test_a_vad_that_hears_silence_caches_apart_and_the_default_keeps_its_old_keys(tmp_path: Path):
    from ser_train.dataset import _cache_key, _windowing
    from realtime.vad import VadConfig

    path = tmp_path / "a.wav"
    sf.write(path, bursts(total_s=1.0, spans=((0.2, 0.8, "noise"),)), 16000)
    key = lambda vad: _cache_key(path, DEFAULT_SPEC, vad, 1.0, 0.0, None, None, None)  # noqa: E731
    assert key(VadConfig()) != key(VadConfig(webrtc_hears_silence=True))
    assert "webrtc_hears_silence" not in _windowing(VadConfig())          # as keyed before the setting existed
    assert _windowing(VadConfig(webrtc_hears_silence=True))["webrtc_hears_silence"] is True


def test_voice_copies_are_their_own_sessions_and_a_clips_windows_stay_in_order():
    from ser_train.corpora import Clip
    from ser_train.dataset import ClipWindows
    from ser_train.sessions import speaker_orders, window_table
    clips = [ClipWindows(Clip(Path(f"{i}.wav"), "angry", "s1", None, "folder"), np.zeros((3, 4)) + i, np.ones(3),
                         tuple(np.zeros((2, 2)) for _ in range(3)), factor=f) for i, f in enumerate((1.0, 1.0, 0.9, 0.9))]
    table = window_table(clips, ("angry",))
    assert sorted(set(table.session.tolist())) == ["s1@0.9", "s1@1"]
    for order in speaker_orders(table, seed=5):
        for c in np.unique(table.clip[order]):
            rows = order[table.clip[order] == c]
            assert rows.tolist() == sorted(rows.tolist())


def test_an_unreadable_clip_is_warned_about_once_and_kept_with_no_windows(tmp_path: Path, caplog):
    """Not once per voice copy (27 lines for 3 files), and the reason names the file once."""
    path = tmp_path / "junk.wav"
    path.write_bytes(b"RIFF" + bytes(range(200)))
    clip = Clip(path, "angry", "s1", None, "folder")
    with caplog.at_level("WARNING", logger="ser_train.dataset"):
        results = extract([clip], DEFAULT_SPEC, factors=(1.0, 0.9, 1.1), cache_dir=None, workers=1)
    assert [len(r.durations_s) for r in results] == [0, 0, 0]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and warnings[0].startswith(f"skipped {path}: ") and warnings[0].count(str(path)) == 1


def test_a_label_without_windows_stops_the_emotion_table_but_not_the_gender_copies_table():
    from ser_train.dataset import ClipWindows
    from ser_train.sessions import window_table

    heard = ClipWindows(Clip(Path("a.wav"), "angry", "s1", None, "folder"), np.zeros((2, 4)), np.ones(2),
                        tuple(np.zeros((2, 2)) for _ in range(2)))
    silent = ClipWindows(Clip(Path("b.wav"), "sad", "s1", None, "folder"), np.zeros((0, 4)), np.zeros(0), ())
    with pytest.raises(ValueError, match="no clip labelled sad holds speech"):
        window_table([heard, silent], ("angry", "sad"))
    assert len(window_table([heard, silent], ("angry", "sad"), every_label=False).label) == 2   # gender-only copies
