"""Shipped models: ONNX graphs with their JSON model cards (installed as realtime.models)."""
