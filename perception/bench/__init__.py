"""``perception bench``: how fast the model, the service and a plain PyTorch server are on this machine.

Sections (each measured side by side in one run, medians of interleaved repeats):

- ``model``: ONNX Runtime latency and throughput per batch size and precision variant;
- ``tasks``: one multi-task pass against three single-task networks of the same backbone;
- ``service``: the HTTP service end to end over loopback at increasing concurrency;
- ``eager``: the same network served the tutorial way (PyTorch eager in a FastAPI handler).

``perception.bench.run`` ties them together and writes JSON, Markdown and a plot.
"""
