"""The frame-level ensemble member: a small 1-D CNN over a window's normalised frames (PyTorch, exported to ONNX).

Its input per 20 ms hop is the window's frame columns, speaker-adapted and population
z-scored (the same :class:`realtime.adapt.SpeakerAdapter` maths as the window vectors),
so it sees how features move inside a window, which the window functionals summarise away.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np

from realtime.adapt import SpeakerAdapter
from ser_train.progress import progress_bar

TORCH_HINT = ("the frame model needs PyTorch: pip install torch "
              "(CPU build: --index-url https://download.pytorch.org/whl/cpu), or pass --no-frame-model")
ONNX_OPSET = 17
PREDICT_BATCH = 64            # windows per forward pass when scoring (sorted by length, so little padding)
FRAMES_NAME, LOGITS_NAME = "frames", "logits"


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class FrameModelConfig:
    """The CNN recipe (fixed in advance, not tuned on held-out speakers); recorded in the model card."""

    weight: float = 0.5            # its share of the ensemble's emotion probabilities
    epochs: int = 40
    batch: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.3
    input_dropout: float = 0.1
    label_smoothing: float = 0.1
    min_crop: float = 0.8          # random crops keep 80-100 % of a window's frames
    items_per_real_window: int = 3  # with voice copies, each epoch samples 3x the real windows
    session_orders: int = 2
    time_masks: int = 0            # SpecAugment-style masks per training item (0: none; --frame-masks sets them)
    time_mask_fraction: float = 0.1  # each time mask zeroes up to this share of the item's frames
    column_masks: int = 0
    column_mask_width: int = 4     # each column mask zeroes up to this many frame columns, in both input halves
    average_epochs: int = 0        # weight averaging (SWA) over this many extra epochs (0: none; --frame-averaging)
    average_lr_fraction: float = 0.25  # their constant learning rate, as a share of learning_rate


MASKED_FRAME_CONFIG = dict(time_masks=2, column_masks=2)   # what `ser-train fit --frame-masks` sets
AVERAGED_FRAME_CONFIG = dict(average_epochs=10)           # what `ser-train fit --frame-averaging` sets


def masks_text(config: FrameModelConfig) -> str:
    """The training masks in words, for the CLI's help and the card's protocol."""
    return (f"per item {config.time_masks} stretches of up to {config.time_mask_fraction:.0%} of its frames and "
            f"{config.column_masks} runs of up to {config.column_mask_width} frame columns set to the mean")


def averaging_text(config: FrameModelConfig) -> str:
    """The weight averaging in words, for the CLI's help and the card's protocol."""
    return (f"weights averaged (SWA) over {config.average_epochs} more epochs at a constant "
            f"{config.average_lr_fraction:g} of the peak learning rate, then the batch-norm statistics recomputed")


def _network(channels: int, n_classes: int, config: FrameModelConfig):
    """Three dilated conv layers (96, 96, 128 channels), mean+std pooling over time, two linear layers."""
    import torch
    from torch import nn

    class FrameCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.convs = nn.ModuleList([nn.Conv1d(channels, 96, 5, padding=2),
                                        nn.Conv1d(96, 96, 5, padding=4, dilation=2),
                                        nn.Conv1d(96, 128, 3, padding=3, dilation=3)])
            self.norms = nn.ModuleList([nn.BatchNorm1d(96), nn.BatchNorm1d(96), nn.BatchNorm1d(128)])
            self.drop, self.input_drop = nn.Dropout(config.dropout), nn.Dropout(config.input_dropout)
            self.hidden, self.out = nn.Linear(256, 128), nn.Linear(128, n_classes)

        def forward(self, x, mask=None):  # x (batch, time, channels); mask (batch, 1, time) marks real frames
            h = self.input_drop(x.transpose(1, 2))
            for conv, norm in zip(self.convs, self.norms):
                h = self.drop(torch.relu(norm(conv(h))))
                if mask is not None:  # padding stays zero, as beyond the ends of a window scored alone
                    h = h * mask
            if mask is None:
                mean, var = h.mean(2), h.var(2, unbiased=False)
            else:
                n = mask.sum(2).clamp(min=1.0)
                mean = (h * mask).sum(2) / n
                var = ((h - mean[:, :, None]) ** 2 * mask).sum(2) / n
            pooled = torch.cat([mean, torch.sqrt(var + 1e-5)], 1)
            return self.out(self.drop(torch.relu(self.hidden(pooled))))

    return FrameCNN()


def _padded(inputs: list[np.ndarray]):
    """A zero-padded batch ``(n, T, C)`` and its mask ``(n, 1, T)``."""
    import torch

    longest = max(len(x) for x in inputs)
    batch = np.zeros((len(inputs), longest, inputs[0].shape[1]), np.float32)
    mask = np.zeros((len(inputs), 1, longest), np.float32)
    for k, x in enumerate(inputs):
        batch[k, :len(x)], mask[k, 0, :len(x)] = x, 1.0
    return torch.from_numpy(batch), torch.from_numpy(mask)


class FrameMember:
    """A trained frame CNN with the frame adapter it was trained with."""

    def __init__(self, network, adapter: SpeakerAdapter, config: FrameModelConfig) -> None:
        self.network, self.adapter, self.config = network, adapter, config

    @property
    def weight(self) -> float:
        return self.config.weight

    def predict_proba(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Emotion probabilities ``(n, n_classes)`` for normalised frame matrices (sorted by length to pad little)."""
        import torch

        self.network.eval()
        order = np.argsort([len(x) for x in inputs])
        out = np.zeros((len(inputs), self.network.out.out_features))
        with torch.no_grad():
            for k in range(0, len(inputs), PREDICT_BATCH):
                rows = order[k:k + PREDICT_BATCH]
                x, mask = _padded([inputs[i] for i in rows])
                out[rows] = torch.softmax(self.network(x, mask), 1).numpy()
        return out

    def to_onnx(self) -> "onnx.ModelProto":  # noqa: F821
        """The network as ONNX: ``frames`` ``(1, T, C)`` -> ``logits``; any T."""
        import onnx
        import torch

        self.network.eval()
        channels = self.network.convs[0].in_channels
        buffer = io.BytesIO()
        with warnings.catch_warnings():  # the TorchScript exporter is deprecated; the new one needs onnxscript
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(self.network, (torch.zeros(1, 50, channels),), buffer, input_names=[FRAMES_NAME],
                              output_names=[LOGITS_NAME], dynamic_axes={FRAMES_NAME: {1: "time"}},
                              opset_version=ONNX_OPSET, dynamo=False)
        return onnx.load_from_string(buffer.getvalue())


