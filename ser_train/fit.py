"""Speaker-grouped model search, final fit, export and model card."""

from __future__ import annotations

import datetime
import logging
import os
import platform
import tempfile
import zlib
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx
from rich.console import Console
from sklearn.base import ClassifierMixin
from sklearn.model_selection import GroupKFold

from realtime.adapt import AdaptConfig, SpeakerAdapter
from realtime.channel import band_text
from realtime.features import DEFAULT_SPEC, FeatureSpec
from realtime.scorer import CARD_FORMAT, Scorer
from realtime.vad import VadConfig
from ser_train.corpora import Clip
from ser_train.dataset import extract, rate_range
from ser_train.evaluate import evaluate
from ser_train.export import check_equality, merge_heads, model_files, write_model
from ser_train.frame_model import (TORCH_HINT, FrameMember, FrameModelConfig, averaging_text, masks_text,
                                   torch_available)
from ser_train.kernels import blas_pools, unpinned_warning
from ser_train.metrics import clip_probabilities, emotion_report, pooled, pooled_by_position
from ser_train.models import Candidate, candidates, gender_classifier
from ser_train.noise import COLOURS, Noise, Room, speaker_levels
from ser_train.progress import progress_bar
from ser_train.sessions import (GENDERS, WindowTable, normalized, normalized_inputs, population_stats,
                                simulated_sessions, training_rows, window_table)

log = logging.getLogger(__name__)
LEVEL_SHIFTS_DB = (-10.0, 10.0)   # the held-out clips are also replayed this much quieter and louder
NOISE_REPLAYS = (("white", 20.0), ("pink", 20.0))   # ... and over this noise at this SNR (dB)
NOISE_COPY_SNR_DB = (10.0, 40.0)   # `ser-train fit --noise-copies`: the voice copies' background noise, uniform in dB
NOISE_GENDER_SPAN = 0.05           # ... and the copies this near the real voice also train the gender head
                                   # (`--noisy-gender-copies`: those copies again over noise, for the gender head alone)
REVERB_REPLAYS_S = (0.3, 0.6)      # ... and in reverberant rooms with this RT60 (s), direct-to-reverberant ratio 0 dB
REVERB_COPY_RT60_S = (0.2, 1.0)    # `ser-train fit --reverb-copies`: a voice copy's room, RT60 uniform in s,
REVERB_COPY_DRR_DB = (-3.0, 12.0)  # ... direct-to-reverberant ratio uniform in dB
REVERB_COPY_SHARE = 0.5            # ... for this share of the copies, drawn per copy; the rest stay dry
PITCH_OCTAVE_COST = 0.1           # `ser-train fit --pitch-octave-cost`: FeatureSpec.octave_cost
HELD_OUT_KEY = "held_out_speakers"  # in a kept fold model's card metrics: the speakers its fold replayed
RAVDESS_LICENCE = ("Model weights: CC BY-NC-SA 4.0, inherited from RAVDESS (non-commercial, share-alike). "
                   "Cite Livingstone & Russo (2018), PLoS ONE 13(5): e0196391.")


def licence(corpora: list[str]) -> str:
    """The card's licence line: RAVDESS's terms, which the shipped models inherit; the terms of any other corpus
    (given as ``KIND=DIR``) are named for the user to check, not stated."""
    kinds = sorted({corpus.split("=", 1)[0] for corpus in corpora})
    others = [kind for kind in kinds if kind != "ravdess"]
    if not others:
        return RAVDESS_LICENCE
    inherited = (f"the weights inherit {'that corpus' if len(others) == 1 else 'those corpora'}'s terms and "
                 f"citation requirements; check them before any use.")
    if "ravdess" in kinds:
        return f"{RAVDESS_LICENCE} Also trained on {', '.join(others)}: {inherited}"
    return f"Trained on {', '.join(others)}: {inherited}"


