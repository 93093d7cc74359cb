import numpy as np
import pytest

from realtime.vad import FrameVad, VadConfig, Windower
from tests.conftest import bursts

RATE, HOP = 16000, 320


def windows(x: np.ndarray, config: VadConfig, chunk: int = 1600):
    vad, windower = FrameVad(RATE, HOP, config), Windower(RATE, HOP, config)
    events = []
    for i in range(0, len(x), chunk):
        events += windower.push(vad.push(x[i:i + chunk]))
    return events + windower.flush()


def segments(events):
    return [(e.start, e.end) for e in events if e.kind == "segment"]


def test_silence_gives_no_windows():
    assert windows(np.zeros(RATE * 5, dtype=np.float32), VadConfig()) == []
    quiet_noise = (1e-4 * np.random.default_rng(0).standard_normal(RATE * 5)).astype(np.float32)
    assert windows(quiet_noise, VadConfig()) == []


@pytest.mark.parametrize("kind", ["tone", "noise"])
def test_bursts_give_windows_within_one_hop(kind):
    spans = ((1.0, 2.0), (3.0, 4.5))
    x = bursts(total_s=6.0, spans=tuple((a, b, kind) for a, b in spans))
    found = segments(windows(x, VadConfig(preroll_ms=0)))
    assert len(found) == len(spans)
    for (start, end), (a, b) in zip(found, spans):
        assert abs(start - a * RATE) <= HOP and abs(end - b * RATE) <= HOP


def test_preroll_extends_the_start():
    x = bursts(spans=((2.0, 3.0, "noise"),))
    (start, end), = segments(windows(x, VadConfig(preroll_ms=200)))
    assert abs(start - 1.8 * RATE) <= HOP and abs(end - 3.0 * RATE) <= HOP


def test_long_speech_is_split_at_max_window_with_partials():
    x = bursts(total_s=12.0, spans=((1.0, 11.125, "speechlike"),))  # ends on an envelope peak
    config = VadConfig(preroll_ms=0, max_window_s=4.0, update_s=1.0)
    events = windows(x, config)
    found = segments(events)
    assert [e - s for s, e in found[:2]] == [4 * RATE, 4 * RATE]
    assert abs(found[2][1] - 11.125 * RATE) <= HOP
    assert found[0][1] == found[1][0] and found[1][1] == found[2][0]
    partials = [e for e in events if e.kind == "partial"]
    assert len(partials) >= 6
    assert all(p.end - p.start <= 4 * RATE for p in partials)


def test_short_blips_are_dropped():
    x = bursts(spans=((1.0, 1.2, "noise"), (3.0, 4.0, "noise")))
    assert len(segments(windows(x, VadConfig(preroll_ms=0, min_window_s=0.5)))) == 1


def test_pauses_shorter_than_min_silence_keep_one_window():
    x = bursts(spans=((1.0, 2.0, "noise"), (2.2, 3.0, "noise")))
    assert len(segments(windows(x, VadConfig(preroll_ms=0, min_silence_ms=300)))) == 1
    assert len(segments(windows(x, VadConfig(preroll_ms=0, min_silence_ms=100)))) == 2


@pytest.mark.parametrize("chunk", [1, 160, 333, 4096])
def test_windows_do_not_depend_on_chunk_size(chunk):
    x = bursts(spans=((0.5, 1.7, "noise"), (2.5, 3.5, "tone"), (4.2, 5.4, "noise")))
    assert windows(x, VadConfig(), chunk) == windows(x, VadConfig(), len(x))


def test_bad_config_is_rejected():
    with pytest.raises(ValueError):
        VadConfig(min_window_s=5, max_window_s=2)
    with pytest.raises(ValueError):
        FrameVad(44100, 441)


def test_sliding_min_matches_the_naive_minimum():
    from realtime.vad import sliding_min

    rng = np.random.default_rng(0)
    for n, width in ((10, 1), (10, 10), (40, 7), (300, 250), (1000, 3)):
        x = rng.standard_normal(n)
        naive = np.array([x[i:i + width].min() for i in range(n - width + 1)])
        np.testing.assert_array_equal(sliding_min(x, width), naive)


def test_a_reset_detector_hears_a_new_stream_as_a_fresh_one_would():
    """webrtcvad adapts to what it hears; after reset() an earlier stream must leave no trace."""
    loud = bursts(total_s=6.0, spans=((0.5, 5.5, "speechlike"),))
    quiet = 0.05 * bursts(total_s=3.0, spans=((0.5, 2.5, "speechlike"),))
    fresh = FrameVad(RATE, HOP).push(quiet)
    vad = FrameVad(RATE, HOP)
    vad.push(loud)
    vad.reset()
    np.testing.assert_array_equal(vad.push(quiet), fresh)
    assert fresh.any()


def test_a_vad_whose_webrtcvad_hears_silence_keeps_quiet_speech_and_still_obeys_the_gate():
    import soundfile as sf

    from realtime.cli import demo_path

    speech, rate = sf.read(str(demo_path()), dtype="float32")
    quiet = speech * np.float32(10 ** (-30 / 20))   # the bundled demo, 30 dB quieter
    flags = {}
    for hears in (False, True):
        vad = FrameVad(rate, HOP, VadConfig(webrtc_hears_silence=hears))
        flags[hears] = vad.push(quiet)
    gate = FrameVad(rate, HOP, VadConfig())
    gate._vad = type("Always", (), {"is_speech": lambda self, frame, rate: True})()   # the energy gate alone
    passed = gate.push(quiet)
    assert flags[True].sum() > flags[False].sum()                    # measured: 380 speech frames against 323
    assert not (flags[True] & ~passed).any()                         # never speech where the gate says no
    config = VadConfig(webrtc_hears_silence=True)
    assert len(segments(windows(quiet, config))) > len(segments(windows(quiet, VadConfig())))   # 7 against 5


def run_windower(decisions, config):
    w = Windower(RATE, HOP, config)
    return w.push(np.asarray(decisions, bool)) + w.flush()


def test_preroll_never_reaches_into_the_previous_window():
    config = VadConfig(preroll_ms=200, min_silence_ms=100, min_window_s=0.5)
    d = [0] * 50 + [1] * 50 + [0] * 8 + [1] * 50 + [0] * 50       # gap of 160 ms < pre-roll
    segs = [(e.start, e.end) for e in run_windower(d, config) if e.kind == "segment"]
    assert len(segs) == 2 and segs[1][0] == segs[0][1] == 100 * HOP


def test_partials_come_every_update_s():
    config = VadConfig(preroll_ms=0, update_s=1.0, max_window_s=8.0, min_window_s=0.5)
    d = [1] * 250 + [0] * 50                                      # 5 s of speech
    partials = [e for e in run_windower(d, config) if e.kind == "partial"]
    assert [p.end for p in partials] == [k * RATE for k in (1, 2, 3, 4, 5)]


def test_a_pause_of_exactly_min_silence_splits():
    config = VadConfig(preroll_ms=0, min_silence_ms=300, min_window_s=0.5)
    d = [1] * 50 + [0] * 15 + [1] * 50 + [0] * 20                 # 15 frames = 300 ms
    assert sum(e.kind == "segment" for e in run_windower(d, config)) == 2
