"""The perception HTTP service. Imports no torch: ONNX Runtime, OpenCV and NumPy only."""
