"""The `ser-train` command: fit, evaluate, report, resample."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from realtime.adapt import AdaptConfig          # numpy loads here, after ser_train/__init__ pinned the BLAS kernel
from realtime.channel import pass_band
from realtime.features import DEFAULT_SPEC
from realtime.stdio import reopen_closed_stderr
from ser_train.frame_model import (AVERAGED_FRAME_CONFIG, MASKED_FRAME_CONFIG, FrameModelConfig, averaging_text,
                                   masks_text)

log = logging.getLogger("ser-train")
DEFAULT_OUT = Path("models/ser-ravdess")
MAX_REVERB_S = 3.0   # a cathedral; longer is a typo
MAX_DRR_DB = 40.0    # beyond this the echo is inaudible
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SPEAKERS_HELP = ("a cremad corpus's VideoDemographics.csv (ActorID, Sex) or a folder corpus's speakers CSV (file, "
                 "speaker, gender), when it is not found under the corpus root")


def corpus_arg(text: str, what: str = "DIR", example: str = "ravdess=data/ravdess") -> tuple[str, Path]:
    kind, sep, root = text.partition("=")
    if not sep or not root:
        raise argparse.ArgumentTypeError(f"expected KIND={what} (e.g. {example}), got {text!r}")
    return kind.strip().lower(), Path(root)


def speakers_arg(text: str) -> tuple[str, Path]:
    return corpus_arg(text, "CSV", "cremad=CREMA-D/VideoDemographics.csv")


def speakers_by_kind(kinds: list[str], given: list[tuple[str, Path]]) -> dict[str, Path]:
    """The ``--speakers`` CSV of each corpus kind, checked against the corpora's kinds."""
    from ser_train.corpora import SPEAKER_CSV_KINDS

    chosen: dict[str, Path] = {}
    for kind, csv_path in given:
        if kind not in SPEAKER_CSV_KINDS:
            raise ValueError(f"--speakers gives a cremad corpus's demographics CSV (ActorID, Sex) or a folder corpus's "
                             f"speakers CSV (file, speaker, gender); a {kind} corpus takes neither")
        if kind not in kinds:
            raise ValueError(f"--speakers {kind}=CSV: there is no {kind} corpus")
        if kinds.count(kind) > 1 or kind in chosen:
            raise ValueError(f"--speakers {kind}=CSV: give one {kind} corpus and one CSV for it")
        chosen[kind] = csv_path
    return chosen


