"""The benchmark commands refuse bad input before measuring, stop cleanly on Ctrl-C or SIGTERM and write strict JSON."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks import measure, soak
from benchmarks.arguments import float_range, output_file
from realtime.cli import demo_path
from realtime.features import DEFAULT_SPEC
from realtime.scorer import DEFAULT_MODEL, SHIPPED_MODELS, Scorer
from realtime.threads import THREAD_VARS
from tests.conftest import REPO


def start(module: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs)


def run_module(module: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, **kwargs)


@pytest.mark.parametrize("text", ["1e308", "inf", "nan", "0", "-1", "0.5", "61", "abc"])
def test_a_number_out_of_bounds_is_refused_with_the_bounds(text: str):
    with pytest.raises(argparse.ArgumentTypeError, match="a number" if text == "abc" else "from 1 to 60"):
        float_range(1, 60)(text)


def test_bounds_are_inclusive_and_zero_can_be_allowed():
    assert float_range(1, 60)("1") == 1 and float_range(1, 60)("60") == 60
    assert float_range(1, 60, zero=True)("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match="0 or a number from 1 to 60"):
        float_range(1, 60, zero=True)("0.5")


def test_json_output_must_be_writable_and_no_input(tmp_path: Path):
    audio, model, card = tmp_path / "speech.WAV", tmp_path / "m.onnx", tmp_path / "m.json"
    for path in (audio, model, card):
        path.write_bytes(b"input")
    shipped = next(SHIPPED_MODELS.glob("*.onnx"))
    for path, needle in [("/proc/x.json", "cannot write"), (tmp_path / "none" / "x.json", "existing folder"),
                         (tmp_path, "existing folder"), (audio, "overwrite"), (model, "overwrite"),
                         (card, "overwrite"), (shipped, "overwrite"), (SHIPPED_MODELS / "new.json", "overwrite")]:
        with pytest.raises(argparse.ArgumentTypeError, match=needle):
            output_file(str(path))
    assert all(path.read_bytes() == b"input" for path in (audio, model, card))
    existing = tmp_path / "old.json"
    existing.write_text("kept")
    assert output_file(str(existing)) == existing and existing.read_text() == "kept"   # checked, not truncated
    assert output_file(str(tmp_path / "new.json")) == tmp_path / "new.json"
    assert sorted(tmp_path.iterdir()) == sorted([audio, model, card, existing])   # the write test left nothing


def interrupted_after_one_block(source: type) -> type:
    """``source`` whose iteration meets a Ctrl-C after its first block, as `ser`'s runner would see one."""
    class Interrupted(source):
        def __iter__(self):
            for chunk in super().__iter__():
                yield chunk
                raise KeyboardInterrupt
    return Interrupted


