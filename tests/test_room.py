from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from realtime.features import DEFAULT_SPEC
from realtime.pipeline import Pipeline
from realtime.scorer import Scorer
from realtime.sources import FileSource
from ser_train import cli
from ser_train.corpora import Clip
from ser_train.dataset import at_level, extract, played
from ser_train.evaluate import clip_probs, evaluate
from ser_train.fit import REVERB_COPY_RT60_S, FitConfig, session_room
from ser_train.noise import Noise, Room
from ser_train.report import figures_headline
from tests.conftest import bursts

RATE = 16000


def test_room_response_is_seeded_unit_energy_direct_sound_first_then_a_60_db_decay():
    room = Room(0.4, seed=3)
    response = room.impulse_response(RATE)
    delay = int(Room.PRE_DELAY_S * RATE)
    assert np.sum(response ** 2) == pytest.approx(1.0) and response[0] ** 2 == pytest.approx(0.5)  # DRR 0 dB
    assert not response[1:delay].any() and len(response) == delay + int(0.4 * RATE)
    tail = response[delay:]
    edge = len(tail) // 20                       # windows centred 2.5 % and 97.5 % into the RT60
    decay_db = 10 * np.log10(np.mean(tail[:edge] ** 2) / np.mean(tail[-edge:] ** 2))
    assert 54 < decay_db < 60                    # 95 % of 60 dB, give or take the noise's own spread
    np.testing.assert_array_equal(response, Room(0.4, seed=3).impulse_response(RATE))
    assert not np.array_equal(response, Room(0.4, seed=4).impulse_response(RATE))


def test_played_hears_the_room_before_the_level_and_the_noise(tmp_path: Path):
    path = tmp_path / "a.wav"
    sf.write(path, bursts(total_s=1.05, spans=((0.2, 0.8, "speechlike"),)), RATE)
    source = lambda: FileSource(path, RATE, block=1600, speed=0)  # noqa: E731
    clean = np.concatenate(list(played(source(), 0.0, None, 1600)))
    room, noise = Room(0.3, seed=1), Noise(snr_db=10.0, exponent=1.0, reference_rms=0.05, seed=2)
    heard = room.apply(clean, RATE)
    assert heard.dtype == np.float32 and len(heard) == len(clean) and not np.allclose(heard, clean / np.sqrt(2))
    blocks = list(played(source(), 6.0, noise, 1000, room))
    assert [len(b) for b in blocks] == [1000] * 16 + [800]
    np.testing.assert_array_equal(np.concatenate(blocks), noise.mix(at_level(heard, 6.0), 6.0))


def test_evaluate_plays_each_clip_in_its_room_and_records_it(tmp_path: Path, tiny_model, clip_conditions):
    root = tmp_path / "corpus" / "angry"
    root.mkdir(parents=True)
    sf.write(root / "s1_a.wav", bursts(total_s=3.0, spans=((0.4, 2.4, "speechlike"),)), RATE)
    clips = [Clip(root / "s1_a.wav", "angry", "s1", None, "folder")]
    scorer = Scorer(tiny_model)
    report = evaluate(scorer, clips, adapt=False, progress=False, reverb_s=0.6)
    assert report["reverb_s"] == 0.6 and report["n"] == 1 and report["no_speech"] == 0
    assert "room RT60 0.6 s" in figures_headline(report)
    dry, wet = (clip_probs(Pipeline(scorer), clips[0].path, room=room) for room in (None, Room(0.6, seed=0)))
    assert np.abs(dry[0] - wet[0]).max() > 1e-3      # the echo reaches the scores
    near = evaluate(scorer, clips, adapt=False, progress=False, reverb_s=0.6, drr_db=12.0)
    assert near["drr_db"] == 12.0 and report["drr_db"] == 0.0
    assert "room RT60 0.6 s, DRR +12 dB" in figures_headline(near)
    assert [(c["room"].rt60_s, c["room"].drr_db) for c in clip_conditions] == [(0.6, 0.0), (0.6, 12.0)]
    closer = clip_probs(Pipeline(scorer), clips[0].path, room=Room(0.6, seed=0, drr_db=12.0))
    assert np.abs(dry[0] - closer[0]).max() < np.abs(dry[0] - wet[0]).max()   # a closer microphone hears less echo