@dataclass(frozen=True)
class FitConfig:
    """What `ser-train fit` does; recorded in the model card."""

    families: tuple[str, ...] = ("logreg", "svc", "mlp", "hgb")
    speakers: tuple[str, ...] = ()   # --speakers KIND=CSV given: where a corpus's speakers and genders came from
    folds: int = 5
    emotions: tuple[str, ...] | None = None   # the labels --emotions chose; None: every label the corpora hold
    session_orders: int = 3
    voice_factors: tuple[float, ...] = (0.8, 0.85, 0.9, 0.95, 1.05, 1.1, 1.15, 1.2)
    copy_gain_db: tuple[float, float] = (-10.0, 20.0)   # each voice copy's session level, uniform in dB
    copy_snr_db: tuple[float, float] | None = None   # each voice copy's background noise, uniform in dB; None: none
    copy_noise_exponent: tuple[float, float] = (0.0, 2.0)    # and its colour, uniform: white 0 .. brown 2
    gender_copy_span: float = 0.0  # voice copies with |factor - 1| <= this also train the gender head; 0: real only
    gender_noise_snr_db: tuple[float, float] | None = None  # the copies within NOISE_GENDER_SPAN again over noise
                                                            # this far below speech, for the gender head only
    band_hz: tuple[float, float] | None = None   # hear all audio through this pass band (telephone line); None: all
    copy_rt60_s: tuple[float, float] | None = None   # a voice copy's reverberant room, RT60 uniform in s; None: dry
    copy_drr_db: tuple[float, float] = REVERB_COPY_DRR_DB   # and its direct-to-reverberant ratio, uniform in dB
    copy_reverb_share: float = REVERB_COPY_SHARE            # the share of the copies heard in a room
    vad_hears_silence: bool = False   # webrtcvad hears every frame (VadConfig.webrtc_hears_silence)
    octave_cost: float = 0.0          # the pitch tracker's (FeatureSpec.octave_cost)
    pitch_peaks_only: bool = False    # and its candidates (FeatureSpec.pitch_peaks_only)
    search_session_orders: int = 1
    seed: int = 0
    prior_windows: float = AdaptConfig.prior_windows
    forgetting: float = AdaptConfig.forgetting
    variance_prior_windows: float | None = None   # the prior's weight on the variance; None: prior_windows
    streaming_cv: bool = True
    frame_model: bool = True       # ensemble the window model with the frame CNN (needs PyTorch)
    frame: FrameModelConfig = FrameModelConfig()


def adapt_config(fit: FitConfig) -> AdaptConfig:
    """The session normalisation that training simulates and the card tells the runtime to serve with."""
    return AdaptConfig(fit.prior_windows, fit.forgetting, variance_prior_windows=fit.variance_prior_windows)


def fit_spec(fit: FitConfig) -> FeatureSpec:
    """The features the model is trained on, and that the card then tells the runtime to compute."""
    return replace(DEFAULT_SPEC, octave_cost=fit.octave_cost, pitch_peaks_only=fit.pitch_peaks_only)


def fit_vad(fit: FitConfig) -> VadConfig:
    """The VAD that cuts the training windows, and that the card then tells the runtime to serve with."""
    return VadConfig(webrtc_hears_silence=fit.vad_hears_silence)


def session_rng(clip: Clip, factor: float, fit: FitConfig, kind: str = "") -> np.random.Generator:
    """The random draws of one speaker's voice copy (a session), for one ``kind`` of draw; seeded by ``fit.seed``."""
    return np.random.default_rng([fit.seed, zlib.crc32(f"{kind}{clip.speaker}@{factor:g}".encode())])


def session_gain_db(clip: Clip, factor: float, fit: FitConfig) -> float:
    """The level of a speaker's voice copy: one draw per (speaker, factor), so a copy is one session
    recorded at one level. Real audio keeps its own level.

    Corpora and microphones differ in speech level (RAVDESS's is low, about -39 dBFS), so
    the copies teach the model that a session's absolute level says little about emotion.
    """
    low, high = fit.copy_gain_db
    if factor == 1.0:
        return 0.0
    return round(float(session_rng(clip, factor, fit).uniform(low, high)), 2)


def session_noise(clip: Clip, factor: float, fit: FitConfig, levels: dict[str, float],
                  gender_copy: bool = False) -> Noise | None:
    """The background noise of a speaker's voice copy: one SNR and colour per (speaker, factor), one noise
    sample per clip, against the speaker's median speech level (``levels``). Real audio keeps its own.

    RAVDESS's pauses are near digital silence, while a live microphone hears a room. A
    ``gender_copy`` (``fit.gender_noise_snr_db``) draws its own SNR, colour and noise.
    """
    snr_db, tag = (fit.gender_noise_snr_db, "gender:") if gender_copy else (fit.copy_snr_db, "")
    if factor == 1.0 or snr_db is None or clip.speaker not in levels:
        return None
    rng = session_rng(clip, factor, fit, f"{tag}noise:")
    snr, exponent = rng.uniform(*snr_db), rng.uniform(*fit.copy_noise_exponent)
    return Noise(round(float(snr), 2), round(float(exponent), 2), round(levels[clip.speaker], 8),
                 zlib.crc32(f"{fit.seed}:{tag}{clip.path.name}@{factor:g}".encode()))


