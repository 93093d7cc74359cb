"""Live faults with a fake sounddevice module whose InputStream we control: no device, no match,
a device that cannot open or vanishes mid-stream, overflow flags, and a consumer slower than
the device. (Missing PortAudio is covered in test_cli.py.)"""

from __future__ import annotations

import itertools
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import soxr

from realtime import cli, mic
from realtime.mic import QUEUE_BLOCKS, MicSource
from realtime.monitor import Monitor
from realtime.pipeline import Pipeline
from realtime.runner import run
from realtime.scorer import DEFAULT_MODEL, Scorer
from realtime.sources import SourceStats

RATE, BLOCK = 16000, 1600
MIC = {"name": "Fake USB Mic", "max_input_channels": 1, "max_output_channels": 0, "default_samplerate": 48000.0}
SPEAKER = {"name": "Fake HDMI", "max_input_channels": 0, "max_output_channels": 2, "default_samplerate": 48000.0}


class PortAudioError(Exception):
    pass


class Flags:
    """Like sounddevice.CallbackFlags: falsy unless a flag is set."""

    def __init__(self, input_overflow: bool) -> None:
        self.input_overflow = input_overflow

    def __bool__(self) -> bool:
        return self.input_overflow


@dataclass
class Plan:
    """What the fake device does once started.

    ``blocks`` are delivered at ``start()`` (a consumer busy for the whole burst) or from a
    thread as fast as it can (``threaded``); then the device ``vanish``es (goes inactive),
    ``stall``s (active, silent), raises an ``error`` when polled, or fails at ``start_error``.
    With ``late``, the callback runs once more (the last block again) while the consumer first asks
    whether the delivered stream is active, as PortAudio's thread can while that call releases the GIL.
    ``captured`` gives each block's capture time (of ``blocks``, then ``backlog``; None: the device gives
    none); ``handed_over``, the device clock's time when the callback gets each block (None: not given).
    The ``backlog``, audio the host held when a stop came, arrives from a thread once the stream's
    clock is read, and that clock then stands in the middle of its last block.
    """

    blocks: list[np.ndarray]
    overflow_every: int = 0
    then: str = "vanish"
    threaded: bool = False
    rates: tuple[int, ...] = (RATE,)
    late: bool = False
    delivered: int = 0
    ended_by: str = ""
    captured: list[float] | None = None
    handed_over: list[float] | None = None
    backlog: list[np.ndarray] = field(default_factory=list)


def fake_sounddevice(devices: list[dict], plan: Plan | None = None, default_input: int | None = None) -> ModuleType:
    """``default_input``: the index PortAudio reports as the default input (None: the first input device)."""
    sd = ModuleType("sounddevice")
    sd.PortAudioError = PortAudioError
    sd.default = SimpleNamespace(device=[-1, -1])   # as in sounddevice: -1 leaves the choice to PortAudio
    inputs = [i for i, d in enumerate(devices) if d["max_input_channels"] > 0]

    def query_devices(device: int | None = None, kind: str | None = None):
        if kind is None:
            return list(devices)
        chosen = default_input if default_input is not None else (inputs or [None])[0]
        if chosen is None:
            raise PortAudioError("No input device available")
        return {**devices[chosen], "index": chosen}

    sd.query_devices = query_devices

    class InputStream:
        def __init__(self, *, device, samplerate, channels, dtype, blocksize, callback) -> None:
            if plan is None or samplerate not in plan.rates:
                raise PortAudioError(f"Invalid sample rate [PaErrorCode -9997] ({samplerate})")
            self.callback, self._active = callback, False

        def _deliver(self) -> None:
            for i, block in enumerate(plan.blocks):
                overflow = plan.overflow_every > 0 and i % plan.overflow_every == 0
                self._call(i, block, Flags(overflow))
            self._active = plan.then == "stall"

        def _call(self, i: int, block: np.ndarray, flags: Flags) -> None:
            times = None if plan.captured is None else SimpleNamespace(inputBufferAdcTime=plan.captured[i])
            if plan.handed_over is not None:
                times.currentTime = plan.handed_over[i]
            self.callback(block[:, None].copy(), len(block), times, flags)
            plan.delivered += 1

        def _deliver_backlog(self) -> None:
            for i, block in enumerate(plan.backlog, start=len(plan.blocks)):
                time.sleep(0.005)
                if not self._active:   # aborted: the callback runs no more
                    return
                self._call(i, block, Flags(False))

        @property
        def time(self) -> float:
            if plan.backlog:
                threading.Thread(target=self._deliver_backlog, daemon=True).start()
            return plan.captured[-1] + 0.05

        def start(self) -> None:
            if plan.then == "start_error":
                raise PortAudioError("Device unavailable [PaErrorCode -9985]")
            self._active = True
            if plan.threaded:
                threading.Thread(target=self._deliver, daemon=True).start()
            else:
                self._deliver()

        @property
        def active(self) -> bool:
            if plan.late and plan.delivered == len(plan.blocks):
                self.callback(plan.blocks[-1][:, None].copy(), len(plan.blocks[-1]), None, Flags(False))
                plan.delivered += 1
            if plan.then == "error" and plan.delivered >= len(plan.blocks):
                raise PortAudioError("Unanticipated host error [PaErrorCode -9999]: 'device disconnected'")
            return self._active

        def stop(self, ignore_errors: bool = False) -> None:   # waits for a device that went silent: for good
            raise AssertionError("stop() hangs on a silent device; ser never calls it")

        def abort(self, ignore_errors: bool = False) -> None:
            self._active, plan.ended_by = False, "abort"

        def close(self, ignore_errors: bool = False) -> None:
            self._active = False

    sd.InputStream = InputStream
    return sd


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """Ten seconds of the demo holding two utterances (angry, then sad)."""
    audio, _ = sf.read(cli.demo_path(), dtype="float32", start=8 * RATE, stop=18 * RATE)
    return audio


