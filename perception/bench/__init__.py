"""``perception bench``: how fast the model, the service and two plain servers are on this machine.

Sections (each measured side by side in one run, medians of interleaved repeats):

- ``model``: ONNX Runtime latency and throughput per batch size and precision variant;
- ``tasks``: one multi-task pass against three single-task networks of the same backbone;
- ``service``: the HTTP service end to end over loopback at increasing concurrency, in its own default
  configuration, against the raw in-process model; with the load generator on the server's cores, and
  (``--pin``) with the server and the raw model pinned to some cores and the load generator to others;
- ``plain``: the same file served by a plain FastAPI + ONNX Runtime handler (``benchmarks/plain_ort_server.py``);
- ``eager``: the same network served the tutorial way (PyTorch eager in a FastAPI handler).

``perception.bench.run`` ties them together and writes JSON, Markdown and a plot.
"""