def session_room(clip: Clip, factor: float, fit: FitConfig) -> Room | None:
    """The reverberant room a speaker's voice copy is heard in, or None (dry): one draw per (speaker, factor),
    so a copy is one session in one room, with one impulse response. Real audio keeps its own (a studio's).

    RAVDESS was recorded close to the microphone, while a microphone across a room hears its echo.
    """
    if factor == 1.0 or fit.copy_rt60_s is None:
        return None
    rng = session_rng(clip, factor, fit, "room:")
    if rng.uniform() >= fit.copy_reverb_share:
        return None
    rt60, drr = rng.uniform(*fit.copy_rt60_s), rng.uniform(*fit.copy_drr_db)
    seed = zlib.crc32(f"{fit.seed}:room:{clip.speaker}@{factor:g}".encode())
    return Room(round(float(rt60), 3), seed, round(float(drr), 2))


def near_real_voice(factors: np.ndarray, span: float) -> np.ndarray:
    """Which voice factors lie within ``span`` of the real voice (factor 1)."""
    return np.abs(np.asarray(factors) - 1.0) <= span + 1e-9


def gender_voices(factors: np.ndarray, fit: FitConfig) -> np.ndarray:
    """Which windows may train the gender head: real audio, and copies within ``fit.gender_copy_span`` of it.

    A copy far from the real voice blurs gender cues (factor 0.8 lifts a man's pitch and formants by 25 %),
    while near ones (5 %) keep them and, with ``--noise-copies``, let the gender head hear a room.
    """
    return near_real_voice(factors, fit.gender_copy_span)


def _fit_heads(table: WindowTable, candidate: Candidate, fit: FitConfig, orders: int,
               gender_table: WindowTable | None = None):
    """Fit the emotion and gender heads on ``orders`` simulated session orders of ``table`` (plus cold windows).

    ``gender_table``'s windows (noisy copies) train the gender head too, normalised the same way.
    """
    adapt = adapt_config(fit)
    z, rows, adapter = training_rows(table, adapt, orders, fit.seed)
    emotion = candidate.build(table.speaker[rows], fit.seed).fit(z, table.label[rows])
    known = (table.gender[rows] >= 0) & gender_voices(table.factor[rows], fit)
    inputs, genders = [z[known]], [table.gender[rows][known]]
    if gender_table is not None and len(gender_table.label):
        for extra, extra_rows in simulated_sessions(gender_table, gender_table.x, adapter, orders, fit.seed):
            heard = gender_table.gender[extra_rows] >= 0
            inputs.append(np.vstack(extra)[heard])
            genders.append(gender_table.gender[extra_rows][heard])
    genders = np.concatenate(genders)
    gender = gender_classifier().fit(np.vstack(inputs), genders) if len(np.unique(genders)) == 2 else None
    return emotion, gender, adapter, z


def _fit_frame_member(table: WindowTable, fit: FitConfig) -> FrameMember:
    """Train the frame CNN on ``table``'s windows, normalised as served under several session orders and cold."""
    from ser_train.frame_model import train_frame_member

    adapter = SpeakerAdapter(*population_stats(np.concatenate(table.frames).astype(np.float64)),
                             adapt_config(fit))
    variants: list[list[np.ndarray]] = [[] for _ in range(len(table.label))]
    for inputs, rows in simulated_sessions(table, table.frames, adapter, fit.frame.session_orders, fit.seed):
        for z, row in zip(inputs, rows):
            variants[row].append(z)
    return train_frame_member(variants, table.label, len(table.labels), int((table.factor == 1.0).sum()), adapter,
                              fit.frame, fit.seed)


class Exported(NamedTuple):
    """A written model, with the fitted parts and training inputs its equality check compares against."""

    onnx_path: Path
    graph: onnx.ModelProto
    card: dict
    emotion: ClassifierMixin
    gender: ClassifierMixin | None
    member: FrameMember | None
    z: np.ndarray            # the emotion head's training inputs


