"""Export the emotion and gender heads as one ONNX graph, checked against scikit-learn."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.base import ClassifierMixin

from realtime.scorer import EMOTION_OUTPUT, FRAMES_INPUT, GENDER_OUTPUT, INPUT_NAME, Scorer, onnx_digest
from ser_train.frame_model import LOGITS_NAME, FrameMember

TARGET_OPSET = 17
EQUALITY_ATOL = 1e-4


class ExportError(RuntimeError):
    """The exported graph does not reproduce scikit-learn's probabilities."""


def _head(estimator: ClassifierMixin, dim: int, prefix: str) -> onnx.ModelProto:
    """Convert one classifier (probabilities as a plain tensor) and prefix every name in it.

    skl2onnx's SVC converter reads ``probA_``/``probB_``, which scikit-learn 1.9 deprecates; our
    SVCs are calibrated outside, so both are empty and the warning says nothing about our model.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Attribute `prob[AB]_` was deprecated", category=FutureWarning)
        model = convert_sklearn(estimator, initial_types=[(INPUT_NAME, FloatTensorType([None, dim]))],
                                target_opset={"": TARGET_OPSET, "ai.onnx.ml": 3}, options={"zipmap": False})
    return onnx.compose.add_prefix(model, prefix)


def _uniform_gender() -> list[onnx.NodeProto]:
    """Nodes giving ``gender_probabilities`` = 0.5 per row, for training data with one gender only."""
    return [
        helper.make_node("Shape", [INPUT_NAME], ["gen_shape"]),
        helper.make_node("Constant", [], ["gen_zero"], value=helper.make_tensor("z", onnx.TensorProto.INT64, [1], [0])),
        helper.make_node("Constant", [], ["gen_one"], value=helper.make_tensor("o", onnx.TensorProto.INT64, [1], [1])),
        helper.make_node("Constant", [], ["gen_two"], value=helper.make_tensor("t", onnx.TensorProto.INT64, [1], [2])),
        helper.make_node("Slice", ["gen_shape", "gen_zero", "gen_one"], ["gen_rows"]),
        helper.make_node("Concat", ["gen_rows", "gen_two"], ["gen_out_shape"], axis=0),
        helper.make_node("ConstantOfShape", ["gen_out_shape"], [GENDER_OUTPUT],
                         value=helper.make_tensor("half", onnx.TensorProto.FLOAT, [1], [0.5])),
    ]


def _frame_blend(member: FrameMember, window_emotion: str) -> tuple[onnx.ModelProto, list[onnx.NodeProto]]:
    """The frame CNN (prefixed) and nodes blending its softmax with the window model's emotion probabilities."""
    cnn = onnx.compose.add_prefix(member.to_onnx(), "frm_")
    w = member.weight
    nodes = [helper.make_node("Identity", [FRAMES_INPUT], [cnn.graph.input[0].name], name="fanout_frames"),
             *cnn.graph.node,
             helper.make_node("Softmax", [f"frm_{LOGITS_NAME}"], ["frm_probabilities"], axis=-1),
             helper.make_node("Constant", [], ["frm_weight"], value=helper.make_tensor("w", onnx.TensorProto.FLOAT, [], [w])),
             helper.make_node("Constant", [], ["win_weight"],
                              value=helper.make_tensor("v", onnx.TensorProto.FLOAT, [], [1.0 - w])),
             helper.make_node("Mul", ["frm_probabilities", "frm_weight"], ["frm_share"]),
             helper.make_node("Mul", [window_emotion, "win_weight"], ["win_share"]),
             helper.make_node("Add", ["win_share", "frm_share"], [EMOTION_OUTPUT], name="blend")]
    return cnn, nodes


