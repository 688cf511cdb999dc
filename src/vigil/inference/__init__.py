"""Inference without torch: model metadata, ONNX Runtime scorer, decisions, batch scoring."""
