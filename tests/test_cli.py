import builtins
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from realtime import cli
from realtime.threads import THREAD_VARS


def run_ser(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "realtime.cli", *args], capture_output=True, text=True, timeout=300)


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_demo_headless_prints_a_scored_segment_per_utterance():
    result = run_ser("demo", "--headless", "--jsonl", "-", "--speed", "0")
    assert result.returncode == 0, result.stderr
    events = records(result.stdout)
    segments = [e for e in events if e["type"] == "segment"]
    assert len(segments) == 8  # eight utterances in the bundled recording
    for event in segments:
        assert event["schema"] == 1 and event["end_s"] > event["start_s"]
        assert event["emotion"] in event["emotion_probs"] and len(event["emotion_probs"]) == 8
        assert abs(sum(event["emotion_probs"].values()) - 1) < 1e-3
        assert event["gender"] in ("female", "male") and set(event["gender_probs"]) == {"female", "male"}
        assert event["latency_ms"] >= 0
    assert events[-1]["type"] == "stats" and events[-1]["dropped_blocks"] == 0
    assert events[-1]["behind_s"] is None and events[-1]["max_behind_s"] is None   # a file has no device to lag
    assert {"speech_start", "partial"} <= {e["type"] for e in events}
    assert "summary:" in result.stderr and "Traceback" not in result.stderr


def segment_events(path, chunk: int, model) -> list[dict]:
    assert cli.main(["replay", str(path), "--speed", "0", "--chunk", str(chunk), "--headless",
                     "--jsonl", str(path.with_suffix(f".{chunk}.jsonl")), "--model", str(model)]) == 0
    events = records(path.with_suffix(f".{chunk}.jsonl").read_text())
    return [{k: v for k, v in e.items() if k != "latency_ms"} for e in events if e["type"] == "segment"]


def test_replay_is_identical_for_every_chunk_size(burst_file, tiny_model):
    reference = segment_events(burst_file, 160, tiny_model)
    assert len(reference) == 3
    for chunk in (512, 1000, 4096, 10**7):      # the last is the whole file in one block
        assert segment_events(burst_file, chunk, tiny_model) == reference


def test_replay_reads_other_rates_and_channels(tmp_path, tiny_model):
    import numpy as np
    import soundfile as sf

    from tests.conftest import bursts

    mono = bursts(rate=44100, spans=((1.0, 2.5, "noise"),))
    path = tmp_path / "stereo.flac"
    sf.write(path, np.column_stack((mono, mono)), 44100)
    result = run_ser("replay", str(path), "--speed", "0", "--headless", "--jsonl", "-", "--model", str(tiny_model))
    assert result.returncode == 0, result.stderr
    (segment,) = [e for e in records(result.stdout) if e["type"] == "segment"]
    assert abs(segment["end_s"] - 2.5) < 0.05