def merge_heads(emotion: ClassifierMixin, gender: ClassifierMixin | None, dim: int,
                frame_member: FrameMember | None = None) -> onnx.ModelProto:
    """One graph: input ``features`` (n, dim) -> ``emotion_probabilities`` and ``gender_probabilities``.

    ``gender=None`` (no second gender in the training data) yields a uniform gender output.
    With ``frame_member`` the graph also takes ``frames`` (1, T, channels), and the emotion
    output is the weighted mean of both members' probabilities (one window per call).
    """
    heads = {EMOTION_OUTPUT: _head(emotion, dim, "emo_")}
    if gender is not None:
        heads[GENDER_OUTPUT] = _head(gender, dim, "gen_")
    nodes, initializers, outputs, opsets = [], [], [], {}
    if gender is None:
        nodes.extend(_uniform_gender())
        outputs.append(helper.make_tensor_value_info(GENDER_OUTPUT, onnx.TensorProto.FLOAT, [None, None]))
    for public, head in heads.items():
        graph = head.graph
        nodes.append(helper.make_node("Identity", [INPUT_NAME], [graph.input[0].name], name=f"fanout_{public}"))
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
        probabilities = next(o.name for o in graph.output if o.name.endswith("probabilities"))
        blended = public == EMOTION_OUTPUT and frame_member is not None
        nodes.append(helper.make_node("Identity", [probabilities], ["win_emotion" if blended else public],
                                      name=f"out_{public}"))
        outputs.append(helper.make_tensor_value_info(public, onnx.TensorProto.FLOAT, [None, None]))
        opsets.update({o.domain: max(o.version, opsets.get(o.domain, 0)) for o in head.opset_import})
    inputs = [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, [None, dim])]
    ir_version = heads[EMOTION_OUTPUT].ir_version
    if frame_member is not None:
        cnn, blend = _frame_blend(frame_member, "win_emotion")
        nodes.extend(blend)
        initializers.extend(cnn.graph.initializer)
        channels = cnn.graph.input[0].type.tensor_type.shape.dim[2].dim_value
        inputs.append(helper.make_tensor_value_info(FRAMES_INPUT, onnx.TensorProto.FLOAT, [1, None, channels]))
        opsets.update({o.domain: max(o.version, opsets.get(o.domain, 0)) for o in cnn.opset_import})
        ir_version = max(ir_version, cnn.ir_version)
    graph = helper.make_graph(nodes, "ser_emotion_gender", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                              producer_name="ser-train")
    model.ir_version = ir_version
    flush_subnormals(model)
    onnx.checker.check_model(model)
    return model


def flush_subnormals(model: onnx.ModelProto) -> int:
    """Set every float32 weight below float32's normal range to zero, in place; return how many.

    An MLP's decayed weights (about 1e-40) land there when cast from float64. They
    change no output, but CPUs multiply subnormals slowly: the default model's first
    layer, 71 % subnormal, took 0.67 ms per call on an Intel Xeon, 0.03 ms once flushed.
    """
    flushed = 0
    for initializer in model.graph.initializer:
        weights = numpy_helper.to_array(initializer)
        if weights.dtype != np.float32:
            continue
        tiny = (weights != 0) & (np.abs(weights) < np.finfo(np.float32).tiny)
        if tiny.any():
            flushed += int(np.count_nonzero(tiny))
            initializer.CopyFrom(numpy_helper.from_array(np.where(tiny, np.float32(0), weights), initializer.name))
    return flushed


def model_files(out: Path) -> tuple[Path, Path]:
    """``out.onnx`` and ``out.json``: suffixes added to ``out``'s whole name (``model-v1.5`` keeps its ``.5``)."""
    return out.with_name(out.name + ".onnx"), out.with_name(out.name + ".json")


def write_model(out: Path, model: onnx.ModelProto, card: dict) -> tuple[Path, Path]:
    """Write ``out.onnx`` and ``out.json``, the card (updated in place) with the graph's checksum; return both paths."""
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx_path, card_path = model_files(out)
    graph = model.SerializeToString()
    card["onnx_sha256"] = onnx_digest(graph)
    onnx_path.write_bytes(graph)
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    return onnx_path, card_path


def check_equality(onnx_path: Path, emotion: ClassifierMixin, gender: ClassifierMixin | None, x: np.ndarray,
                   frame_member: FrameMember | None = None, frames: list[np.ndarray] | None = None) -> float:
    """Max absolute difference between the runtime's ONNX scores and sklearn's predict_proba
    (blended with PyTorch's, for a frame ensemble, whose ``frames`` pair with the rows of ``x``).

    Raises
    ------
    ExportError
        When the difference exceeds ``EQUALITY_ATOL``.
    """
    scorer = Scorer(onnx_path)
    x = x.astype(np.float32)
    want_emotion = emotion.predict_proba(x)
    if frame_member is None:
        got_emotion, got_gender = scorer.score(x)
    else:
        frames = [f.astype(np.float32) for f in frames]
        want_emotion = (1 - frame_member.weight) * want_emotion + frame_member.weight * frame_member.predict_proba(frames)
        scored = [scorer.score(x[i:i + 1], frames[i][None]) for i in range(len(x))]
        got_emotion, got_gender = (np.vstack(part) for part in zip(*scored))
    want_gender = np.full((len(x), 2), 0.5) if gender is None else gender.predict_proba(x)
    diff = max(np.abs(got_emotion - want_emotion).max(), np.abs(got_gender - want_gender).max())
    if diff > EQUALITY_ATOL:
        raise ExportError(f"ONNX probabilities differ from scikit-learn by {diff:.2e} (> {EQUALITY_ATOL})")
    return float(diff)
