"""Export the emotion and gender heads as one ONNX graph, checked against scikit-learn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.base import ClassifierMixin

from realtime.scorer import EMOTION_OUTPUT, GENDER_OUTPUT, INPUT_NAME, Scorer

TARGET_OPSET = 17
EQUALITY_ATOL = 1e-4


class ExportError(RuntimeError):
    """The exported graph does not reproduce scikit-learn's probabilities."""


def _head(estimator: ClassifierMixin, dim: int, prefix: str) -> onnx.ModelProto:
    """Convert one classifier (probabilities as a plain tensor) and prefix every name in it."""
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


def merge_heads(emotion: ClassifierMixin, gender: ClassifierMixin | None, dim: int) -> onnx.ModelProto:
    """One graph: input ``features`` (n, dim) -> ``emotion_probabilities`` and ``gender_probabilities``.

    ``gender=None`` (no second gender in the training data) yields a uniform gender output.
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
        nodes.append(helper.make_node("Identity", [probabilities], [public], name=f"out_{public}"))
        outputs.append(helper.make_tensor_value_info(public, onnx.TensorProto.FLOAT, [None, None]))
        opsets.update({o.domain: max(o.version, opsets.get(o.domain, 0)) for o in head.opset_import})
    graph = helper.make_graph(nodes, "ser_emotion_gender",
                              [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, [None, dim])],
                              outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                              producer_name="ser-train")
    model.ir_version = heads[EMOTION_OUTPUT].ir_version
    onnx.checker.check_model(model)
    return model


def write_model(out: Path, model: onnx.ModelProto, card: dict) -> tuple[Path, Path]:
    """Write ``out.onnx`` and ``out.json``; return both paths."""
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx_path, card_path = out.with_suffix(".onnx"), out.with_suffix(".json")
    onnx_path.write_bytes(model.SerializeToString())
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    return onnx_path, card_path


def check_equality(onnx_path: Path, emotion: ClassifierMixin, gender: ClassifierMixin | None, x: np.ndarray) -> float:
    """Max absolute difference between the runtime's ONNX scores and sklearn's predict_proba.

    Raises
    ------
    ExportError
        When the difference exceeds ``EQUALITY_ATOL``.
    """
    from realtime.features import DEFAULT_SPEC

    scorer = Scorer(onnx_path, DEFAULT_SPEC)
    x = x.astype(np.float32)
    got_emotion, got_gender = scorer.score(x)
    want_gender = np.full((len(x), 2), 0.5) if gender is None else gender.predict_proba(x)
    diff = max(np.abs(got_emotion - emotion.predict_proba(x)).max(), np.abs(got_gender - want_gender).max())
    if diff > EQUALITY_ATOL:
        raise ExportError(f"ONNX probabilities differ from scikit-learn by {diff:.2e} (> {EQUALITY_ATOL})")
    return float(diff)
