"""Figures as a rich table, and a markdown report with PNG plots from a model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.table import Table

from realtime.channel import band_text
from ser_train.frame_model import FrameModelConfig


def figures_table(report: dict) -> Table:
    """The per-class table `ser-train evaluate` prints, with the headline figures in the title."""
    gender = "n/a" if report["gender_accuracy"] is None else f"{report['gender_accuracy']:.3f}"
    ece = "n/a" if report["ece"] is None else f"{report['ece']:.3f}"
    title = (f"n={report['n']}  accuracy {report['accuracy']:.3f}  UAR {report['uar']:.3f}  gender {gender}  "
             f"ECE {ece}  no speech {report['no_speech']}  skipped {report['skipped']}  "
             + (f"unreadable {report['unreadable']}  " if report.get("unreadable") else "") +
             f"({', '.join(_conditions(report))})")
    table = Table(title=title)
    for column in ("emotion", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "emotion" else "right")
    for label, row in report["per_class"].items():
        table.add_row(label, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(row["support"]))
    table.caption = _position_note(report.get("by_session_position")).strip() or None
    return table


def _conditions(report: dict) -> list[str]:
    """How the clips were played: the mode, then any level shift or noise."""
    shown = ["adapted" if report["adapt"] else "cold"]
    if report.get("gain_db"):
        shown.append(f"{report['gain_db']:+g} dB")
    if report.get("reverb_s"):
        drr = report.get("drr_db") or 0.0
        shown.append(f"room RT60 {report['reverb_s']:g} s" + (f", DRR {drr:+g} dB" if drr else ""))
    if report.get("noise"):
        shown.append(f"noise {report['noise']['snr_db']:g} dB SNR, 1/f^{report['noise']['exponent']:g}")
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
               horizontal: bool = False) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(names) + 2 if horizontal else 4.2))
    width = 0.8 / len(series)
    positions = np.arange(len(names))
    for k, (label, values) in enumerate(series.items()):
        offset = positions + (k - (len(series) - 1) / 2) * width
        (ax.barh if horizontal else ax.bar)(offset, values, width, label=label)
    if horizontal:
        ax.set_yticks(positions, names, fontsize=8)
        ax.set_xlabel(ylabel)
        ax.set_xlim(0, 1)
    else:
        ax.set_xticks(positions, names, rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(axis="x" if horizontal else "y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(card_path: Path, out: Path) -> Path:
    """Write ``report.md`` and its plots for the model whose card is ``card_path``."""
    import matplotlib

    matplotlib.use("Agg")
    card = json.loads(card_path.read_text())
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
    f1 = {mode: [_f1(np.array(stream[mode]["confusion"]), i) for i in range(len(labels))] for mode in ("adapt", "cold")}
    _plot_bars(labels, {"adapted": f1["adapt"], "cold": f1["cold"]}, "per-class F1 (streaming CV)", "F1",
               out / "per_class_f1.png")
    search = metrics["model_search"]
    _plot_bars([r["candidate"] for r in search], {"adapted UAR": [r["adapt_uar"] for r in search],
                                                  "cold UAR": [r["cold_uar"] for r in search]},
               "classifier comparison (grouped CV)", "UAR", out / "classifiers.png", horizontal=True)
    _plot_bars(["adapted", "cold"], {"gender accuracy": [stream["adapt"]["gender_accuracy"] or 0,
                                                         stream["cold"]["gender_accuracy"] or 0]},
               "gender accuracy (streaming CV)", "accuracy", out / "gender.png")
    rows = "\n".join(f"| {m} | {stream[m]['n']} | {stream[m]['accuracy']:.3f} | {stream[m]['uar']:.3f} | "
                     f"{stream[m]['gender_accuracy']} | {stream[m]['ece_mean_over_folds']} | "
                     f"{', '.join(f'{u:.3f}' for u in stream[m]['fold_uar'])} |" for m in ("adapt", "cold"))
    search_rows = "\n".join(f"| {r['candidate']} | {r['adapt_uar']:.3f} | {r['cold_uar']:.3f} |" for r in search)
    text = f"""# Model report: {card['name']}

Trained on {', '.join(card['training']['corpora'])}; labels: {', '.join(card['labels'])}.
Protocol: {metrics['protocol']} The streaming figures below come from that replay (VAD
windows, features, adaptation, ONNX scoring: the same pipeline as `ser replay`).

| mode | clips | accuracy | UAR | gender accuracy | ECE (mean over folds) | UAR per fold |
|---|---|---|---|---|---|---|
{rows}
{_position_note(stream.get("adapt_by_session_position"))}{_level_note(stream)}
![confusion, adapted](confusion_adapt.png) ![confusion, cold](confusion_cold.png)

![per-class F1](per_class_f1.png)

## Classifier comparison (in-memory grouped CV on the same folds)

| candidate | adapted UAR | cold UAR |
|---|---|---|
{search_rows}

Chosen: `{metrics['chosen']}`.{_fold_choices(stream)}{_ensemble_note(card)}
ONNX vs the trained models' own probabilities, max |diff|: {metrics.get('onnx_max_abs_diff')}.
Reproduce: `{reproduce_command(card)}`{_resample_note(card)}
Model size: {metrics.get('model_bytes', 0) / 1e6:.2f} MB.

![classifiers](classifiers.png) ![gender](gender.png)

Licence: {card['licence']}
"""
    path = out / "report.md"
    path.write_text(text)
    return path


def reproduce_command(card: dict) -> str:
    """The `ser-train fit` call that rebuilds a model from its card."""
    corpora = " ".join(f"--corpus {c}" for c in card["training"]["corpora"])
    config = card["training"]["fit_config"]
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
    if config.get("variance_prior_windows") is not None:
        noise += f" --variance-prior-windows {config['variance_prior_windows']:g}"
    seed = f" --seed {config['seed']}" if config.get("seed", 0) else ""
    band = f" --band {band_text(config['band_hz'])}" if config.get("band_hz") else ""
    return (f"ser-train fit {corpora} --families {','.join(config['families'])}{frame}{noise}{band}{seed} "
            f"--out models/{card['name']}")


def _resample_note(card: dict) -> str:
    """How the training corpus was brought to a lower rate, when the card says it was."""
    rate = card.get("trained_on_rate_hz", card["sample_rate"])
    if rate >= card["sample_rate"]:
        return ""
    return f", on a corpus copy made with `ser-train resample ORIGINAL COPY --rate {rate}`."


def _level_note(stream: dict) -> str:
    """The held-out clips' UAR when replayed quieter, louder and over noise, when the card records it."""
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
    share = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    return "; ".join(f"{name}: UAR adapted {u['adapt']:.3f}, cold {u['cold']:.3f}, gender accuracy adapted "
                     f"{share(u['gender_adapt'])}, cold {share(u['gender_cold'])}{_silent(u)}"
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
    return (f" It is ensembled with the frame CNN: emotion = {1 - w:g} x chosen + {w:g} x CNN probabilities "
            f"(weight fixed in advance); gender comes from the gender head, a logistic regression on the same "
            "adapted features.")


def _f1(confusion: np.ndarray, i: int) -> float:
    tp = confusion[i, i]
    precision = tp / max(confusion[:, i].sum(), 1)
    recall = tp / max(confusion[i].sum(), 1)
    return float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0
