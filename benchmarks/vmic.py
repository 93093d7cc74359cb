"""A virtual microphone: a private PulseAudio server with a null sink whose monitor is the default source.

Audio played into the sink (``paplay``) comes back bit-exact, paced in real time, from the
ALSA ``pulse`` device, so ``ser live --device pulse`` hears it like a microphone::

    with virtual_mic() as mic:
        live = subprocess.Popen(["ser", "live", "--device", "pulse", "--headless"], env=mic.env)
        mic.play("speech.wav")

Everything started here (the server and the ``parec`` reader that keeps the sink
running) is stopped by process id on exit. Needs pulseaudio, pulseaudio-utils and
libasound2-plugins (Debian/Ubuntu); :class:`VirtualMicUnavailable` says what is missing.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TOOLS = ("pulseaudio", "pactl", "parec", "paplay")
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0          # after SIGTERM, before SIGKILL


class VirtualMicUnavailable(RuntimeError):
    """PulseAudio is missing or its server would not start."""


@dataclass(frozen=True)
class VirtualMic:
    """A running virtual microphone; pass ``env`` to every process that should use it."""

    sink: str
    rate: int
    env: dict[str, str]

    def play(self, path: str | Path) -> None:
        """Play a file into the sink, and return once it has played."""
        player = subprocess.run(["paplay", "--latency-msec=100", "-d", self.sink, str(path)],
                                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if player.returncode != 0:
            raise RuntimeError(f"paplay {path} failed: {player.stderr.strip()}")


def stop_process(process: subprocess.Popen) -> None:
    """Stop one process we started: SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)


def _start_server(runtime: Path, env: dict[str, str], sink: str, rate: int) -> subprocess.Popen:
    """Start pulseaudio in the foreground (so its pid is ours) and wait until it answers."""
    logfile = (runtime / "pulseaudio.log").open("w")
    server = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--system=false", "--exit-idle-time=-1", "--disallow-exit",
         "--log-target=stderr", "--load=module-native-protocol-unix",
         f"--load=module-null-sink sink_name={sink} rate={rate} channels=1 format=s16le"],
        env=env, stdout=logfile, stderr=subprocess.STDOUT)
    logfile.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                lines = (runtime / "pulseaudio.log").read_text().strip().splitlines()
                raise VirtualMicUnavailable(f"pulseaudio exited at start: {lines[-1] if lines else server.returncode}")
            if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
                return server
            time.sleep(0.1)
        raise VirtualMicUnavailable(f"pulseaudio did not answer within {START_TIMEOUT_S:.0f} s")
    except BaseException:   # a Ctrl-C or SIGTERM while it starts too
        stop_process(server)
        raise


@contextmanager
def virtual_mic(sink: str = "vmic", rate: int = 16000) -> Iterator[VirtualMic]:
    """Run a private PulseAudio server with a mono ``rate`` Hz null sink; stop it on exit.

    Raises
    ------
    VirtualMicUnavailable
        When the PulseAudio tools are not installed or the server does not start.
    """
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise VirtualMicUnavailable(f"{', '.join(missing)} not installed "
                                    "(apt install pulseaudio pulseaudio-utils libasound2-plugins)")
    with ExitStack() as stack:
        runtime = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vmic-")))
        env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "XDG_CONFIG_HOME": str(runtime / "config"),
               "PULSE_SERVER": f"unix:{runtime}/pulse/native"}
        server = _start_server(runtime, env, sink, rate)
        stack.callback(stop_process, server)
        subprocess.run(["pactl", "set-default-source", f"{sink}.monitor"], env=env, check=True, capture_output=True)
        reader = subprocess.Popen(["parec", "--latency-msec=10", "-d", f"{sink}.monitor"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(stop_process, reader)
        log.info("virtual microphone %s.monitor at %d Hz (pulseaudio pid %d)", sink, rate, server.pid)
        yield VirtualMic(sink, rate, env)