@pytest.mark.parametrize("value", ["nan", "0", "-0.5", "10"])
def test_bad_reverb_is_one_line(tmp_path, tiny_model, capsys, value):
    assert cli.main(["evaluate", "--model", str(tiny_model), "--corpus", "folder", "--data", str(tmp_path),
                     f"--reverb-s={value}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--reverb-s must be an RT60 in seconds" in err


@pytest.mark.parametrize("flags, message", [(["--drr-db", "nan"], "--drr-db must be a number of dB"),
                                            (["--reverb-s", "0.3", "--drr-db", "99"], "--drr-db must be a number"),
                                            (["--drr-db", "6"], "give --reverb-s too")])
def test_bad_drr_is_one_line(tmp_path, tiny_model, capsys, flags, message):
    assert cli.main(["evaluate", "--model", str(tiny_model), "--corpus", "folder", "--data", str(tmp_path),
                     *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize("drr_db", [-3.0, 0.0, 12.0])
def test_room_direct_to_reverberant_ratio_sets_the_direct_share(drr_db):
    response = Room(0.3, seed=1, drr_db=drr_db).impulse_response(RATE)
    tail_energy = np.sum(response[1:] ** 2)
    assert np.sum(response ** 2) == pytest.approx(1.0)
    assert 10 * np.log10(response[0] ** 2 / tail_energy) == pytest.approx(drr_db)


def test_a_voice_copy_hears_its_room_at_the_playback_rate(tmp_path: Path):
    """A copy is decoded at factor x the rate and played at the rate: its echo lasts RT60 as heard, not RT60 / factor."""
    path = tmp_path / "a.wav"
    sf.write(path, bursts(total_s=1.0, spans=((0.2, 0.8, "speechlike"),)), RATE)
    source = lambda: FileSource(path, int(RATE * 0.8), block=1600, speed=0)  # noqa: E731
    room = Room(0.5, seed=2)
    dry = np.concatenate(list(played(source(), 0.0, None, 1600)))
    heard = np.concatenate(list(played(source(), 0.0, None, 1600, room, RATE)))
    np.testing.assert_allclose(heard, room.apply(dry, RATE), atol=1e-6)
    assert not np.allclose(heard, room.apply(dry, int(RATE * 0.8)), atol=1e-3)


def test_voice_copies_get_one_room_per_speaker_and_factor_half_of_them_and_real_audio_none():
    fit = FitConfig(copy_rt60_s=REVERB_COPY_RT60_S)
    clip = lambda speaker, name: Clip(Path(name), "angry", speaker, None, "folder")  # noqa: E731
    assert session_room(clip("a", "x.wav"), 1.0, fit) is None
    assert session_room(clip("a", "x.wav"), 0.9, FitConfig()) is None            # off by default
    rooms = [session_room(clip(f"s{i}", "x.wav"), f, fit) for i in range(40) for f in fit.voice_factors]
    drawn = [r for r in rooms if r is not None]
    assert 0.4 < len(drawn) / len(rooms) < 0.6                                   # REVERB_COPY_SHARE of the copies
    assert all(0.2 <= r.rt60_s <= 1.0 and -3.0 <= r.drr_db <= 12.0 for r in drawn)
    assert len({r.seed for r in drawn}) == len(drawn)                            # a room per copy ...
    for i, f in [(i, f) for i in range(40) for f in fit.voice_factors][:16]:
        assert session_room(clip(f"s{i}", "y.wav"), f, fit) == session_room(clip(f"s{i}", "x.wav"), f, fit)  # ... per session


def test_extract_hears_copies_in_their_room_and_caches_them_apart(tmp_path: Path):
    path = tmp_path / "a.wav"
    sf.write(path, bursts(total_s=2.0, spans=((0.4, 1.4, "speechlike"),)), RATE)
    clip = Clip(path, "angry", "s1", None, "folder")
    cache = tmp_path / "cache"
    room = Room(0.8, seed=5)
    dry, wet = (extract([clip], DEFAULT_SPEC, factors=(0.9,), cache_dir=cache, workers=1, room=lambda c, f: r)[0]
                for r in (None, room))
    assert (dry.room, wet.room) == (None, room)
    assert sum(dry.durations_s) < sum(wet.durations_s)    # the echo carries on after the burst
    assert len(list(cache.rglob("*.npz"))) == 2
    again = extract([clip], DEFAULT_SPEC, factors=(0.9,), cache_dir=cache, workers=1, room=lambda c, f: room)[0]
    np.testing.assert_array_equal(again.vectors, wet.vectors)