def band_arg(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    try:
        return pass_band(low, high, DEFAULT_SPEC.sample_rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH in Hz with 0 < LOW < HIGH < "
                                         f"{DEFAULT_SPEC.sample_rate // 2} (e.g. 300-3400), got {text!r}") from None


def model_out(text: str) -> Path:
    """--out: the model's path without suffix; a trailing .onnx or .json is dropped."""
    path = Path(text)
    if not text.strip() or text.endswith(("/", os.sep)) or path.name in ("", ".", ".."):
        raise argparse.ArgumentTypeError(f"expected the model's path without suffix (e.g. models/NAME), got {text!r}")
    return path.with_suffix("") if path.suffix.lower() in (".onnx", ".json") else path


def seed_arg(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if seed < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive whole number, got {text!r}")
    return seed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ser-train", description="Train and evaluate speech emotion models.")
    parser.add_argument("--log-level", default="WARNING", type=str.upper, choices=LOG_LEVELS,
                        help="logging level; DEBUG shows tracebacks (default: WARNING)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = commands.add_parser("fit", help="search, train and export a model (ONNX + card)",
                              description="Search, train and export a model (ONNX + card), with its figures measured "
                                          "by speaker-grouped cross-validation through the streaming pipeline.",
                              epilog="The shipped default: ser-train fit --corpus ravdess=DIR --reverb-copies "
                                     "--frame-masks --frame-averaging (about 2 h on 2 cores; the README's "
                                     "\"Reproducing the models\" gives each shipped model's command, and "
                                     "\"Retraining\" what each flag measured).")
    fit.add_argument("--corpus", type=corpus_arg, action="append", required=True, metavar="KIND=DIR",
                     help="ravdess, tess, emodb, cremad, savee or folder; repeatable")
    fit.add_argument("--speakers", type=speakers_arg, action="append", default=[], metavar="KIND=CSV",
                     help=SPEAKERS_HELP + "; as cremad=CSV or folder=CSV")
    fit.add_argument("--emotions", help="comma-separated subset of labels, at least two (default: all present)")
    fit.add_argument("--out", type=model_out, default=DEFAULT_OUT, help=f"output path without suffix (default {DEFAULT_OUT})")
    fit.add_argument("--families", default="logreg,svc,mlp,hgb",
                     help="comma-separated classifier families to search, from logreg, svc, mlp and hgb "
                          "(default: all four)")
    fit.add_argument("--folds", type=int, default=5,
                     help="cross-validation folds, grouped by speaker (default 5; at most one per speaker)")
    fit.add_argument("--no-streaming-cv", action="store_true",
                     help="skip the per-fold model search and replay through the pipeline")
    fit.add_argument("--no-frame-model", action="store_true",
                     help="window model only: no frame CNN in the ensemble (no PyTorch needed)")
    fit.add_argument("--frame-epochs", type=int, default=FrameModelConfig.epochs,
                     help=f"training epochs of the frame CNN (default {FrameModelConfig.epochs})")
    fit.add_argument("--frame-masks", action="store_true",
                     help="train the frame CNN with SpecAugment-style masks: "
                          f"{masks_text(FrameModelConfig(**MASKED_FRAME_CONFIG))} "
                          "(the shipped default has them)".replace("%", "%%"))
    fit.add_argument("--frame-averaging", action="store_true",
                     help=f"train the frame CNN with stochastic weight averaging: "
                          f"{averaging_text(FrameModelConfig(**AVERAGED_FRAME_CONFIG))} (the shipped default has it)")
    fit.add_argument("--report", type=Path, help="also write a markdown report with plots to this folder")
    fit.add_argument("--keep-folds", type=Path, metavar="DIR",
                     help="keep the streaming CV's fold models in DIR (fold1.onnx ...), each card naming its held-out "
                          "speakers, for `ser-train evaluate --held-out` (default: discarded)")
    fit.add_argument("--noise-copies", action="store_true",
                     help="hear each voice copy over background noise, 10-40 dB below the speaker's speech, and "
                          "train the gender head on the copies nearest the real voice too "
                          "(not in the default model: see the README)")
    fit.add_argument("--noisy-gender-copies", action="store_true",
                     help="play the voice copies nearest the real voice again over background noise, 10-40 dB below "
                          "the speaker's speech, to train the gender head alone: the emotion head is as without it")
    fit.add_argument("--reverb-copies", action="store_true",
                     help="hear half the voice copies in a synthetic reverberant room (RT60 0.2-1 s, "
                          "direct-to-reverberant ratio -3 to 12 dB), one room per copy (the shipped default has them)")
    fit.add_argument("--gender-copies", action="store_true",
                     help="train the gender head on the voice copies nearest the real voice too (factors 0.95 and "
                          "1.05), as they are heard: at their level and, with --reverb-copies, in their room "
                          "(--noise-copies implies it)")
    fit.add_argument("--band", type=band_arg, metavar="LOW-HIGH",
                     help="hear all audio through this pass band in Hz, e.g. 300-3400 for a telephone line; "
                          "the model then hears everything it scores through it too (default: the full band)")
    fit.add_argument("--vad-hears-silence", action="store_true",
                     help="let the VAD's webrtcvad hear every frame, not only those that pass its energy gate, so "
                          "it keeps quiet speech (the card makes the runtime serve the model the same way; not in "
                          "the shipped models: see the README)")
    fit.add_argument("--pitch-octave-cost", action="store_true",
                     help="track pitch with an octave cost of 0.1 per octave (Praat's), which favours a period over "
                          "its multiples, so fewer frames read an octave low (the card makes the runtime compute the "
                          "same features; not in the shipped models: see the README)")
    fit.add_argument("--pitch-peaks-only", action="store_true",
                     help="take only the autocorrelation's local maxima as pitch candidates (Praat's), so the search "
                          "range's edge, where the autocorrelation is still falling, is never read as a pitch; meant "
                          "with --pitch-octave-cost, as alone it leaves the octave errors (the card makes the runtime "
                          "compute the same features; not in the shipped models: see the README)")
    fit.add_argument("--variance-prior-windows", type=float, metavar="K",
                     help="weight, in windows, of the population prior on each session's feature variance: a variance "
                          f"from a few windows is noisier than a mean (default: the mean's prior, "
                          f"{AdaptConfig.prior_windows:g} windows; not in the shipped models: see the README)")
    fit.add_argument("--seed", type=seed_arg, default=0,
                     help="seed of every random choice: session orders, classifier and CNN training, and the streaming CV's "
                          "clip order (default 0)")

    ev = commands.add_parser("evaluate", help="replay a corpus through the streaming pipeline and score it",
                             description="Replay every clip of a corpus through the pipeline `ser replay` uses (VAD "
                                         "windows, features, adaptation, ONNX scoring) and score the clips' decisions.")
    ev.add_argument("--model", required=True, help="model .onnx, or a shipped model's name")
    ev.add_argument("--corpus", required=True, type=str.lower,
                    help="corpus kind: ravdess, tess, emodb, cremad, savee or folder")
    ev.add_argument("--data", type=Path, required=True, help="corpus root folder")
    ev.add_argument("--speakers", type=Path, metavar="CSV", help=SPEAKERS_HELP)
    mode = ev.add_mutually_exclusive_group()
    mode.add_argument("--adapt", dest="adapt", action="store_true", default=True, help="one session per speaker (default)")
    mode.add_argument("--no-adapt", dest="adapt", action="store_false", help="reset state before every clip")
    ev.add_argument("--seed", type=seed_arg,
                    help="seed of the within-speaker clip order (default 0; with --held-out, the fit's seed)")
    ev.add_argument("--gain-db", type=float, default=0.0,
                    help="play every clip this many dB louder (negative: quieter), clipped at full scale (default 0)")
    ev.add_argument("--snr-db", type=float,
                    help="mix background noise this many dB below each speaker's median speech level (default: none)")
    ev.add_argument("--noise", choices=("white", "pink", "brown"),
                    help="colour of the --snr-db noise (default pink)")
    ev.add_argument("--band", type=band_arg, metavar="LOW-HIGH",
                    help="play every clip through this pass band in Hz first, e.g. 300-3400 for a telephone line")
    ev.add_argument("--reverb-s", type=float, metavar="RT60",
                    help="play every clip in a reverberant room first: its echo falls 60 dB in this many seconds "
                         "(0.3 a furnished office, 0.6-1 a bare meeting room)")
    ev.add_argument("--drr-db", type=float, default=0.0,
                    help="with --reverb-s: the direct sound this many dB above the echo (default 0, a speaker near "
                         "the room's critical distance; higher is a closer microphone)")
    ev.add_argument("--held-out", action="store_true",
                    help="only the speakers a fold model kept by `ser-train fit --keep-folds` was tested on")
    ev.add_argument("--json", type=Path, help="write the figures as JSON here")

    rep = commands.add_parser("report", help="markdown report with plots from a model card",
                              description="Write a markdown report with PNG plots (confusion matrices, per-class F1, "
                                          "classifier comparison, gender accuracy) from a model's card.")
    rep.add_argument("--model", required=True, help="model .onnx or its .json card, or a shipped model's name")
    rep.add_argument("--out", type=Path, required=True, help="folder for report.md and PNGs")

    res = commands.add_parser("resample", help="copy a corpus with every audio file at another sample rate "
                                               "(e.g. 8000 for telephone-band audio)",
                              description="Copy a corpus, same tree and file names, with every audio file as 16-bit "
                                          "mono at another sample rate (e.g. 8000 for telephone-band audio).")
    res.add_argument("source", type=Path, help="corpus root folder")
    res.add_argument("target", type=Path, help="new folder: same tree and names, audio as 16-bit mono at --rate")
    res.add_argument("--rate", type=int, required=True, help="sample rate in Hz")
    return parser


def check_writable(path: Path, flag: str, folder: bool = False) -> None:
    """Fail now, not after hours of work, if ``path`` (a file, or a ``folder``) cannot be written."""
    if path.exists() and path.is_dir() != folder:
        found, wanted = ("a file", "a folder") if folder else ("a folder", "a file path")
        raise ValueError(f"{flag} {path} is {found}; give {wanted}")
    nearest = ((path,) if folder else ()) + tuple(path.absolute().parents)
    existing = next(p for p in nearest if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{flag} {path}: {existing} is a file, so no folder can be made there")
    try:   # a real write: os.access says yes to root even where the filesystem refuses (/sys, a read-only mount)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ValueError(f"{flag} {path}: cannot write in {existing} ({exc.strerror or exc})") from None


def check_not_an_input(path: Path, inputs: tuple[Path, ...], data: Path) -> None:
    """Refuse an output ``path`` that would overwrite one of ``inputs`` or a file of the corpus under ``data``."""
    from realtime.sinks import same_file

    clash = next((p for p in inputs if same_file(path, p)), None)
    if clash is None and path.is_file() and path.resolve().is_relative_to(data.resolve()):
        clash = path
    if clash is not None:
        raise ValueError(f"--json {path} would overwrite {clash}, an input of this run; choose another path")


@contextmanager
def convergence_warnings_counted() -> Iterator[list[str]]:
    """Collect scikit-learn's ConvergenceWarnings (one per unconverged fit, hundreds in a search) instead of
    printing each; every other warning is shown as usual."""
    from sklearn.exceptions import ConvergenceWarning

    caught: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("always", ConvergenceWarning)
        show = warnings.showwarning

        def collect(message, category, *rest, **options) -> None:
            if issubclass(category, ConvergenceWarning):
                caught.append(" ".join(str(message).split()))
            else:
                show(message, category, *rest, **options)

        warnings.showwarning = collect
        yield caught


def scan_all(specs: list[tuple[str, Path]], console: Console, need_speakers: bool = True,
             speakers: dict[str, Path] | None = None):
    """The clips of every ``(kind, root)``, with each corpus's summary and first rejects printed, and the
    number of files rejected in all; ``speakers`` maps a kind to its ``--speakers`` CSV. A recording that an
    earlier root already gave (the same corpus twice, a root inside another, or a copy at another rate) is
    counted once; a folder speaker name met under two roots, or a speaker of two genders, is warned about."""
    from ser_train.corpora import CREMAD_DEMOGRAPHICS, recording, scan_corpus, summarize

    speakers = speakers or {}
    clips, rejected, seen, folder_roots = [], 0, set(), {}
    for kind, root in specs:
        scan = scan_corpus(kind, root, speakers_csv=speakers.get(kind), need_speakers=need_speakers)
        rejected += len(scan.rejected)
        console.print(summarize(scan), soft_wrap=True)
        if kind == "cremad" and kind not in speakers and all(clip.gender is None for clip in scan.clips):
            console.print(f"  no {CREMAD_DEMOGRAPHICS} under {root}, so its actors' genders are unknown; "
                          f"give the file with --speakers", soft_wrap=True)
        for path, reason in scan.rejected[:5]:
            console.print(f"  rejected {path}: {reason}", soft_wrap=True)
        new = [clip for clip in scan.clips if recording(clip) not in seen]
        if len(new) < len(scan.clips):
            console.print(f"  {len(scan.clips) - len(new)} of them already given by an earlier --corpus (the same "
                          f"recordings): counted once", soft_wrap=True)
        seen.update(recording(clip) for clip in new)
        if kind == "folder":
            shared = sorted({c.speaker for c in new if folder_roots.setdefault(c.speaker, root) != root})
            if shared:
                console.print(f"  [yellow]warning:[/] speakers {', '.join(shared)} also appear under an earlier "
                              f"folder corpus: each name is taken as one person (one session, one fold); if they "
                              f"are not, give them distinct names in a speakers CSV", soft_wrap=True)
        clips.extend(new)
    genders: dict[str, set[str]] = {}
    for clip in clips:
        if clip.gender:
            genders.setdefault(clip.speaker, set()).add(clip.gender)
    mixed = sorted(speaker for speaker, found in genders.items() if len(found) > 1)
    if mixed:
        console.print(f"[yellow]warning:[/] speakers labelled both female and male: {', '.join(mixed)}; is one name "
                      f"given to two people?", soft_wrap=True)
    return clips, rejected


def cmd_fit(args: argparse.Namespace, console: Console) -> int:
    from ser_train.corpora import LABELS
    from ser_train.export import model_files
    from ser_train.fit import (NOISE_COPY_SNR_DB, NOISE_GENDER_SPAN, PITCH_OCTAVE_COST, REVERB_COPY_RT60_S, FitConfig,
                               fit_model)
    from ser_train.models import candidates

    families = tuple(f.strip() for f in args.families.split(","))
    candidates(families)   # an unknown family fails here, before the long extraction
    if args.folds < 2:
        raise ValueError(f"--folds must be at least 2 (speaker-grouped cross-validation), got {args.folds}")
    if args.frame_epochs < 1:
        raise ValueError(f"--frame-epochs must be at least 1, got {args.frame_epochs}")
    if args.variance_prior_windows is not None and not 0 < args.variance_prior_windows < math.inf:
        raise ValueError(f"--variance-prior-windows must be a positive number, got {args.variance_prior_windows:g}")
    if args.keep_folds and args.no_streaming_cv:
        raise ValueError("--keep-folds keeps the streaming CV's fold models; it cannot go with --no-streaming-cv")
    if args.report and args.no_streaming_cv:
        raise ValueError("--report draws the streaming CV's figures; it cannot go with --no-streaming-cv")
    for flag in ("frame_masks", "frame_averaging"):
        if getattr(args, flag) and args.no_frame_model:
            raise ValueError(f"--{flag.replace('_', '-')} changes how the frame CNN trains; "
                             "it cannot go with --no-frame-model")
    for path in model_files(args.out):
        check_writable(path, "--out")
    for flag, folder in (("--report", args.report), ("--keep-folds", args.keep_folds)):
        if folder:
            check_writable(folder, flag, folder=True)
    speakers = speakers_by_kind([kind for kind, _ in args.corpus], args.speakers)
    clips, _ = scan_all(args.corpus, console, speakers=speakers)
    present = {c.label for c in clips}
    if args.emotions:
        wanted = {e.strip().lower() for e in args.emotions.split(",")} - {""}
        if not wanted:
            raise ValueError(f"--emotions {args.emotions!r} names no emotion; give a list such as angry,happy,neutral,sad")
        unknown = sorted(wanted - present)
        if unknown:
            raise ValueError(f"--emotions {','.join(unknown)} not present in the corpora ({', '.join(sorted(present))})")
        labels = tuple(label for label in LABELS if label in wanted)
    else:
        labels = tuple(label for label in LABELS if label in present)
    if len(labels) < 2:
        raise ValueError(f"a model needs at least two emotions to tell apart; "
                         f"{'--emotions gives' if args.emotions else 'the corpora hold'} only {', '.join(labels)}")
    clips = [c for c in clips if c.label in labels]
    genders = sorted({c.gender for c in clips} - {None})
    if len(genders) < 2:
        console.print(f"[yellow]warning:[/] the clips' known genders are {', '.join(genders) or 'none'}, so the model "
                      f"gets no gender head (its card says gender_trained false)")
    config = FitConfig(families=families, speakers=tuple(f"{kind}={path}" for kind, path in speakers.items()),
                       folds=args.folds, emotions=labels if args.emotions else None,
                       streaming_cv=not args.no_streaming_cv, frame_model=not args.no_frame_model,
                       frame=FrameModelConfig(epochs=args.frame_epochs,
                                              **(MASKED_FRAME_CONFIG if args.frame_masks else {}),
                                              **(AVERAGED_FRAME_CONFIG if args.frame_averaging else {})),
                       seed=args.seed,
                       copy_snr_db=NOISE_COPY_SNR_DB if args.noise_copies else None,
                       gender_copy_span=NOISE_GENDER_SPAN if args.noise_copies or args.gender_copies else 0.0,
                       gender_noise_snr_db=NOISE_COPY_SNR_DB if args.noisy_gender_copies else None, band_hz=args.band,
                       copy_rt60_s=REVERB_COPY_RT60_S if args.reverb_copies else None,
                       vad_hears_silence=args.vad_hears_silence, variance_prior_windows=args.variance_prior_windows,
                       octave_cost=PITCH_OCTAVE_COST if args.pitch_octave_cost else 0.0,
                       pitch_peaks_only=args.pitch_peaks_only)
    with convergence_warnings_counted() as unconverged:
        card = fit_model(clips, [f"{k}={r}" for k, r in args.corpus], labels, args.out, config, console,
                         args.keep_folds)
    if unconverged:
        console.print(f"note: {len(unconverged)} classifier fits stopped at their iteration limit before converging "
                      f"(scikit-learn's ConvergenceWarning, first: {unconverged[0]}); the figures measure them as they are")
    console.print("wrote {} and {}".format(*model_files(args.out)))
    from ser_train.report import figure, write_report

    stream = card["metrics"].get("streaming_cv")
    if stream:
        console.print(f"streaming CV: UAR adapted {stream['adapt']['uar']:.3f}, cold {stream['cold']['uar']:.3f}, "
                      f"gender {figure(stream['adapt']['gender_accuracy'])}")
    if args.report:
        console.print(f"report: {write_report(model_files(args.out)[1], args.report)}")
    return 0


def cmd_evaluate(args: argparse.Namespace, console: Console) -> int:
    from ser_train.dataset import rate_range
    from ser_train.evaluate import evaluate
    from ser_train.noise import COLOURS
    from ser_train.report import figures_headline, figures_table

    from realtime.scorer import Scorer, model_path
    from ser_train.corpora import CorpusError, GuessedSpeakersError

    for flag, value in (("--gain-db", args.gain_db), ("--snr-db", args.snr_db)):
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{flag} must be a finite number of dB, got {value}")
    if args.reverb_s is not None and not (math.isfinite(args.reverb_s) and 0.0 < args.reverb_s <= MAX_REVERB_S):
        raise ValueError(f"--reverb-s must be an RT60 in seconds above 0 and at most {MAX_REVERB_S:g}, "
                         f"got {args.reverb_s}")
    if not (math.isfinite(args.drr_db) and abs(args.drr_db) <= MAX_DRR_DB):
        raise ValueError(f"--drr-db must be a number of dB from -{MAX_DRR_DB:g} to {MAX_DRR_DB:g}, got {args.drr_db}")
    if args.drr_db and args.reverb_s is None:
        raise ValueError("--drr-db sets the room of --reverb-s; give --reverb-s too")
    if args.noise and args.snr_db is None:
        raise ValueError("--noise sets the colour of --snr-db's noise; give --snr-db too")
    noise = None if args.snr_db is None else (args.snr_db, COLOURS[args.noise or "pink"])
    if args.json:
        check_writable(args.json, "--json")
    speakers = speakers_by_kind([args.corpus], [(args.corpus, args.speakers)] if args.speakers else [])
    scorer = Scorer(model_path(args.model))  # a bad model fails before a long corpus scan
    if args.json:
        check_not_an_input(args.json, (scorer.path, scorer.card_path, *speakers.values()), args.data)
    held = held_out_speakers(scorer, args.model) if args.held_out else None
    seed = args.seed if args.seed is not None else fit_seed(scorer) if held is not None else 0
    try:
        clips, rejected = scan_all([(args.corpus, args.data)], console, need_speakers=args.adapt or args.snr_db is not None,
                                   speakers=speakers)
    except GuessedSpeakersError as exc:
        raise CorpusError(f"{exc}; or evaluate with --no-adapt and without --snr-db, which group nothing by "
                          f"speaker") from None
    if held is not None:
        clips = [c for c in clips if c.speaker in held]
        if not clips:
            raise ValueError(f"none of this corpus's speakers is among {args.model}'s held-out speakers "
                             f"({', '.join(sorted(held))})")
    rates = rate_range(clips)
    narrower = rates and scorer.card.narrower_input(rates[0])
    if narrower:
        console.print(f"[yellow]warning:[/] {narrower}")
    report = evaluate(scorer, clips, adapt=args.adapt, seed=seed, gain_db=args.gain_db, noise=noise,
                      band_hz=args.band, reverb_s=args.reverb_s, drr_db=args.drr_db)
    console.print(figures_headline(report), soft_wrap=True)
    console.print(figures_table(report))
    for reason in report["unreadable_files"][:5]:
        console.print(f"  unreadable: {reason}", soft_wrap=True)
    report["rejected"] = rejected
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        console.print(f"wrote {args.json}")
    return 0


def held_out_speakers(scorer, model: str) -> set[str]:
    """The speakers a kept fold model's card lists as held out."""
    from ser_train.fit import HELD_OUT_KEY

    held = scorer.card.raw.get("metrics", {}).get(HELD_OUT_KEY)
    if not held:
        raise ValueError(f"--held-out needs a fold model kept by `ser-train fit --keep-folds`; {model} names no "
                         f"held-out speakers")
    return set(held)


def fit_seed(scorer) -> int:
    """The ``--seed`` of the fit that made a kept fold model: its streaming CV replayed the clips in that order."""
    return int(scorer.card.raw.get("training", {}).get("fit_config", {}).get("seed", 0))


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from ser_train.report import write_report

    from realtime.scorer import model_path, onnx_file

    card = onnx_file(model_path(args.model)).with_suffix(".json")
    if not card.is_file():
        raise ValueError(f"no model card at {card}; pass a model's .onnx, its .json card or a shipped model's name")
    check_writable(args.out, "--out", folder=True)
    console.print(f"wrote {write_report(card, args.out)}")
    return 0


def cmd_resample(args: argparse.Namespace, console: Console) -> int:
    from ser_train.resample import resample_corpus

    check_writable(args.target, "target", folder=True)
    written, failures = resample_corpus(args.source, args.target, args.rate)
    for _, reason in failures[:5]:
        console.print(f"  failed: {reason}")
    console.print(f"wrote {written} audio files at {args.rate} Hz under {args.target}"
                  + (f"; {len(failures)} failed" if failures else ""))
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    reopen_closed_stderr()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    console = Console(stderr=True)
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("ser-train: error: training needs the extras: pip install '.[train]' in the repository", file=sys.stderr)
        return 2
    from realtime.scorer import ModelError
    from realtime.sources import SourceError
    from ser_train.corpora import CorpusError

    handlers = {"fit": cmd_fit, "evaluate": cmd_evaluate, "report": cmd_report, "resample": cmd_resample}
    try:
        return handlers[args.command](args, console)
    except (CorpusError, ModelError, SourceError, ValueError, OSError) as exc:
        log.debug("error", exc_info=True)
        print(f"ser-train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ser-train: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line for the user
        log.debug("internal error", exc_info=True)
        print(f"ser-train: internal error: {type(exc).__name__}: {exc} "
              f"(rerun as `ser-train --log-level DEBUG {args.command} ...` for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
