"""Inference: predictor, ensemble decoding, ONNX export and fast path."""