def blocks_of(audio: np.ndarray, block: int = BLOCK) -> list[np.ndarray]:
    return [audio[i:i + block] for i in range(0, len(audio) - block + 1, block)]


def install(monkeypatch: pytest.MonkeyPatch, devices: list[dict], plan: Plan | None = None,
            default_input: int | None = None) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(devices, plan, default_input))


def live(tmp_path: Path, capsys: pytest.CaptureFixture, *extra: str) -> tuple[int, list[dict], str]:
    """Run `ser live --headless`; return the exit code, the JSONL events and stderr."""
    jsonl = tmp_path / "live.jsonl"
    code = cli.main(["live", "--headless", "--jsonl", str(jsonl), *extra])
    events = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
    return code, events, capsys.readouterr().err


def listen(block: int = BLOCK, should_stop=lambda: False,
           on_record=lambda record: None) -> tuple[MicSource, Monitor, list[dict], bool]:
    """Run the installed fake device through the default model, in-process; return the source, the monitor,
    the records written (each also passed to ``on_record`` as it is written) and whether the run was
    interrupted."""
    scorer = Scorer(DEFAULT_MODEL)
    source = MicSource(None, RATE, block=block)
    monitor = Monitor(source.describe(), "ser", tuple(scorer.card.labels), tuple(scorer.card.gender_labels), RATE)
    records: list[dict] = []

    def write(record: dict) -> None:
        records.append(record)
        on_record(record)

    interrupted = run(source, Pipeline(scorer), [SimpleNamespace(write=write, close=lambda: None)], monitor,
                      should_stop=should_stop)
    return source, monitor, records, interrupted


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_no_input_device(monkeypatch, tmp_path, capsys):
    install(monkeypatch, [SPEAKER])
    code, _, err = live(tmp_path, capsys)
    assert code == 2 and "no audio input device found" in one_line(err)
    assert cli.main(["devices"]) == 1
    assert "no audio input devices found" in one_line(capsys.readouterr().err)


def test_device_name_that_matches_nothing(monkeypatch, tmp_path, capsys):
    install(monkeypatch, [SPEAKER, MIC])
    code, _, err = live(tmp_path, capsys, "--device", "bluetooth")
    assert code == 2 and "no input device matches 'bluetooth'; available: 1: Fake USB Mic" in one_line(err)


@pytest.mark.parametrize("spec", ["0", "hdmi"])
def test_an_output_device_is_named_as_one(monkeypatch, tmp_path, capsys, spec):
    """It used to get the same answer as a name that matches nothing."""
    install(monkeypatch, [SPEAKER, MIC])
    code, _, err = live(tmp_path, capsys, "--device", spec)
    assert code == 2
    assert f"'{spec}' is an output device with no input channels (0: Fake HDMI); inputs: 1: Fake USB Mic" in one_line(err)


@pytest.mark.parametrize("spec,needle", [("fake", "'fake' matches 2 input devices (1: Fake USB Mic, 2: Fake Built-in "
                                                  "Mic); give the index or more of the name"),
                                          ("", "--device is empty"), ("usb", None), ("2", None)])
def test_a_device_name_must_pick_one_device(monkeypatch, tmp_path, capsys, spec, needle):
    install(monkeypatch, [SPEAKER, MIC, {**MIC, "name": "Fake Built-in Mic"}])
    if needle is None:
        assert MicSource(spec, RATE).device.index == {"usb": 1, "2": 2}[spec]
        return
    code, _, err = live(tmp_path, capsys, "--device", spec)
    assert code == 2 and needle in one_line(err)