def test_a_run_cut_short_by_ctrl_c_stops_the_benchmark(monkeypatch: pytest.MonkeyPatch):
    """The runner catches Ctrl-C for an orderly end; the benchmarks must not report the part that ran."""
    monkeypatch.setattr(measure, "BlockSource", interrupted_after_one_block(measure.BlockSource))
    monkeypatch.setattr(soak, "SpeechStream", interrupted_after_one_block(soak.SpeechStream))
    with pytest.raises(KeyboardInterrupt):
        measure.run_ours(np.zeros(DEFAULT_SPEC.sample_rate, np.float32), Scorer(DEFAULT_MODEL))
    with pytest.raises(KeyboardInterrupt):
        soak.soak(60.0, soak.clip_paths(None), warmup_s=0.0)


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    """Inputs: an empty folder, a text file named .wav, a corpus without the Actor_* layout, one with a bad clip."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.wav").write_text("not audio")
    (tmp_path / "flat").mkdir()
    shutil.copy(demo_path(), tmp_path / "flat" / "a.flac")
    (tmp_path / "broken" / "Actor_01").mkdir(parents=True)
    (tmp_path / "broken" / "Actor_01" / "x.flac").write_text("not audio")
    return {"tmp": tmp_path} | {p.name: p for p in tmp_path.iterdir()}


@pytest.mark.parametrize("module,args,needle", [
    ("benchmarks.bench_stream", ["--minutes", "1e308"], "--minutes: expected a number from 0.01 to 60"),
    ("benchmarks.bench_stream", ["--live-seconds", "1e308"], "--live-seconds: expected 0 or a number from 1 to 3600"),
    ("benchmarks.paced", ["--seconds", "1e308"], "--seconds: expected a number from 1 to 600"),
    ("benchmarks.breakdown", ["--minutes", "nan"], "--minutes: expected a number from 0.01 to 60"),
    ("benchmarks.breakdown", ["--json", "{flat}/a.flac"], "would overwrite an audio file"),
    ("benchmarks.live_cpu", ["--seconds", "1e308"], "--seconds: expected a number from 1 to 3600"),
    ("benchmarks.soak", ["--hours", "1e305"], "--hours: expected a number from 0.001 to 1000"),
    ("benchmarks.soak", ["--hours", "1e-9"], "--hours: expected a number from 0.001 to 1000"),
    ("benchmarks.soak", ["--corpus", "{tmp}/none"], "no Actor_*/*.flac files there"),
    ("benchmarks.soak", ["--corpus", "{empty}"], "no Actor_*/*.flac files there"),
    ("benchmarks.soak", ["--corpus", "{flat}"], "no Actor_*/*.flac files there"),
    ("benchmarks.paced", ["--json", "/proc/x.json"], "--json: cannot write /proc/x.json"),
    ("benchmarks.soak", ["--json", "{flat}/a.flac"], "would overwrite an audio file"),
])
def test_bad_arguments_are_usage_errors(folders: dict[str, Path], module: str, args: list[str], needle: str):
    result = run_module(module, *(a.format(**folders) for a in args))
    assert result.returncode == 2 and needle in result.stderr and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("module,args,bad", [("benchmarks.bench_stream", ["--data", "{bad}"], "{bad}/x.wav"),
                                             ("benchmarks.paced", ["--data", "{bad}"], "{bad}/x.wav"),
                                             ("benchmarks.breakdown", ["--data", "{bad}"], "{bad}/x.wav"),
                                             ("benchmarks.soak", ["--corpus", "{broken}"], "{broken}/Actor_01/x.flac")])
def test_an_unreadable_audio_file_is_one_line_naming_it(folders: dict[str, Path], module: str, args: list[str],
                                                        bad: str):
    result = run_module(module, *(a.format(**folders) for a in args))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and f"{bad.format(**folders)}: not a readable audio file" \
        in lines[0], result.stderr


def finish(proc: subprocess.Popen, timeout_s: float = 60) -> tuple[int, str]:
    """Exit status and stderr; the whole session is killed if it does not end in time."""
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the command did not stop")
    return proc.returncode, err


def session(pid: int) -> list[str]:
    """Processes of the session ``pid`` leads, but for itself."""
    out = subprocess.run(["ps", "-o", "pid=,args=", "-s", str(pid)], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if int(line.split()[0]) != pid]


@pytest.mark.parametrize("module,args,signum", [
    ("benchmarks.fuzz_replay", ["--cases", "100000"], signal.SIGINT),   # Ctrl-C lands in a case: held until it ends
    ("benchmarks.paced", ["--seconds", "30", "--reps", "1"], signal.SIGTERM),
    ("benchmarks.breakdown", ["--minutes", "5", "--reps", "1"], signal.SIGINT),
])
def test_a_signal_ends_the_command_with_one_line(module: str, args: list[str], signum: int):
    """Without this test's thread variables (set by importing `realtime.cli`) numpy starts helper threads: the
    command must keep them from taking the signal. It starts with Ctrl-C ignored, as a script's background job
    (`cmd &`) does: Python then installs no KeyboardInterrupt handler, and fuzz_replay ran on."""
    proc = start(module, *args, env={k: v for k, v in os.environ.items() if k not in THREAD_VARS},
                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    time.sleep(3)
    proc.send_signal(signum)
    code, err = finish(proc)
    assert (code, err) == (130, f"{module.split('.')[1]}: interrupted\n")


def test_sigterm_stops_the_virtual_microphone_and_ser_live():
    """SIGTERM to the benchmark alone still stops PulseAudio, parec, `ser live` and paplay."""
    if not all(shutil.which(tool) for tool in ("pulseaudio", "pactl", "parec", "paplay")):
        pytest.skip("needs pulseaudio and pulseaudio-utils")
    proc = start("benchmarks.live_cpu", "--seconds", "20")
    deadline = time.monotonic() + 60
    while not any("paplay" in line for line in session(proc.pid)) and proc.poll() is None:
        assert time.monotonic() < deadline, "paplay never started"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    time.sleep(0.5)
    assert (code, err, session(proc.pid)) == (130, "live_cpu: interrupted\n", [])


def test_missing_figures_are_null_in_strict_json_and_n_a_in_print(tmp_path: Path):
    """A stream under 1.5 s (a 0.75 s clip, a 0.63 s pause with seed 3): C makes no decision."""
    speech, rate = sf.read(demo_path(), dtype="float32", start=11200, stop=23200)
    (tmp_path / "data").mkdir()
    sf.write(tmp_path / "data" / "clip.wav", speech, rate)
    out = tmp_path / "figures.json"
    result = run_module("benchmarks.bench_stream", "--data", str(tmp_path / "data"), "--minutes", "0.01", "--reps",
                        "1", "--seed", "3", "--live-seconds", "30", "--json", str(out),
                        env={**os.environ, "PATH": str(tmp_path)})   # no PulseAudio: the live part is skipped
    assert result.returncode == 0, result.stderr
    assert "`ser live` will hear the whole stream, 1.4 s, not 30 s" in result.stderr
    figures = json.loads(out.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    c = figures["engines"]["C"]
    assert c["decisions"] == 0 and c["latency_p50_ms"] is None and c["latency_p99_ms"] is None
    assert figures["c_over_a"] is None and figures["c_over_a_range"] == [None, None]
    assert math.isfinite(figures["b_over_a"])
    lines = result.stdout.splitlines()
    assert next(line for line in lines if line.startswith("C  ")).split()[-2:] == ["n/a", "n/a"]
    ratio = next(line for line in lines if line.startswith("CPU per audio-second, C/A"))
    assert "(per repetition: n/a)" in ratio and ratio.split()[-3:] == ["n/a", ">=", "10x"]
