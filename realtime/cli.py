"""The `ser` command: live, replay, demo, devices."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from importlib import resources
from pathlib import Path

from realtime.threads import one_maths_thread

one_maths_thread()   # before numpy is imported

from realtime.channel import band_text  # noqa: E402
from realtime.scorer import DEFAULT_MODEL, ModelError, Scorer, model_path  # noqa: E402
from realtime.sources import DEFAULT_BLOCK, SourceError  # noqa: E402
from realtime.stdio import discard_stdout, reopen_closed_stderr  # noqa: E402

log = logging.getLogger("ser")
MODEL_HELP = ("model .onnx (card .json beside it), or a shipped model's name: ser-ravdess (default), "
              "ser-ravdess-noisy (trained over background noise), ser-ravdess-phone (telephone lines), "
              "ser-ravdess-phone-noisy (telephone lines over background noise) or ser-ravdess-8k (plain 8 kHz "
              "audio); see the README")


def demo_path() -> Path:
    return Path(str(resources.files("realtime") / "assets" / "demo.flac"))


def audio_path(text: str) -> Path:
    """The replayed file; an empty argument is a usage error, not the current folder."""
    if not text:
        raise argparse.ArgumentTypeError("give the path of an audio file")
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ser", description="Real-time speech emotion recognition.")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default: WARNING)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_output_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--headless", action="store_true", help="no dashboard (edge devices, pipes)")
        p.add_argument("--jsonl", metavar="PATH|-", help="write events as JSON Lines to PATH or stdout (-)")
        p.add_argument("--no-adapt", action="store_true",
                       help="no online speaker adaptation: each window normalised on its own (the cold figures)")

    live = commands.add_parser("live", help="listen to a microphone until Ctrl-C",
                               description="Listen to a microphone and score each window of speech, until Ctrl-C, q "
                                           "(dashboard) or SIGTERM.")
    live.add_argument("--device", help="input device index or a substring of its name (see `ser devices`)")
    live.add_argument("--model", type=model_path, default=DEFAULT_MODEL, help=MODEL_HELP)
    add_output_flags(live)

    replay = commands.add_parser("replay", help="replay an audio file (wav, flac, ogg, aiff; any rate or channels)",
                                 description="Replay an audio file (wav, flac, ogg, aiff; any rate or channels) through "
                                             "the engine, paced as a microphone would deliver it unless --speed says "
                                             "otherwise.")
    replay.add_argument("path", type=audio_path)
    replay.add_argument("--speed", type=float, default=1.0, help="1 = real time (default), 4 = 4x, 0 = as fast as possible")
    replay.add_argument("--chunk", type=int, default=DEFAULT_BLOCK, help=f"block size in samples (default {DEFAULT_BLOCK})")
    replay.add_argument("--model", type=model_path, default=DEFAULT_MODEL, help=MODEL_HELP)
    add_output_flags(replay)

    demo = commands.add_parser("demo", help="replay the bundled recording of emotional speech",
                               description="Replay the bundled recording of emotional speech: no microphone needed.")
    demo.add_argument("--speed", type=float, default=1.0, help="1 = real time (default), 4 = 4x, 0 = as fast as possible")
    add_output_flags(demo)

    commands.add_parser("devices", help="list audio input devices",
                        description="List the audio input devices, for --device (its number or part of its name).")
    return parser


def cmd_devices() -> int:
    from realtime.mic import input_devices

    devices = input_devices()
    if not devices:
        return fail("no audio input devices found; plug in a microphone or check that ALSA/PulseAudio can see it", 1)
    for d in devices:
        print(f"{d.index:3d}  {d.name}  ({d.channels} ch, {d.default_rate:.0f} Hz)")
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    with StopRequest() as stop:   # from start-up to the summary, a signal asks for an orderly end
        return run_stream(args, stop)


def run_stream(args: argparse.Namespace, stop: "StopRequest") -> int:
    from realtime.monitor import Monitor
    from realtime.pipeline import Pipeline
    from realtime.runner import run
    from realtime.sinks import JsonlSink

    scorer = Scorer(getattr(args, "model", DEFAULT_MODEL))
    rate = scorer.card.spec.sample_rate
    inputs = [scorer.path, scorer.card_path]   # never overwritten by --jsonl
    if args.command == "live":
        from realtime.mic import MicSource

        source = MicSource(args.device, rate, band_rate=scorer.card.band_rate_hz)
        duration = None
    else:
        from realtime.sources import FileSource

        path = demo_path() if args.command == "demo" else args.path
        inputs.append(path)
        source = FileSource(path, rate, block=getattr(args, "chunk", DEFAULT_BLOCK), speed=args.speed,
                            band_rate=scorer.card.band_rate_hz)
        duration = source.duration_s
        narrower = scorer.card.narrower_input(source.native_rate)
        if narrower:
            log.warning(narrower)
    stop.watch(source)
    if stop.requested():
        raise KeyboardInterrupt   # asked to stop before streaming began
    sinks = [JsonlSink(args.jsonl, tuple(inputs))] if args.jsonl is not None else []
    card = scorer.card
    pipeline = Pipeline(scorer, adapt=not args.no_adapt)
    line = f" through a {band_text(card.band_hz)} Hz line" if card.band_hz else ""
    monitor = Monitor(source.describe() + line, card.name, tuple(card.labels), tuple(card.gender_labels), rate, duration,
                      adapting=pipeline.adapter.config.enabled)
    try:
        if args.headless:
            run(source, pipeline, sinks, monitor, should_stop=stop.requested)
        else:
            from realtime.dashboard import Dashboard

            with Dashboard(monitor, source.stats, on_quit=stop.request) as dashboard:
                run(source, pipeline, sinks, monitor, should_stop=lambda: dashboard.poll() or stop.requested())
    except BrokenPipeError:   # the reader of --jsonl - has gone (`| head -1`, or a Ctrl-C that reached it too)
        discard_stdout()
    finally:
        for sink in sinks:
            sink.close()
    ended_reason = getattr(source, "ended_reason", None)
    print(monitor.summary(source.stats, ended_reason), file=sys.stderr)
    return 1 if ended_reason else 0  # a vanished device is a fault a supervisor should see


class StopRequest:
    """Ctrl-C (SIGINT), systemd's stop (SIGTERM) and the dashboard's ``q`` ask the run to end, with
    the final events and the summary, once the microphone has handed over what it already
    delivered; a second Ctrl-C interrupts at once.

    The first signal raises nothing: an exception raised wherever the main thread happens to be
    can leave a lock held that the audio callback then waits on, and the run would hang on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._source: object = None
        self._requested = False
        self._previous: dict[int, object] = {}

    def watch(self, source: object) -> None:
        """Stop ``source`` (if it can be stopped) on a request, so a silent microphone ends too."""
        self._source = source

    def requested(self) -> bool:
        return self._requested

    def request(self) -> None:
        self._requested = True
        for action in ("stop", "stop_waiting"):   # a microphone ends at its next poll even if no block arrives;
            getattr(self._source, action, lambda: None)()   # a paced replay stops waiting to hand over its block

    def _handle(self, signum: int, frame: object) -> None:
        if self._requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.request()

    def __enter__(self) -> "StopRequest":
        self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> int:
    """Run one `ser` command; every failure ends as one ``ser: ...`` line on stderr and an exit code.

    2: bad input, model or device (the message says what to do); 1: an internal error
    (its traceback is logged at DEBUG level), or after the summary an input device that vanished
    mid-stream or blocks a second Ctrl-C left unread; 130: interrupted before streaming began.
    """
    reopen_closed_stderr()
    args = build_parser().parse_args(argv)
    try:
        logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
        return cmd_devices() if args.command == "devices" else cmd_stream(args)
    except (SourceError, ModelError, ValueError) as exc:
        return fail(f"error: {exc}", 2)
    except BrokenPipeError:
        discard_stdout()
        return 0
    except OSError as exc:  # e.g. a full disk or a lost mount under --jsonl
        return fail(f"error: {exc.filename or 'I/O'}: {exc.strerror or exc}", 2)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except Exception as exc:  # a bug: still one line for the user
        log.debug("internal error", exc_info=True)
        return fail(f"internal error: {type(exc).__name__}: {exc} "
                    f"(rerun as `ser --log-level DEBUG {args.command} ...` for details)", 1)


def fail(message: str, code: int) -> int:
    """Print ``ser: MESSAGE`` as a single line on stderr and return ``code``."""
    print("ser: " + " ".join(message.split()), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