def test_device_that_cannot_be_opened(monkeypatch, tmp_path, capsys):
    install(monkeypatch, [MIC], plan=None)
    code, _, err = live(tmp_path, capsys, "--device", "usb")
    assert code == 2 and "cannot open input device 'Fake USB Mic'" in one_line(err)


@pytest.mark.parametrize("late", [False, True])
@pytest.mark.parametrize("then,reason", [("vanish", "stopped delivering audio"), ("stall", "stopped delivering audio"),
                                         ("error", "device disconnected")])
def test_device_vanishing_mid_stream_ends_with_the_summary(monkeypatch, tmp_path, capsys, speech, then, reason, late):
    """``late``: a block the callback delivers while the device is found gone is still scored."""
    monkeypatch.setattr(mic, "STALL_TIMEOUTS", 3)
    plan = Plan(blocks_of(speech), then=then, late=late)
    install(monkeypatch, [MIC], plan)
    code, events, err = live(tmp_path, capsys)
    assert code == 1 and "summary:" in err and reason in err and "Traceback" not in err
    assert [e["emotion"] for e in events if e["type"] == "segment"] == ["angry", "sad"]
    assert plan.delivered == len(speech) // BLOCK + late
    assert events[-1]["type"] == "stats" and events[-1]["blocks"] == plan.delivered
    assert events[-1]["dropped_blocks"] == 0 and events[-1]["end_s"] == plan.delivered * BLOCK / RATE
    assert plan.ended_by == "abort"       # a device found gone is not waited for


def test_device_failing_at_start_ends_with_the_summary(monkeypatch, tmp_path, capsys, speech):
    install(monkeypatch, [MIC], Plan(blocks_of(speech), then="start_error"))
    code, events, err = live(tmp_path, capsys)
    assert code == 1 and "input device 'Fake USB Mic' failed: Device unavailable" in err
    assert events[-1]["type"] == "stats" and events[-1]["blocks"] == 0


def test_overflow_flags_reach_stats_and_summary(monkeypatch, tmp_path, capsys, speech):
    install(monkeypatch, [MIC], Plan(blocks_of(speech), overflow_every=10))
    code, events, err = live(tmp_path, capsys)
    assert code == 1 and "overflows 10" in err  # 1: the fake device stops when its plan ends
    assert events[-1]["overflows"] == 10 and events[-1]["dropped_blocks"] == 0


def test_overflow_flags_reach_the_dashboard_snapshot(monkeypatch, speech):
    install(monkeypatch, [MIC], Plan(blocks_of(speech), overflow_every=25))
    source, monitor, records, _ = listen()
    assert monitor.snapshot(source.stats).overflows == 4 and records[-1]["overflows"] == 4


def test_burst_beyond_the_queue_is_dropped_and_counted(monkeypatch, tmp_path, capsys, speech):
    burst = blocks_of(np.tile(speech, 8))  # 800 blocks while the consumer is busy
    install(monkeypatch, [MIC], Plan(burst))
    code, events, err = live(tmp_path, capsys)
    dropped = len(burst) - QUEUE_BLOCKS
    assert code == 1 and f"dropped blocks {dropped}" in err  # 1: the fake device stops when its plan ends
    assert events[-1]["dropped_blocks"] == dropped and events[-1]["blocks"] == QUEUE_BLOCKS
    assert events[-1]["lost_s"] == 20.0 and events[-1]["end_s"] == 80.0   # the lost audio's time still passes
    assert "20.0 s of audio lost" in err