def test_missing_portaudio_is_one_clear_line(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_portaudio(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    for argv in (["devices"], ["live", "--headless"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "libportaudio2" in err


@pytest.mark.parametrize("argv,needle", [(["replay", "/no/such/file.wav"], "no such file"),
                                         (["replay", "."], "directory"),
                                         (["replay", "{burst_file}", "--speed", "-1"], "--speed must be 0 (as fast "
                                                                                       "as possible) or at least 0.01, "
                                                                                       "got -1"),
                                         (["demo", "--speed", "1e-11"], "--speed must be 0 (as fast as possible) or "
                                                                        "at least 0.01, got 1e-11")])
def test_bad_input_is_one_line_and_nonzero(argv, needle, capsys, burst_file):
    argv = [str(burst_file) if a == "{burst_file}" else a for a in argv]   # a real file: only the speed is wrong
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ser: error:") and "\n" not in err
    assert needle in err


def test_replay_never_imports_the_microphone_stack():
    code = ("import sys; from realtime import cli; cli.main(['demo','--headless','--speed','0']); "
            "print('sounddevice' in sys.modules, 'sklearn' in sys.modules, 'librosa' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "False False False"


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_stop_signal_ends_a_run_with_the_summary(tmp_path, signame):
    import signal
    import time

    out = tmp_path / "events.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "realtime.cli", "demo", "--headless", "--jsonl", str(out)],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out.exists() and out.read_text().count("\n") >= 1) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "summary:" in err
    assert records(out.read_text())[-1]["type"] == "stats"


def test_a_reader_that_leaves_ends_the_run_with_the_summary():
    """`ser ... --jsonl - | head -1`: the run ends once stdout's reader has gone, and still prints its summary."""
    proc = subprocess.Popen([sys.executable, "-m", "realtime.cli", "demo", "--headless", "--speed", "0", "--jsonl", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert json.loads(proc.stdout.readline())["type"] == "speech_start"
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0
    assert err.startswith("summary: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("stderr", ["closed", "read-only"])
def test_a_run_without_a_writable_stderr_succeeds_and_keeps_stdout_clean(tmp_path, stderr):
    """`ser ... 2>&-`, or a wrapper script left on descriptor 2: the summary is discarded, not an exit 1
    (it used to fail on printing it), and never written into the events on stdout."""
    if stderr == "closed":
        options = {"preexec_fn": lambda: os.close(2)}
    else:
        (tmp_path / "wrapper").write_text("#!/bin/sh\n")
        options = {"stderr": (tmp_path / "wrapper").open("rb")}
    result = subprocess.run([sys.executable, "-m", "realtime.cli", "demo", "--headless", "--speed", "0", "--jsonl", "-"],
                            stdout=subprocess.PIPE, text=True, timeout=300, **options)
    assert result.returncode == 0
    events = records(result.stdout)
    assert events[-1]["type"] == "stats" and sum(e["type"] == "segment" for e in events) == 8


def test_a_stop_request_cuts_a_paced_replays_wait_short(burst_file, monkeypatch):
    """At --speed 0.01 the first 100 ms block is due 10 s after the start; a stop request hands it over at once."""
    import threading
    from types import SimpleNamespace

    from realtime import sources
    from realtime.cli import StopRequest

    class Hurry(threading.Event):
        """The source's pacing wait, recorded: what it was asked to wait and whether the stop ended it."""

        def __init__(self) -> None:
            super().__init__()
            self.entered, self.waits = threading.Event(), []

        def wait(self, timeout: float | None = None) -> bool:
            self.entered.set()
            cut_short = super().wait(timeout)
            self.waits.append((timeout, cut_short))
            return cut_short

    monkeypatch.setattr(sources, "time", SimpleNamespace(monotonic=lambda: 100.0))   # a frozen clock
    source = sources.FileSource(burst_file, 16000, speed=0.01)
    hurry = Hurry()
    monkeypatch.setattr(source, "_hurry", hurry)
    stop = StopRequest()
    stop.watch(source)
    # ask to stop once the source is inside its wait (no sleep: the request waits for the wait to begin)
    threading.Thread(target=lambda: hurry.entered.wait(60) and stop.request(), daemon=True).start()
    first = next(iter(source))
    assert len(first.samples) == 1600
    assert hurry.waits == [(pytest.approx(10.0), True)]   # due in 10 s, the wait was ended by the stop request


class StoppableSource:
    def __init__(self) -> None:
        self.stopped = 0

    def stop(self) -> None:
        self.stopped += 1


def test_stop_request_raises_nothing_until_a_second_ctrl_c():
    """The first signal only asks the run to stop: an exception at an arbitrary point can leave a lock held."""
    import signal

    from realtime.cli import StopRequest

    before = {s: signal.getsignal(s) for s in StopRequest.SIGNALS}
    source = StoppableSource()
    with StopRequest() as stop:
        stop.watch(source)
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested() and source.stopped == 2
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert {s: signal.getsignal(s) for s in StopRequest.SIGNALS} == before


SIGTERM_AT = {   # a script that sends SIGTERM to its own `ser demo` at one moment outside the streaming loop
    "start-up": "real = cli.Scorer\n"
                "def patched(*a, **k):\n    os.kill(os.getpid(), signal.SIGTERM)\n    return real(*a, **k)\n"
                "cli.Scorer = patched\n",
    "closing": "real = sinks.JsonlSink.close\n"
               "def patched(self):\n    os.kill(os.getpid(), signal.SIGTERM)\n    real(self)\n"
               "sinks.JsonlSink.close = patched\n",
}


@pytest.mark.parametrize("moment,code,last_line", [("start-up", 130, "ser: interrupted"), ("closing", 0, "summary: ")])
def test_sigterm_before_or_after_streaming_ends_in_order(tmp_path, moment, code, last_line):
    """A SIGTERM while the model loads stops before streaming (130); one while the run closes still gets
    its summary. Neither kills the process outright."""
    script = ("import os, signal, sys\nfrom realtime import cli, sinks\n" + SIGTERM_AT[moment] +
              f"sys.exit(cli.main(['demo', '--headless', '--speed', '0', '--jsonl', {str(tmp_path / 'e.jsonl')!r}]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == code and done.stderr.splitlines()[-1].startswith(last_line), done.stderr
    assert "Traceback" not in done.stderr


def test_ser_defaults_blas_to_one_thread_but_keeps_the_users_choice():
    """A multi-threaded BLAS spins idle workers after every small product (see realtime.threads)."""
    probe = ("import os, realtime.cli, threadpoolctl; "
             "print(os.environ['OPENBLAS_NUM_THREADS'], os.environ['OMP_NUM_THREADS'], "
             "max(p['num_threads'] for p in threadpoolctl.threadpool_info()))")
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["1", "1", "1"]
    env["OMP_NUM_THREADS"] = "2"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split()[:2] == ["1", "2"]


def test_replay_warns_when_the_file_is_narrower_than_the_models_training_audio(tmp_path, tiny_model):
    import soundfile as sf

    from tests.conftest import bursts

    for rate, warned in ((8000, True), (16000, False)):
        path = tmp_path / f"call{rate}.wav"
        sf.write(path, bursts(rate=rate, spans=((1.0, 2.5, "noise"),)), rate)
        result = run_ser("replay", str(path), "--speed", "0", "--headless", "--model", str(tiny_model))
        assert result.returncode == 0, result.stderr
        assert ("recorded at 8000 Hz" in result.stderr) == warned


COMMON_KEYS = {"schema", "type", "start_s", "end_s", "emotion", "emotion_probs", "gender", "gender_probs",
               "latency_ms", "smoothed_emotion", "adapted_windows"}


def test_every_event_has_the_common_keys(burst_file, tiny_model):
    result = run_ser("replay", str(burst_file), "--speed", "0", "--headless", "--jsonl", "-", "--model", str(tiny_model))
    events = records(result.stdout)
    assert {"speech_start", "partial", "segment", "stats"} <= {e["type"] for e in events}
    for event in events:
        assert COMMON_KEYS <= set(event), event["type"]
    starts, segments = ([e for e in events if e["type"] == kind] for kind in ("speech_start", "segment"))
    assert [e["adapted_windows"] for e in starts] == [0, 1, 2]     # windows seen when each one began
    assert events[-1]["adapted_windows"] == segments[-1]["adapted_windows"] == 3


@pytest.mark.parametrize("target", ["audio", "model", "card"])
def test_jsonl_never_overwrites_an_input(burst_file, tiny_model, capsys, target):
    path = {"audio": burst_file, "model": tiny_model, "card": tiny_model.with_suffix(".json")}[target]
    before = path.read_bytes()
    code = cli.main(["replay", str(burst_file), "--speed", "0", "--headless", "--model", str(tiny_model),
                     "--jsonl", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ser: error: --jsonl") and "would overwrite" in err and err.count("\n") == 1
    assert path.read_bytes() == before


@pytest.mark.parametrize("flag", ["--jsonl", "--model"])
def test_an_empty_path_is_one_line(burst_file, capsys, flag):
    assert cli.main(["replay", str(burst_file), "--speed", "0", "--headless", flag, ""]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ser: error: {flag}") and err.count("\n") == 1


def test_an_empty_audio_path_is_a_usage_error_not_the_current_folder(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["replay", ""])
    assert stop.value.code == 2 and "argument path: give the path of an audio file" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, whose writes fail as a full disk's do")
def test_a_jsonl_write_that_fails_names_the_file(burst_file, tiny_model, capsys):
    code = cli.main(["replay", str(burst_file), "--speed", "0", "--headless", "--model", str(tiny_model),
                     "--jsonl", "/dev/full"])
    assert (code, capsys.readouterr().err) == (2, "ser: error: /dev/full: cannot write JSONL (No space left on device)\n")


def test_closed_stdin_or_stdout(burst_file, tiny_model, monkeypatch, capsys):
    argv = ["replay", str(burst_file), "--speed", "0", "--model", str(tiny_model)]
    monkeypatch.setattr(sys, "stdin", None)        # the dashboard runs without its key reader
    assert cli.main(argv) == 0
    assert "summary:" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdout", None)
    assert cli.main([*argv, "--headless", "--jsonl", "-"]) == 2
    assert "standard output is closed" in capsys.readouterr().err