def _export(out: Path, table: WindowTable, candidate: Candidate, fit: FitConfig, labels: tuple[str, ...],
            corpora: list[str], metrics: dict, trained_on_rate_hz: int = DEFAULT_SPEC.sample_rate,
            gender_table: WindowTable | None = None) -> Exported:
    """Fit the heads (and the frame member) on ``table`` with the full recipe and write ``out.onnx`` with its card;
    ``gender_table`` also trains the gender head."""
    emotion, gender, adapter, z = _fit_heads(table, candidate, fit, fit.session_orders, gender_table)
    member = _fit_frame_member(table, fit) if fit.frame_model else None
    card = model_card(out.name, labels, adapter, corpora, fit, metrics, gender is not None, member, trained_on_rate_hz)
    graph = merge_heads(emotion, gender, 2 * fit_spec(fit).dim, member)
    onnx_path, _ = write_model(out, graph, card)
    return Exported(onnx_path, graph, card, emotion, gender, member, z)


def speaker_splits(table: WindowTable, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """GroupKFold by speaker over real windows; training rows also take the speakers' perturbed copies,
    test rows are real audio only."""
    real = np.flatnonzero(table.factor == 1.0)
    splits = []
    for _, test in GroupKFold(folds).split(real, groups=table.speaker[real]):
        held = np.isin(table.speaker, table.speaker[real[test]])
        splits.append((np.flatnonzero(~held), real[test]))
    return splits


def _fold_scores(table: WindowTable, candidate: Candidate, fit: FitConfig, splits: list) -> dict:
    """In-memory grouped CV of one candidate (same vectors the pipeline computes).

    For time, the search trains on real audio only with ``fit.search_session_orders``;
    the chosen candidate is then trained with the full recipe.
    """
    collected: dict[str, list] = {"adapt": [], "cold": []}
    for train, test in splits:
        real_train = train[table.factor[train] == 1.0]
        emotion, _, adapter, _ = _fit_heads(table.subset(real_train), candidate, fit, fit.search_session_orders)
        held = table.subset(test)
        for mode in collected:
            z, rows = normalized(held, adapter, mode, seed=fit.seed + 1)
            ids, probs = clip_probabilities(emotion.predict_proba(z), held.clip[rows], held.duration_s[rows])
            truth = np.array([held.label[held.clip == i][0] for i in ids])
            collected[mode].append((truth, probs))
    return {mode: emotion_report(np.concatenate([t for t, _ in parts]), np.vstack([p for _, p in parts]), table.labels)
            for mode, parts in collected.items()}


def model_search(table: WindowTable, fit: FitConfig, splits: list,
                 console: Console | None = None) -> tuple[Candidate, list[dict]]:
    """Score every candidate over ``splits``; the best by adapted + cold UAR, and one row per candidate.

    With ``console`` each candidate's scores are printed; without, a transient progress bar runs.
    """
    pool = candidates(list(fit.families))
    search = []
    with progress_bar("model search", enabled=console is None) as progress:
        task = progress.add_task("candidates", total=len(pool))
        for candidate in pool:
            scores = _fold_scores(table, candidate, fit, splits)
            search.append({"candidate": candidate.name, "family": candidate.family,
                           "adapt_uar": scores["adapt"]["uar"], "cold_uar": scores["cold"]["uar"],
                           "adapt_accuracy": scores["adapt"]["accuracy"], "cold_accuracy": scores["cold"]["accuracy"]})
            if console is not None:
                console.print(f"  {candidate.name:40s} UAR adapted {scores['adapt']['uar']:.3f}  "
                              f"cold {scores['cold']['uar']:.3f}")
            progress.advance(task)
    best = max(range(len(pool)), key=lambda i: search[i]["adapt_uar"] + search[i]["cold_uar"])
    return pool[best], search


def nested_choice(train: WindowTable, fit: FitConfig) -> Candidate:
    """The candidate a search over one fold's training table alone picks: held-out speakers play no part."""
    return model_search(train, fit, speaker_splits(train, min(fit.folds, len(np.unique(train.speaker)))))[0]


def model_card(name: str, labels: tuple[str, ...], adapter, corpora: list[str], fit: FitConfig, metrics: dict,
               gender_trained: bool = True, frame_member: FrameMember | None = None,
               trained_on_rate_hz: int = DEFAULT_SPEC.sample_rate) -> dict:
    spec = fit_spec(fit)
    card = {"format": CARD_FORMAT, "name": name, "labels": list(labels), "gender_labels": list(GENDERS),
            "gender_trained": gender_trained,
            "sample_rate": DEFAULT_SPEC.sample_rate, "trained_on_rate_hz": trained_on_rate_hz,
            "band_hz": list(fit.band_hz) if fit.band_hz else None, "vad": asdict(fit_vad(fit)),
            "feature_spec": asdict(spec), "feature_spec_hash": spec.hash(), "feature_dim": spec.dim,
            "model_input_dim": 2 * spec.dim,
            "adaptation": {"pop_mean": adapter.pop_mean.round(6).tolist(),
                           "pop_std": np.sqrt(adapter.pop_var).round(6).tolist(),
                           "prior_windows": fit.prior_windows, "forgetting": fit.forgetting,
                           **({} if fit.variance_prior_windows is None
                              else {"variance_prior_windows": fit.variance_prior_windows})},
            "training": {"corpora": corpora, "fit_config": asdict(fit), "environment": training_environment(),
                         "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
            "metrics": metrics, "licence": licence(corpora)}
    if frame_member is not None:
        card["frame_model"] = {
            "input": f"frames (1, n_frames, {2 * len(spec.frame_names)}): each frame column speaker-adapted "
                     f"then population z-scored with these statistics and the adaptation prior above",
            "weight": frame_member.weight, "pop_mean": frame_member.adapter.pop_mean.round(6).tolist(),
            "pop_std": np.sqrt(frame_member.adapter.pop_var).round(6).tolist()}
    return card


def training_environment() -> dict:
    """The versions and kernels a fit ran with. Rounding differs between CPUs' kernels: the default's model search
    moved by up to 0.004 UAR from an AMD EPYC to an Intel Xeon until :mod:`ser_train.kernels` pinned OpenBLAS's.
    PyTorch still picks its own by CPU (``torch_cpu``), so the CNN reproduces exactly only on a CPU like the first."""
    import sklearn

    blas = sorted({f"{pool['internal_api']} {pool['version']} {pool.get('architecture', '?')}" for pool in blas_pools()})
    versions = {"python": platform.python_version(), "numpy": np.__version__, "scikit-learn": sklearn.__version__,
                "onnx": onnx.__version__}
    if torch_available():
        import torch
        versions["torch"] = torch.__version__
        versions["torch_cpu"] = torch.backends.cpu.get_cpu_capability()
    return {**versions, "machine": platform.machine(), "cpu": cpu_name(), "blas": blas}


def cpu_name() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows: exact reproduction depends on it."""
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def _noise_text(fit: FitConfig) -> str:
    """How the copies differ from the real audio beyond voice and level, for the card's protocol."""
    noise = "" if fit.copy_snr_db is None else (
        f", over background noise {list(fit.copy_snr_db)} dB below the speaker's median speech level, "
        f"coloured 1/f^{list(fit.copy_noise_exponent)}")
    gender = (f"; the copies within {fit.gender_copy_span:g} of factor 1 also train the gender head"
              if fit.gender_copy_span > 0 else "")
    if fit.gender_noise_snr_db is not None:
        gender += (f"; the copies within {NOISE_GENDER_SPAN:g} of factor 1 are also played over background noise "
                   f"{list(fit.gender_noise_snr_db)} dB below the speaker's median speech level, coloured "
                   f"1/f^{list(fit.copy_noise_exponent)}, to train the gender head alone")
    room = "" if fit.copy_rt60_s is None else (
        f"; {fit.copy_reverb_share:g} of the copies (drawn per copy) are heard in a synthetic reverberant room, "
        f"RT60 {list(fit.copy_rt60_s)} s and direct-to-reverberant ratio {list(fit.copy_drr_db)} dB, one impulse "
        f"response per copy")
    return noise + room + gender


def _gender_table(clips: list[Clip], fit: FitConfig, levels: dict[str, float],
                  labels: tuple[str, ...]) -> WindowTable | None:
    """With ``fit.gender_noise_snr_db``: the voice copies within ``NOISE_GENDER_SPAN`` of the real voice, each at
    its session's level, over background noise; they train the gender head alone."""
    if fit.gender_noise_snr_db is None:
        return None
    factors = np.asarray(fit.voice_factors)
    near = tuple(factors[near_real_voice(factors, NOISE_GENDER_SPAN)].tolist())
    return window_table(extract(clips, fit_spec(fit), factors=near,
                                gain_db=lambda clip, factor: session_gain_db(clip, factor, fit),
                                noise=lambda clip, factor: session_noise(clip, factor, fit, levels, gender_copy=True),
                                band_hz=fit.band_hz, vad=fit_vad(fit)), labels, every_label=False)


def _check_speakers(n: int, fit: FitConfig) -> None:
    if n < 2:
        raise ValueError(f"need at least 2 speakers for speaker-grouped CV, found {n}")
    if fit.streaming_cv and n < 3:
        raise ValueError(f"streaming CV searches models within each fold's training speakers, so it needs at "
                         f"least 3 speakers (found {n}); pass --no-streaming-cv")


def fit_model(clips: list[Clip], corpora: list[str], labels: tuple[str, ...], out: Path, fit: FitConfig,
              console: Console, keep_folds: Path | None = None) -> dict:
    """Search, fit, export and document a model; return its card. ``keep_folds``: keep the streaming CV's
    fold models there."""
    if fit.frame_model and not torch_available():
        raise ValueError(TORCH_HINT)
    warning = unpinned_warning()
    if warning:
        console.print(f"[yellow]warning:[/] {warning}")
    _check_speakers(len({c.speaker for c in clips}), fit)       # before the long extraction
    levels = speaker_levels(clips) if fit.copy_snr_db is not None or fit.gender_noise_snr_db is not None else {}
    rates = rate_range(clips) or (DEFAULT_SPEC.sample_rate, DEFAULT_SPEC.sample_rate)
    rate = min(rates[1], DEFAULT_SPEC.sample_rate)  # widest band heard
    if rates[0] < rate:
        console.print(f"[yellow]warning:[/] the training audio is recorded at {rates[0]} to {rates[1]} Hz, so some "
                      f"clips hold nothing above {rates[0] // 2} Hz: the model may learn a corpus's bandwidth as a cue "
                      f"to its labels. `ser-train resample DIR DIR-LOW --rate {rates[0]}` gives the others that band.")
    band = (f" Training audio recorded at up to {rate} Hz is resampled to {DEFAULT_SPEC.sample_rate} Hz, "
            f"as served: its real audio holds nothing above {rate // 2} Hz (a voice copy at factor f: {rate // 2} / f)."
            if rate < DEFAULT_SPEC.sample_rate else "")
    if fit.band_hz:
        band += (f" All audio, training copies and replays alike, is heard through a {band_text(fit.band_hz)} Hz "
                 f"pass band (a telephone line), as the model hears everything when served.")
    if fit.vad_hears_silence:
        band += " The VAD's webrtcvad hears every frame, not only those that pass its energy gate, as when served."
    if fit.octave_cost:
        band += (f" The pitch tracker favours a period over its multiples with an octave cost of {fit.octave_cost:g} "
                 f"per octave (Praat's), as when served.")
    if fit.pitch_peaks_only:
        band += (" Only the autocorrelation's local maxima are pitch candidates (Praat's), so the search range's edge "
                 "is never read as a pitch, as when served.")
    if fit.variance_prior_windows is not None:
        band += (f" Session normalisation shrinks each session's variance towards the population's with the weight of "
                 f"{fit.variance_prior_windows:g} windows (its mean with {fit.prior_windows:g}), as when served.")
    table = window_table(extract(clips, fit_spec(fit), factors=(1.0, *fit.voice_factors),
                                 gain_db=lambda clip, factor: session_gain_db(clip, factor, fit),
                                 noise=lambda clip, factor: session_noise(clip, factor, fit, levels),
                                 band_hz=fit.band_hz, room=lambda clip, factor: session_room(clip, factor, fit),
                                 vad=fit_vad(fit)), labels)
    gender_table = _gender_table(clips, fit, levels, labels)
    speakers = np.unique(table.speaker)
    _check_speakers(len(speakers), fit)                         # a speaker whose clips hold no speech is gone
    folds = min(fit.folds, len(speakers))
    splits = speaker_splits(table, folds)
    real = table.factor == 1.0
    heard = len(np.unique(table.clip[real]))
    silent = f" ({len(clips) - heard} more without speech, left out)" if heard < len(clips) else ""
    console.print(f"{int(real.sum())} windows from {heard} clips{silent}, {len(speakers)} speakers "
                  f"(+{int((~real).sum())} voice-perturbed training windows, factors {fit.voice_factors}, "
                  f"each speaker's copy at one level in {fit.copy_gain_db} dB{_noise_text(fit)}); "
                  f"{folds}-fold CV grouped by speaker")
    best, search = model_search(table, fit, splits, console)
    console.print(f"chosen: {best.name}")
    frame_extras = f"; masks: {masks_text(fit.frame)}" if fit.frame.time_masks or fit.frame.column_masks else ""
    frame_extras += f"; {averaging_text(fit.frame)}" if fit.frame.average_epochs else ""
    frame_note = (f", together with the frame CNN (trained on the same windows' frames, "
                  f"{fit.frame.session_orders} session orders + cold, {fit.frame.epochs} epochs{frame_extras}; ensemble weight "
                  f"{fit.frame.weight:g}, fixed in advance)") if fit.frame_model else ""
    metrics: dict = {"model_search": search, "chosen": best.name,
                     "protocol": f"{folds}-fold GroupKFold by speaker. Model search: each candidate trained on the "
                                 f"training folds' real audio ({fit.search_session_orders} simulated session order + "
                                 f"cold windows), ranked by adapted + cold UAR on the held-out folds; this picks the "
                                 f"shipped classifier. The streaming CV is nested: inside each fold the search is "
                                 f"rerun on that fold's training speakers alone ({folds}-fold grouped, or one fold per "
                                 f"speaker when fewer), so held-out speakers never influence the choice. The fold's "
                                 f"choice is retrained with voice-perturbed copies (factors {list(fit.voice_factors)}, "
                                 f"each played at one level drawn from {list(fit.copy_gain_db)} dB"
                                 f"{_noise_text(fit)}) "
                                 f"of the training speakers only and {fit.session_orders} session orders{frame_note}, "
                                 f"exported to ONNX, and every held-out clip is replayed through the streaming "
                                 f"pipeline (streaming_cv). Clip decision = duration-weighted mean of its VAD "
                                 f"segments; a clip with no speech counts as an error. The held-out clips are also "
                                 f"replayed at {', '.join(f'{g:+g}' for g in LEVEL_SHIFTS_DB)} dB (uar_at_level) "
                                 f"and over {', '.join(f'{c} noise at {snr:g} dB SNR' for c, snr in NOISE_REPLAYS)} "
                                 f"(in_noise; SNR against the speaker's median speech level), and in synthetic "
                                 f"reverberant rooms with RT60 {', '.join(f'{s:g}' for s in REVERB_REPLAYS_S)} s "
                                 f"and a direct-to-reverberant ratio of 0 dB, one seeded impulse response per clip "
                                 f"(in_room).{band}"}
    if fit.streaming_cv:
        metrics["streaming_cv"] = streaming_cv(clips, table, fit, splits, labels, corpora, console, rate, gender_table,
                                               keep_folds)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as staging:
        # a model already at ``out`` stays until the new one has passed its check
        model = _export(Path(staging) / out.name, table, best, fit, labels, corpora, metrics, rate, gender_table)
        if model.member is None:
            diff = check_equality(model.onnx_path, model.emotion, model.gender, model.z[:500])
        else:
            sample = table.subset(np.arange(min(50, len(model.z))))
            frames, _ = normalized_inputs(sample, sample.frames, model.member.adapter, "cold")
            diff = check_equality(model.onnx_path, model.emotion, model.gender, model.z[:len(frames)], model.member,
                                  frames)
        model.card["metrics"]["onnx_max_abs_diff"] = diff
        model.card["metrics"]["model_bytes"] = model.onnx_path.stat().st_size
        staged = write_model(Path(staging) / out.name, model.graph, model.card)   # the card now holds the check
        for path, final in zip(staged, model_files(out)):
            os.replace(path, final)
    return model.card


def replay_conditions() -> dict[str, tuple[float, tuple[float, float] | None, float | None]]:
    """Every way the streaming CV plays the held-out clips: name -> (gain dB, noise, room RT60)."""
    return {"as recorded": (0.0, None, None), **{f"{gain:+g} dB": (gain, None, None) for gain in LEVEL_SHIFTS_DB},
            **{f"{colour} noise, {snr:g} dB SNR": (0.0, (snr, COLOURS[colour]), None) for colour, snr in NOISE_REPLAYS},
            **{f"room, RT60 {rt60:g} s": (0.0, None, rt60) for rt60 in REVERB_REPLAYS_S}}


REPLAY_MODES = ("adapt", "cold")


def replay_fold(scorer: Scorer, held_clips: list[Clip], seed: int) -> dict[tuple[str, str], dict]:
    """One fold model's reports on its held-out clips, per (condition, mode)."""
    return {(name, mode): evaluate(scorer, held_clips, adapt=mode == "adapt", seed=seed, progress=False,
                                   gain_db=gain, noise=noise, reverb_s=reverb_s)
            for name, (gain, noise, reverb_s) in replay_conditions().items() for mode in REPLAY_MODES}


def summarise_replays(folds: list[dict[tuple[str, str], dict]], chosen: list[str]) -> dict:
    """The card's streaming-CV figures from every fold's :func:`replay_fold` reports, pooled over folds."""
    conditions = replay_conditions()
    pools = {key: pooled([fold[key] for fold in folds]) for key in folds[0]}
    heard = {name: {**{mode: pools[(name, mode)]["uar"] for mode in REPLAY_MODES},
                    **{f"gender_{mode}": pools[(name, mode)]["gender_accuracy"] for mode in REPLAY_MODES},
                    "no_speech": pools[(name, "adapt")]["no_speech"]}  # the VAD hears the same audio cold
             for name in conditions}
    return {**{mode: pools[("as recorded", mode)] for mode in REPLAY_MODES}, "fold_chosen": chosen,
            "adapt_by_session_position": pooled_by_position([fold[("as recorded", "adapt")]["by_session_position"]
                                                             for fold in folds]),
            "uar_at_level": {f"{gain:+g} dB": {key: heard[f"{gain:+g} dB"][key]
                                               for key in (*REPLAY_MODES, "no_speech")} for gain in LEVEL_SHIFTS_DB},
            "in_noise": {name: heard[name] for name, (_, noise, _) in conditions.items() if noise is not None},
            "in_room": {name: heard[name] for name, (_, _, reverb_s) in conditions.items() if reverb_s is not None}}


def streaming_cv(clips: list[Clip], table: WindowTable, fit: FitConfig, splits: list, labels: tuple[str, ...],
                 corpora: list[str], console: Console, trained_on_rate_hz: int = DEFAULT_SPEC.sample_rate,
                 gender_table: WindowTable | None = None, keep_folds: Path | None = None) -> dict:
    """Per fold, search on its training speakers, export that choice and replay the held-out speakers' clips
    (:func:`replay_conditions`): as recorded, ``LEVEL_SHIFTS_DB`` louder or quieter (``uar_at_level``), over
    ``NOISE_REPLAYS`` (``in_noise``: UAR and gender accuracy) and in rooms with ``REVERB_REPLAYS_S`` (``in_room``,
    the same): robustness to the recording level, to a room's noise and to its echo.
    The gender head also learns from ``gender_table``'s windows of the fold's training speakers.
    ``keep_folds``: write fold k's model there as ``fold<k>.onnx``, its card naming its held-out speakers
    (``ser-train evaluate --held-out`` replays them); otherwise they go to a temporary folder."""
    folds, chosen = [], []
    with tempfile.TemporaryDirectory() if keep_folds is None else nullcontext(keep_folds) as where:
        folder = Path(where)
        folder.mkdir(parents=True, exist_ok=True)
        for k, (train, test) in enumerate(splits):
            fold = table.subset(train)
            choice = nested_choice(fold, fit)
            chosen.append(choice.name)
            fold_gender = (None if gender_table is None else
                           gender_table.subset(np.flatnonzero(np.isin(gender_table.speaker, fold.speaker))))
            held = set(table.speaker[test].tolist())
            exported = _export(folder / f"fold{k + 1}", fold, choice, fit, labels, corpora,
                               {HELD_OUT_KEY: sorted(held)}, trained_on_rate_hz, fold_gender)
            if exported.gender is None and len(np.unique(table.gender[table.gender >= 0])) == 2:
                console.print(f"  [yellow]warning:[/] fold {k + 1}'s training speakers are not of both known genders, "
                              f"so its model has no gender head and its held-out speakers add nothing to the "
                              f"streaming CV's gender accuracy (more speakers{' or fewer --folds' if len(splits) > 2 else ''} "
                              f"mix them)")
            path = exported.onnx_path
            folds.append(replay_fold(Scorer(path), [c for c in clips if c.speaker in held], fit.seed))
            console.print(f"  streaming CV fold {k + 1}/{len(splits)} ({choice.name}): UAR adapted "
                          f"{folds[-1][('as recorded', 'adapt')]['uar']:.3f}  "
                          f"cold {folds[-1][('as recorded', 'cold')]['uar']:.3f}")
    return summarise_replays(folds, chosen)
