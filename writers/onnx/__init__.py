"""ONNX writer: the common graph saved as a checked `.onnx` file."""

from writers.onnx.writer import write_onnx

__all__ = ["write_onnx"]
