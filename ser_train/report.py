"""Figures as a rich table, and a markdown report with PNG plots from a model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.table import Table

from realtime.channel import band_text
from ser_train.fit import FitConfig
from ser_train.frame_model import FrameModelConfig
from ser_train.metrics import pooled_f1


def figures_headline(report: dict) -> str:
    """The line of headline figures `ser-train evaluate` prints above its table (unwrapped, so a pipe keeps it whole)."""
    return (f"n={report['n']}  accuracy {report['accuracy']:.3f}  UAR {report['uar']:.3f}  "
            f"gender {figure(report['gender_accuracy'], '.3f')}  ECE {figure(report['ece'], '.3f')}  "
            f"no speech {report['no_speech']}  skipped {report['skipped']}  "
            + (f"unreadable {report['unreadable']}  " if report.get("unreadable") else "") +
            f"({', '.join(_conditions(report))})")


def figures_table(report: dict) -> Table:
    """The per-class table `ser-train evaluate` prints below :func:`figures_headline`."""
    table = Table()
    for column in ("emotion", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "emotion" else "right")
    for label, row in report["per_class"].items():
        table.add_row(label, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(row["support"]))
    table.caption = _position_note(report.get("by_session_position")).strip() or None
    return table


def _conditions(report: dict) -> list[str]:
    """How the clips were played: the mode, then any level shift, room, noise and phone band."""
    shown = ["adapted" if report["adapt"] else "cold"]
    if report.get("gain_db"):
        shown.append(f"{report['gain_db']:+g} dB")
    if report.get("reverb_s"):
        drr = report.get("drr_db") or 0.0
        shown.append(f"room RT60 {report['reverb_s']:g} s" + (f", DRR {drr:+g} dB" if drr else ""))
    if report.get("noise"):
        shown.append(f"noise {report['noise']['snr_db']:g} dB SNR, 1/f^{report['noise']['exponent']:g}")
    if report.get("band_hz"):
        shown.append(f"through {band_text(report['band_hz'])} Hz")
    return shown


def _plot_confusion(confusion: np.ndarray, labels: list[str], title: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    share = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i, j in np.ndindex(share.shape):
        ax.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center", fontsize=8,
                color="white" if share[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_bars(names: list[str], series: dict[str, list[float]], title: str, ylabel: str, path: Path,
               horizontal: bool = False, marked: str | None = None, zoom: bool = False, fmt: str = "%.2f") -> None:
    """Grouped bars with their values printed on them; ``marked`` names a bar group to set in bold
    (the chosen candidate); ``zoom`` fits the value axis to the data instead of 0-1."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(names) + 2 if horizontal else 4.4))
    width = 0.8 / len(series)
    positions = np.arange(len(names))
    for k, (label, values) in enumerate(series.items()):
        offset = positions + (k - (len(series) - 1) / 2) * width
        bars = (ax.barh if horizontal else ax.bar)(offset, values, width, label=label)
        ax.bar_label(bars, fmt=fmt, fontsize=7, padding=2)
    values = [v for vs in series.values() for v in vs]
    low = max(0.0, np.floor(20 * min(values)) / 20 - 0.05) if zoom else 0.0
    limits = (low, 1.08 if not zoom else min(1.08, np.ceil(20 * max(values)) / 20 + 0.05))
    if horizontal:
        ax.set_yticks(positions, names, fontsize=8)
        ax.set_xlabel(ylabel)
        ax.set_xlim(*limits)
        ax.invert_yaxis()   # the first name at the top, as in the report's table
    else:
        ax.set_xticks(positions, names, rotation=30 if max(map(len, names)) > 8 else 0,
                      ha="right" if max(map(len, names)) > 8 else "center")
        ax.set_ylabel(ylabel)
        ax.set_ylim(*limits)
    value_axis = ax.xaxis if horizontal else ax.yaxis
    value_axis.set_ticks([t for t in value_axis.get_ticklocs() if t <= 1.0 + 1e-9])   # the headroom is for the labels
    for tick in (ax.get_yticklabels() if horizontal else ax.get_xticklabels()):
        if tick.get_text() == marked:
            tick.set_fontweight("bold")
    ax.set_title(title, loc="left", pad=18)   # the legend goes between the title and the axes
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=len(series), frameon=False, fontsize=8,
              borderaxespad=0.2)
    ax.grid(axis="x" if horizontal else "y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _gender_by_condition(stream: dict) -> dict[str, tuple[float, float]]:
    """Gender accuracy (adapted, cold) on clean audio and in each noise and room the card records, where
    measured: a model without a gender head, or folds trained on one gender alone, have none."""
    rows = {"clean": (stream["adapt"]["gender_accuracy"], stream["cold"]["gender_accuracy"])}
    for kind in ("in_noise", "in_room"):
        for condition, figures in stream.get(kind, {}).items():
            rows[condition] = (figures.get("gender_adapt"), figures.get("gender_cold"))
    return {name: pair for name, pair in rows.items() if None not in pair}


def write_report(card_path: Path, out: Path) -> Path:
    """Write ``report.md`` and its plots for the model whose card is ``card_path``."""
    import matplotlib

    matplotlib.use("Agg")
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{card_path} is not JSON ({exc}), so not a model card") from None
    if not isinstance(card, dict) or not isinstance(card.get("metrics"), dict):
        raise ValueError(f"{card_path} is not a model card: it has no metrics")
    metrics = card["metrics"]
    stream = metrics.get("streaming_cv")
    if not stream:
        raise ValueError(f"{card_path} has no streaming CV figures; refit without --no-streaming-cv")
    out.mkdir(parents=True, exist_ok=True)
    labels = stream["adapt"]["labels"]
    for mode in ("adapt", "cold"):
        _plot_confusion(np.array(stream[mode]["confusion"]), labels,
                        f"{'adapted' if mode == 'adapt' else 'cold'}: UAR {stream[mode]['uar']:.3f}",
                        out / f"confusion_{mode}.png")
    f1 = {mode: pooled_f1(stream[mode]) for mode in ("adapt", "cold")}
    _plot_bars(labels, {"adapted": f1["adapt"], "cold": f1["cold"]}, "per-class F1 (streaming CV)", "F1",
               out / "per_class_f1.png")
    search = metrics["model_search"]
    _plot_bars([r["candidate"] for r in search], {"adapted UAR": [r["adapt_uar"] for r in search],
                                                  "cold UAR": [r["cold_uar"] for r in search]},
               "classifier comparison (grouped CV; chosen in bold)", "UAR", out / "classifiers.png",
               horizontal=True, marked=metrics["chosen"], zoom=True, fmt="%.3f")
    gender_plot, gender = "", _gender_by_condition(stream)
    if gender:
        _plot_bars(list(gender), {"adapted": [a for a, _ in gender.values()], "cold": [c for _, c in gender.values()]},
                   "gender accuracy (streaming CV)", "accuracy", out / "gender.png", zoom=True, fmt="%.3f")
        gender_plot = " ![gender](gender.png)"
    rows = "\n".join(f"| {m} | {stream[m]['n']} | {stream[m]['accuracy']:.3f} | {stream[m]['uar']:.3f} | "
                     f"{figure(stream[m]['gender_accuracy'])} | {figure(stream[m]['ece_mean_over_folds'])} | "
                     f"{', '.join(f'{u:.3f}' for u in stream[m]['fold_uar'])} |" for m in ("adapt", "cold"))
    f1_rows = "\n".join(f"| {label} | {f1['adapt'][i]:.3f} | {f1['cold'][i]:.3f} |" for i, label in enumerate(labels))
    search_rows = "\n".join(f"| {r['candidate']} | {r['adapt_uar']:.3f} | {r['cold_uar']:.3f} |" for r in search)
    text = f"""# Model report: {card['name']}

Trained on {', '.join(card['training']['corpora'])}; labels: {', '.join(card['labels'])}.
Protocol: {metrics['protocol']} The streaming figures below come from that replay (VAD
windows, features, adaptation, ONNX scoring: the same pipeline as `ser replay`).

| mode | clips | accuracy | UAR | gender accuracy | ECE (mean over folds) | UAR per fold |
|---|---|---|---|---|---|---|
{rows}
{_position_note(stream.get("adapt_by_session_position"))}{_level_note(stream)}
Confusion matrices: rows are the true emotion, and each row's shares of the clips sum to 1.

![confusion, adapted](confusion_adapt.png) ![confusion, cold](confusion_cold.png)

| emotion | F1 adapted | F1 cold |
|---|---|---|
{f1_rows}

![per-class F1](per_class_f1.png)

## Classifier comparison (in-memory grouped CV on the same folds)

| candidate | adapted UAR | cold UAR |
|---|---|---|
{search_rows}

Chosen: `{metrics['chosen']}`.{_fold_choices(stream)}{_ensemble_note(card)}
ONNX vs the trained models' own probabilities, max |diff|: {metrics.get('onnx_max_abs_diff')}.
Reproduce: `{reproduce_command(card)}`{_resample_note(card)}
Model size: {metrics.get('model_bytes', 0) / 1e6:.2f} MB.

![classifiers](classifiers.png){gender_plot}

Licence: {card['licence']}
"""
    path = out / "report.md"
    path.write_text(text)
    return path


def reproduce_command(card: dict) -> str:
    """The `ser-train fit` call that rebuilds a model from its card."""
    config = card["training"]["fit_config"]
    corpora = " ".join([*(f"--corpus {c}" for c in card["training"]["corpora"]),
                        *(f"--speakers {s}" for s in config.get("speakers", ()))])
    frame = ""
    if not config.get("frame_model", False):
        frame = " --no-frame-model"
    else:
        if config["frame"]["epochs"] != FrameModelConfig.epochs:
            frame += f" --frame-epochs {config['frame']['epochs']}"
        frame += " --frame-masks" if config["frame"].get("time_masks") else ""
        frame += " --frame-averaging" if config["frame"].get("average_epochs") else ""
    noise = " --noise-copies" if config.get("copy_snr_db") else ""
    noise += " --noisy-gender-copies" if config.get("gender_noise_snr_db") else ""
    noise += " --reverb-copies" if config.get("copy_rt60_s") else ""
    noise += " --gender-copies" if config.get("gender_copy_span") and not config.get("copy_snr_db") else ""
    noise += " --vad-hears-silence" if config.get("vad_hears_silence") else ""
    noise += " --pitch-octave-cost" if config.get("octave_cost") else ""
    noise += " --pitch-peaks-only" if config.get("pitch_peaks_only") else ""
    if config.get("variance_prior_windows") is not None:
        noise += f" --variance-prior-windows {config['variance_prior_windows']:g}"
    seed = f" --seed {config['seed']}" if config.get("seed", 0) else ""
    band = f" --band {band_text(config['band_hz'])}" if config.get("band_hz") else ""
    folds = f" --folds {config['folds']}" if config.get("folds", FitConfig.folds) != FitConfig.folds else ""
    emotions = f" --emotions {','.join(config['emotions'])}" if config.get("emotions") else ""
    return (f"ser-train fit {corpora}{emotions} --families {','.join(config['families'])}{folds}{frame}{noise}{band}"
            f"{seed} --out models/{card['name']}")


def _resample_note(card: dict) -> str:
    """How the training corpus was brought to a lower rate, when the card says it was."""
    rate = card.get("trained_on_rate_hz", card["sample_rate"])
    if rate >= card["sample_rate"]:
        return ""
    return f", on a corpus copy made with `ser-train resample ORIGINAL COPY --rate {rate}`."


def _level_note(stream: dict) -> str:
    """The held-out clips' UAR when replayed quieter, louder, over noise and in rooms, when the card records it."""
    levels = stream.get("uar_at_level")
    if not levels:
        return ""
    shifts = "; ".join(f"{shift}: adapted {u['adapt']:.3f}, cold {u['cold']:.3f}{_silent(u)}"
                       for shift, u in levels.items())
    note = f"\nThe same held-out clips replayed at another recording level, UAR: {shifts}.\n"
    if stream.get("in_noise"):
        note += (f"\nAnd over background noise (SNR against the speaker's median speech level): "
                 f"{_heard(stream['in_noise'])}.\n")
    if stream.get("in_room"):
        note += (f"\nAnd in synthetic reverberant rooms (direct-to-reverberant ratio 0 dB): "
                 f"{_heard(stream['in_room'])}.\n")
    if stream.get("note"):
        note += f"\n{stream['note']}\n"
    return note


def _position_note(spans: list[dict] | None) -> str:
    """Adapted figures by the clip's place in its speaker's session, when the card or report records them."""
    if not spans:
        return ""
    shown = "; ".join(f"{span['positions']}: UAR {span['uar']:.3f} ({span['n']} clips)" for span in spans)
    return (f"\nAdapted, by the clip's place in its speaker's session (clips in random order, so the first "
            f"ones are scored before the session's statistics fill in): {shown}.\n")


def _silent(figures: dict) -> str:
    """How many clips of a replay had no speech detected (each an error), when there were any."""
    silent = figures.get("no_speech")
    if not silent:
        return ""
    return " (1 clip without speech, counted as an error)" if silent == 1 else \
        f" ({silent} clips without speech, counted as errors)"


def _heard(conditions: dict) -> str:
    """UAR and gender accuracy per replay condition (no gender head: n/a)."""
    return "; ".join(f"{name}: UAR adapted {u['adapt']:.3f}, cold {u['cold']:.3f}, gender accuracy adapted "
                     f"{figure(u['gender_adapt'], '.3f')}, cold {figure(u['gender_cold'], '.3f')}{_silent(u)}"
                     for name, u in conditions.items())


def _fold_choices(stream: dict) -> str:
    """What each fold's nested search chose, when the card records it."""
    chosen = stream.get("fold_chosen")
    if not chosen:
        return ""
    return f" In the streaming CV, each fold's own search chose: {', '.join(f'`{c}`' for c in chosen)}."


def _ensemble_note(card: dict) -> str:
    """How the frame CNN joins the chosen classifier, if it does."""
    if "frame_model" not in card:
        return ""
    w = card["frame_model"]["weight"]
    gender = ("; gender comes from the gender head, a logistic regression on the same adapted features"
              if card.get("gender_trained", True) else "")
    return (f" It is ensembled with the frame CNN: emotion = {1 - w:g} x chosen + {w:g} x CNN probabilities "
            f"(weight fixed in advance){gender}.")


def figure(value: float | None, spec: str = "") -> str:
    """A figure formatted with ``spec``, or n/a where there is none (no gender head, no gender labels)."""
    return "n/a" if value is None else format(value, spec)