def test_a_full_queue_drops_until_half_is_read_and_the_next_block_carries_the_gap(monkeypatch):
    """Dropping only while full would alternate kept and dropped blocks: audio with many holes."""
    install(monkeypatch, [MIC], Plan([]))
    source, block = MicSource(None, RATE), np.zeros((BLOCK, 1), np.float32)
    for _ in range(QUEUE_BLOCKS + 3):
        source._callback(block, BLOCK, None, Flags(False))
    for _ in range(QUEUE_BLOCKS // 2 - 1):
        source._queue.get_nowait()
    source._callback(block, BLOCK, None, Flags(False))   # one over half is still queued: dropped too
    source._queue.get_nowait()
    source._callback(block, BLOCK, None, Flags(False))
    queued = [source._queue.get_nowait() for _ in range(source._queue.qsize())]
    assert [item.gap for item in queued] == [0] * (len(queued) - 1) + [4 * BLOCK]
    assert len(queued) == QUEUE_BLOCKS // 2 + 1
    assert source.stats.dropped_blocks == 4 and source.stats.lost_s == pytest.approx(0.4)


def segments(records: list[dict]) -> list[tuple[float, float, str]]:
    return [(r["start_s"], r["end_s"], r["emotion"]) for r in records if r["type"] == "segment"]


def test_a_jump_in_the_capture_clock_is_an_overflow_filled_with_silence(monkeypatch, speech):
    """Audio the host lost (PulseAudio's buffer overflowing while the process was stopped) used to vanish
    uncounted, and every later time came early by as much."""
    blocks = blocks_of(speech)
    install(monkeypatch, [MIC], Plan(blocks, captured=[100 + 0.1 * i for i in range(len(blocks))]))
    _, _, steady, _ = listen()
    jump = [100 + 0.1 * i + (2.0 if i >= 50 else 0.0) for i in range(len(blocks))]   # 2 s lost in the pause
    install(monkeypatch, [MIC], Plan(blocks, captured=jump))
    source, monitor, records, _ = listen()
    (first, second), shifted = segments(steady), segments(records)
    assert shifted == [first, (round(second[0] + 2.0, 3), round(second[1] + 2.0, 3), second[2])]
    assert source.stats.overflows == 1 and source.stats.lost_s == pytest.approx(2.0)
    assert records[-1]["end_s"] == 12.0 and records[-1]["lost_s"] == 2.0


def test_how_far_behind_the_device_counts_the_hosts_delay(monkeypatch, tmp_path, capsys, speech):
    """The host holds 10 s of audio (a stalled process) and hands it over at once: the first block read
    ended 9.9 s before, and later ones less as the reader catches up."""
    blocks = blocks_of(speech)
    captured = [100 + 0.1 * i for i in range(len(blocks))]
    install(monkeypatch, [MIC], Plan(blocks, captured=captured, handed_over=[110.0] * len(blocks)))
    source, monitor, records, _ = listen()
    assert 9.9 <= records[-1]["max_behind_s"] == round(source.stats.max_behind_s, 3) < 10.4
    assert records[-1]["behind_s"] < records[-1]["max_behind_s"] - 5
    assert monitor.snapshot(source.stats).behind_s == source.stats.behind_s
    install(monkeypatch, [MIC], Plan(blocks, captured=captured, handed_over=[110.0] * len(blocks)))
    code, _, err = live(tmp_path, capsys)
    assert code == 1 and re.search(r"up to (9\.9|10\.\d) s behind the device", err)


@pytest.mark.parametrize("captured, handed_over, delay", [
    (100.0, 110.0, 9.9),      # the block's last frame was captured at 100.1 s (4800 frames at 48 kHz)
    (100.0, 100.05, 0.0),     # PortAudio's estimate can put the hand-over inside the block: no delay
    (0.0, 110.0, 0.0),        # a host that gives no capture time
    (100.0, 0.0, 0.0),        # nor the current time
])
def test_the_hosts_delay_is_from_the_blocks_last_frame_at_the_devices_rate(monkeypatch, captured, handed_over, delay):
    install(monkeypatch, [MIC], Plan([]))
    source = MicSource(None, RATE)
    source._rate = 48000
    source._callback(np.zeros((4800, 1), np.float32), 4800,
                     SimpleNamespace(inputBufferAdcTime=captured, currentTime=handed_over), Flags(False))
    assert source._queue.get_nowait().host_delay == pytest.approx(delay, abs=1e-9)


def test_how_far_behind_the_device_counts_the_wait_in_the_queue(monkeypatch, speech):
    """Without capture times, the lag is the wait in our queue: here a sink that takes 0.5 s over the
    first speech, while the device has delivered everything."""
    install(monkeypatch, [MIC], Plan(blocks_of(speech)))
    starts = itertools.count()
    source, _, _, _ = listen(on_record=lambda record: time.sleep(0.5) if (
        record["type"] == "speech_start" and next(starts) == 0) else None)
    assert source.stats.max_behind_s >= 0.5


@pytest.mark.parametrize("max_behind_s, shown", [(None, False), (0.99, False), (1.0, True)])
def test_the_summary_says_how_far_behind_from_a_second(max_behind_s, shown):
    monitor = Monitor("mic", "ser", ("happy", "sad"), (), RATE)
    summary = monitor.summary(SourceStats(behind_s=max_behind_s, max_behind_s=max_behind_s))
    assert ("up to 1.0 s behind the device" in summary) == shown


def test_a_stop_waits_for_the_audio_captured_before_it(monkeypatch, speech):
    """A stop used to abort the stream at once, discarding what the host still held (20 s when the process
    had been stopped), uncounted."""
    blocks = blocks_of(speech)
    plan = Plan(blocks[:30], then="stall", backlog=blocks[30:], captured=[100 + 0.1 * i for i in range(len(blocks))])
    install(monkeypatch, [MIC], plan)
    source, monitor, records, interrupted = listen(should_stop=lambda: True)
    assert interrupted and source.ended_reason is None and plan.ended_by == "abort"
    assert monitor.samples == len(speech) and source.stats.lost_s == 0.0
    assert [r["emotion"] for r in records if r["type"] == "segment"] == ["angry", "sad"]


def test_device_faster_than_the_consumer_loses_nothing_uncounted(monkeypatch, speech):
    plan = Plan(blocks_of(np.tile(speech, 6), block=160), threaded=True)  # 6000 small blocks, flat out
    install(monkeypatch, [MIC], plan)
    source, monitor, _, _ = listen(block=160)
    assert plan.delivered == len(plan.blocks)
    assert source.stats.blocks + source.stats.dropped_blocks == plan.delivered
    assert source.stats.blocks >= QUEUE_BLOCKS
    assert monitor.samples == 160 * plan.delivered and source.stats.lost_s == pytest.approx(source.stats.dropped_blocks / 100)


@pytest.mark.parametrize("rate", [RATE, 48000])
def test_a_stop_request_still_scores_every_block_already_delivered(monkeypatch, speech, rate):
    """All blocks arrive at once, and the run is asked to stop after the first: the rest are still queued."""
    native = speech if rate == RATE else soxr.resample(speech, RATE, rate)
    plan = Plan(blocks_of(native, block=BLOCK * rate // RATE), then="stall", rates=(rate,))
    install(monkeypatch, [MIC], plan)
    source, monitor, records, interrupted = listen(should_stop=lambda: True)
    assert interrupted
    assert source.stats.blocks == len(plan.blocks) and source.ended_reason is None and plan.ended_by == "abort"
    assert abs(monitor.samples - len(speech)) <= 1   # the resampler's tail is handed over too
    assert [r["emotion"] for r in records if r["type"] == "segment"] == ["angry", "sad"]


def test_blocks_a_second_ctrl_c_leaves_unread_are_counted_as_dropped(monkeypatch, speech):
    """A second Ctrl-C (KeyboardInterrupt) abandons the queue: what it held is counted, and the run says why."""
    plan = Plan(blocks_of(speech), then="stall")   # all delivered at start, then the device stays open
    install(monkeypatch, [MIC], plan)
    chunks_seen = itertools.count(1)

    def second_ctrl_c() -> bool:   # asked once per chunk: the third is the last one read
        if next(chunks_seen) == 3:
            raise KeyboardInterrupt
        return False

    source, monitor, records, interrupted = listen(should_stop=second_ctrl_c)
    assert interrupted
    unread = plan.delivered - 3
    assert records[-1]["type"] == "stats" and records[-1]["blocks"] == 3 and records[-1]["dropped_blocks"] == unread
    assert source.ended_reason == f"interrupted with {unread} delivered blocks unread (counted as dropped)"
    assert f"dropped blocks {unread}" in monitor.summary(source.stats, source.ended_reason)


def test_device_at_its_own_rate_is_resampled(monkeypatch, tmp_path, capsys, speech):
    native = soxr.resample(speech, RATE, 48000)
    install(monkeypatch, [MIC], Plan(blocks_of(native, block=4800), rates=(48000,)))
    code, events, err = live(tmp_path, capsys)
    assert code == 1 and "stopped delivering audio" in err  # the fake device stops when its plan ends
    assert [e["emotion"] for e in events if e["type"] == "segment"] == ["angry", "sad"]


def test_without_device_the_system_default_input_is_used(monkeypatch):
    other = {**MIC, "name": "Fake Built-in Mic"}
    install(monkeypatch, [MIC, SPEAKER, other], default_input=2)
    assert MicSource(None, RATE).device.index == 2      # not merely the first input device
    install(monkeypatch, [MIC, SPEAKER, other])
    assert MicSource(None, RATE).device.index == 0


@pytest.mark.parametrize("then", ["vanish", "error"])
def test_the_resampler_tail_is_scored_however_the_device_ends(monkeypatch, speech, then):
    native = soxr.resample(speech, RATE, 48000)
    install(monkeypatch, [MIC], Plan(blocks_of(native, block=4800), then=then, rates=(48000,)))
    source, monitor, _, _ = listen()
    assert source.ended_reason is not None and abs(monitor.samples - len(speech)) <= 1