def train_frame_member(variants: list[list[np.ndarray]], labels: np.ndarray, n_classes: int, real_windows: int,
                       adapter: SpeakerAdapter, config: FrameModelConfig, seed: int) -> FrameMember:
    """Train the CNN; ``variants[i]`` holds window i's inputs under each simulated session (one drawn per epoch).

    With more windows than ``real_windows`` (voice copies), each epoch samples
    ``items_per_real_window * real_windows`` of them.
    """
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = _network(variants[0][0].shape[1], n_classes, config)
    optimiser = torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    n = len(variants)
    per_epoch = min(n, config.items_per_real_window * real_windows) if n > real_windows else n
    steps = config.epochs * int(np.ceil(per_epoch / config.batch))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.learning_rate, total_steps=steps)
    targets = torch.from_numpy(np.asarray(labels, dtype=np.int64))

    def batches():
        """One epoch of training batches: sampled windows, each a random session's input, cropped and masked."""
        chosen = rng.permutation(n)[:per_epoch]
        for start in range(0, len(chosen), config.batch):
            rows = chosen[start:start + config.batch]
            x, mask = _padded([_masked(_crop(variants[i][rng.integers(len(variants[i]))], config.min_crop, rng),
                                       config, rng) for i in rows])
            yield x, mask, targets[rows]

    def train_epoch(scheduled: bool) -> None:
        network.train()
        for x, mask, target in batches():
            loss = F.cross_entropy(network(x, mask), target, label_smoothing=config.label_smoothing)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if scheduled:
                schedule.step()

    with progress_bar("frame CNN") as progress:
        task = progress.add_task("epochs", total=config.epochs + config.average_epochs)
        for _ in range(config.epochs):
            train_epoch(scheduled=True)
            progress.advance(task)
        if config.average_epochs:
            for group in optimiser.param_groups:
                group["lr"] = config.average_lr_fraction * config.learning_rate
            average = WeightAverage(network)
            for _ in range(config.average_epochs):
                train_epoch(scheduled=False)
                average.add(network)
                progress.advance(task)
            average.load_into(network)
            _recompute_norms(network, batches())
    return FrameMember(network, adapter, config)


class WeightAverage:
    """The running mean of a network's parameters over the snapshots added (SWA, Izmailov et al. 2018)."""

    def __init__(self, network) -> None:
        import torch

        self.mean, self.count = [torch.zeros_like(p) for p in network.parameters()], 0

    def add(self, network) -> None:
        import torch

        self.count += 1
        with torch.no_grad():
            for mean, p in zip(self.mean, network.parameters()):
                mean += (p - mean) / self.count

    def load_into(self, network) -> None:
        import torch

        with torch.no_grad():
            for mean, p in zip(self.mean, network.parameters()):
                p.copy_(mean)


def _recompute_norms(network, batches) -> None:
    """Batch-norm statistics for averaged weights: a plain mean over one epoch's batches, as in SWA."""
    import torch

    momenta = [norm.momentum for norm in network.norms]
    for norm in network.norms:
        norm.reset_running_stats()
        norm.momentum = None
    network.train()
    with torch.no_grad():
        for x, mask, _ in batches:
            network(x, mask)
    for norm, momentum in zip(network.norms, momenta):
        norm.momentum = momentum


def _crop(x: np.ndarray, min_crop: float, rng: np.random.Generator) -> np.ndarray:
    """A random contiguous crop keeping ``min_crop``-1 of the frames (windows of 20 frames or fewer stay whole)."""
    if min_crop >= 1.0 or len(x) <= 20:
        return x
    keep = int(len(x) * rng.uniform(min_crop, 1.0))
    start = rng.integers(0, len(x) - keep + 1)
    return x[start:start + keep]


def _masked(x: np.ndarray, config: FrameModelConfig, rng: np.random.Generator) -> np.ndarray:
    """``x`` with SpecAugment-style masks set to 0 (the normalised mean): stretches of frames, and frame columns.

    ``x``'s columns are the adapted frame columns, then the same columns population-standardised;
    a column mask zeroes a column in both halves. Without masks in ``config``, ``x`` itself, drawing nothing.
    """
    if not config.time_masks and not config.column_masks:
        return x
    x = x.copy()
    n, half = len(x), x.shape[1] // 2
    for _ in range(config.time_masks):
        width = rng.integers(0, int(n * config.time_mask_fraction) + 1)
        start = rng.integers(0, n - width + 1)
        x[start:start + width] = 0.0
    for _ in range(config.column_masks):
        width = rng.integers(0, config.column_mask_width + 1)
        start = rng.integers(0, half - width + 1)
        x[:, start:start + width] = x[:, half + start:half + start + width] = 0.0
    return x
