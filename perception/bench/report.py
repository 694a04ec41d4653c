"""The benchmark's verdicts (targets, PASS/MISS with the measured figure), Markdown and a plot."""

from __future__ import annotations

from pathlib import Path

from perception.bench.pinning import cpu_list

TARGETS = {
    "service_vs_raw": 0.90,  # service frames/s at saturation over raw in-process throughput, same max batch
    "service_vs_raw_pinned": 0.90,  # the same with server + raw model on some cores, the load generator on others
    "latency_overhead_ms": 10.0,  # single-frame p50 end to end minus model latency at batch 1
    "vs_plain": 1.2,  # service frames/s over the plain FastAPI + ONNX Runtime server's, at equal or better p99
    "vs_eager": 2.0,  # service frames/s over the PyTorch-eager server's, at equal or better p99
    "multi_task_ratio": 0.40,  # one multi-task pass over three single-task passes
    "int8_speedup": 1.8,  # INT8 over FP32 throughput
}


def _target(name: str, goal: str, measured: str, ok: bool | None, **values) -> dict:
    return {"name": name, "target": goal, "measured": measured, "pass": ok, **values}


def lone_frame(rows: list[dict]) -> dict:
    """The single-frame level with the fewest requests in flight (concurrency 1 in every plan)."""
    return min(rows, key=lambda r: r["concurrency"])


def head_to_head(ours: list[dict], theirs: list[dict]) -> tuple[dict, dict] | None:
    """(our row, their row) at the highest concurrency both ran, single frames: the same number of
    requests in flight, so frames/s and p99 compare directly. None when they share no level."""
    mine = {r["concurrency"]: r for r in ours}
    common = [r for r in theirs if r["concurrency"] in mine]
    if not common:
        return None
    other = max(common, key=lambda r: r["concurrency"])
    return mine[other["concurrency"]], other


def _versus(name: str, goal_key: str, service: dict, other: dict, with_p50: bool = False) -> dict | None:
    pair = head_to_head(service["single"], other["single"])
    if pair is None:
        return None
    mine, theirs = pair
    ratio = mine["frames_per_s"] / max(theirs["frames_per_s"], 1e-9)
    ok = ratio >= TARGETS[goal_key] and mine["p99_ms"] <= theirs["p99_ms"]
    measured = (f"c={mine['concurrency']}: {mine['frames_per_s']:.1f} vs {theirs['frames_per_s']:.1f} frames/s = "
                f"{ratio:.2f}×, p99 {mine['p99_ms']:.0f} vs {theirs['p99_ms']:.0f} ms")  # fmt: skip
    if with_p50:
        measured += (f"; single-frame p50 {lone_frame(service['single'])['p50_ms']:.1f} vs "
                     f"{lone_frame(other['single'])['p50_ms']:.1f} ms")  # fmt: skip
    goal = f"≥ {TARGETS[goal_key]:g} × frames/s at equal or better p99"
    return _target(name, goal, measured, ok, value=round(ratio, 3))


def _vs_raw(name: str, goal_key: str, service: dict, how: str) -> dict:
    ratio = service["saturation_frames_per_s"] / service["raw_frames_per_s"]["mean"]
    return _target(
        name, f"≥ {TARGETS[goal_key]:.2f} × raw in-process throughput{how}",
        f"{service['saturation_frames_per_s']:.1f} / {service['raw_frames_per_s']['mean']:.1f} frames/s = "
        f"{ratio:.2f}×", ratio >= TARGETS[goal_key], value=round(ratio, 3))  # fmt: skip


def evaluate_targets(report: dict) -> list[dict]:
    """Each target with what was measured; a target whose sections were not run is left out (the
    pinned one too when the machine had no core to spare for the load generator)."""
    out = []
    served = report["settings"].get("served_variant", "fp32")
    service, pinned, plain, eager = (report.get(k) for k in ("service", "service_pinned", "plain", "eager"))
    model_only, tasks = report.get("model_only"), report.get("tasks")

    if service:
        out.append(_vs_raw("service vs raw model, cores shared", "service_vs_raw", service,
                           " (load generator on the same cores)"))  # fmt: skip
    if pinned:
        cores = pinned["cores"]
        out.append(_vs_raw("service vs raw model, pinned", "service_vs_raw_pinned", pinned,
                           f" (server and raw on cores {cpu_list(cores['server'])}, load generator on "
                           f"{cpu_list(cores['load_generator'])})"))  # fmt: skip
    if service and model_only and "1" in model_only:
        p50 = lone_frame(service["single"])["p50_ms"]
        model_ms = model_only["1"][served]["latency_ms"]
        extra = p50 - model_ms
        out.append(_target(
            "single-frame p50 latency", f"≤ model latency + {TARGETS['latency_overhead_ms']:.0f} ms",
            f"{p50:.1f} ms vs model {model_ms:.1f} ms: +{extra:.1f} ms", extra <= TARGETS["latency_overhead_ms"],
            value=round(extra, 1)))  # fmt: skip
    if service and plain and (row := _versus("service vs plain FastAPI + ORT", "vs_plain", service, plain, True)):
        out.append(row)
    if service and eager and (row := _versus("service vs PyTorch eager", "vs_eager", service, eager)):
        out.append(row)
    if tasks:
        out.append(_target(
            "multi-task vs three single-task", f"≤ {TARGETS['multi_task_ratio']:.2f} × det + seg + depth",
            f"{tasks['latency_ms']['multi-task']:.1f} / {tasks['three_single_ms']:.1f} ms = {tasks['ratio']:.2f}×",
            tasks["ratio"] <= TARGETS["multi_task_ratio"], value=tasks["ratio"]))  # fmt: skip
    if model_only and all("int8" in row for row in model_only.values()):
        best = {v: max(max(row[v]["frames_per_s"], row[v].get("frames_per_s_in_flight", 0))
                       for row in model_only.values()) for v in ("fp32", "int8")}  # fmt: skip
        ratio = best["int8"] / best["fp32"]
        out.append(_target(
            "INT8 vs FP32", f"≥ {TARGETS['int8_speedup']:.1f} × throughput (best batch and policy of each)",
            f"{best['int8']:.1f} / {best['fp32']:.1f} frames/s = {ratio:.2f}×", ratio >= TARGETS["int8_speedup"],
            value=round(ratio, 3)))  # fmt: skip
    return out


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else "PASS" if ok else "MISS"


def markdown(report: dict, plot_name: str) -> str:
    m, model, settings = report["machine"], report["model"], report["settings"]
    lines = [
        f"# Benchmark: {model['name']} {model['version']} at {model['input'][1]}×{model['input'][0]}"
        + (" (random-init weights)" if model["random_init"] else ""),
        "",
        f"{m['cpu']}; load average at start {' / '.join(f'{x:.2f}' for x in m['load_average_start'])} "
        f"(1/5/15 min); {m['date']}; commit {m.get('git', 'unknown')}, recipe {model.get('recipe_hash', '?')}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + ".",
        f"ONNX Runtime CPU, {settings['threads']} intra-op threads; service: {settings['served_variant']}, "
        + service_settings(settings)
        + f". Full run {report.get('seconds', 0):.0f} s.",
        "",
        "## Targets",
        "",
        "| target | goal | measured | verdict |",
        "| --- | --- | --- | --- |",
        *(f"| {t['name']} | {t['target']} | {t['measured']} | {_verdict(t['pass'])} |" for t in report["targets"]),
    ]
    if report["notes"]:
        lines += ["", *(f"- {n}" for n in report["notes"])]
    if "model_only" in report:
        first = next(iter(report["model_only"].values()))
        variants, in_flight = list(first), "frames_per_s_in_flight" in next(iter(first.values()))
        n = settings.get("concurrent_batches", 1)
        heads = [f"{v} ms | {v} frames/s" + (f" | {v} frames/s, {n} in flight" if in_flight else "") for v in variants]
        lines += ["", "## Model only (ONNX Runtime, in process)", "", "| batch | " + " | ".join(heads) + " |",
                  "| --- " * (1 + (3 if in_flight else 2) * len(variants)) + "|"]  # fmt: skip
        for batch, row in report["model_only"].items():
            keys = ("latency_ms", "frames_per_s", "frames_per_s_in_flight")[: 3 if in_flight else 2]
            cells = [" | ".join(f"{row[v][k]:.1f}" for k in keys) for v in variants]
            lines.append(f"| {batch} | {' | '.join(cells)} |")
    if "tasks" in report:
        t = report["tasks"]
        lines += ["", "## One multi-task pass against three single-task networks (FP32, batch 1)", "",
                  "| network | latency ms |", "| --- | --- |",
                  *(f"| {name} | {ms:.1f} |" for name, ms in t["latency_ms"].items()),
                  f"| det + seg + depth | {t['three_single_ms']:.1f} |",
                  f"| ratio | {t['ratio']:.2f} |"]  # fmt: skip
    if "service" in report:
        lines += shared_and_pinned(report)
    loads = []
    for key, name in (("service", "service"), ("service_pinned", "service, pinned"), ("plain", "plain FastAPI + ORT"),
                      ("eager", "PyTorch eager")):  # fmt: skip
        if key in report:
            loads += [(name, r) for r in report[key]["single"] + report[key].get("multi", [])]
    if loads:
        lines += ["", "## End to end over loopback (1280×720 JPEGs, every output encoded)", "",
                  "| server | frames/request | concurrency | requests | frames/s | p50 ms | p95 ms | p99 ms | errors |",
                  "| --- " * 9 + "|"]  # fmt: skip
        for name, r in loads:
            cells = [name, r["frames_per_request"], r["concurrency"], r["requests"], f"{r['frames_per_s']:.1f}",
                     r["p50_ms"], r["p95_ms"], r["p99_ms"], r["errors"]]  # fmt: skip
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if "service" in report:
        rows = report["service"]["single"] + report["service"]["multi"]
        stages = [k for k in rows[0]["server_stage_mean_ms"] if k != "total_ms"] if rows else []
        lines += ["", "Where a frame's time goes in the service (server-side means per frame, ms):", "",
                  "| frames/request | concurrency | " + " | ".join(s.removesuffix("_ms") for s in stages) + " |",
                  "| --- " * (2 + len(stages)) + "|"]  # fmt: skip
        for r in rows:
            means = r["server_stage_mean_ms"]
            cells = [str(means.get(s, "")) for s in stages]
            lines.append(f"| {r['frames_per_request']} | {r['concurrency']} | " + " | ".join(cells) + " |")
        raw = report["service"]["raw_frames_per_s"]
        lines += ["", f"Raw in-process throughput, {settings.get('concurrent_batches', 1)} runs of batch "
                      f"{settings['max_batch']} in flight: {raw['before']:.1f} frames/s "
                      f"before the service run, {raw['after']:.1f} after (mean {raw['mean']:.1f})."]  # fmt: skip
        lines += cpu_budget(report)
    lines += ["", f"![latency against load]({plot_name})", ""]
    return "\n".join(lines)


def service_settings(settings: dict) -> str:
    """ "max batch 8 (service default), ..." for the header: each setting and where it came from."""
    sources = settings.get("sources", {})

    def where(key: str) -> str:
        return f" ({sources[key]})" if key in sources else ""

    return (f"max batch {settings['max_batch']}{where('max_batch')}, "
            f"{settings.get('concurrent_batches', 1)} batches in flight{where('concurrent_batches')}, "
            f"max queue delay {settings['max_queue_delay_ms']} ms{where('max_queue_delay_ms')}")  # fmt: skip


def shared_and_pinned(report: dict) -> list[str]:
    """Service ÷ raw model with the load generator on the server's cores and, pinned, on its own."""
    runs = [("cores shared", report["service"])]
    if "service_pinned" in report:
        runs.append(("pinned", report["service_pinned"]))
    all_cores = cpu_list(range(report["machine"]["cores"]))
    lines = ["", "## The service against the raw model: cores shared with the load generator, and pinned", "",
             "| run | server + raw model cores | load generator cores | intra-op threads | raw frames/s before / "
             "after | service frames/s at saturation | service / raw | server CPU ms per frame | raw CPU ms per "
             "frame |", "| --- " * 9 + "|"]  # fmt: skip
    for name, run in runs:
        cores = run.get("cores", {})
        server_cores = cpu_list(cores["server_read_back"] or cores["server"]) if cores else all_cores
        load_cores = cpu_list(cores["load_generator_read_back"]) if cores else all_cores
        raw = run["raw_frames_per_s"]
        top = max(run["single"], key=lambda r: r["frames_per_s"])
        server_cpu = top.get("cpu_ms_per_frame", {}).get("server")
        cells = [name, server_cores, load_cores, run["threads"], f"{raw['before']:.1f} / {raw['after']:.1f}",
                 f"{run['saturation_frames_per_s']:.1f}", f"{run['saturation_frames_per_s'] / raw['mean']:.2f}",
                 "—" if server_cpu is None else f"{server_cpu:.2f}", f"{run['raw_cpu_ms_per_frame']:.2f}"]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if "service_pinned" not in report and (note := report["settings"].get("pin", {}).get("note")):
        lines += ["", note[0].upper() + note[1:] + "."]
    return lines


def cpu_budget(report: dict) -> list[str]:
    """Where the cores' time goes per frame at saturation (the busiest single-frame level), against
    the raw model's and the budget the service-vs-raw target leaves."""
    service = report["service"]
    rows = [r for r in service["single"] if "server" in r.get("cpu_ms_per_frame", {})]
    if not rows or "raw_cpu_ms_per_frame" not in service:
        return []
    top = max(rows, key=lambda r: r["frames_per_s"])
    cpu, work = top["cpu_ms_per_frame"], service["frame_work_cpu_ms"]
    cores = report["machine"]["cores"]
    rest = cpu["server"] - cpu["server_event_loop"] - work["decode_letterbox"] - work["map_encode"]
    budget = 1000 * cores / (TARGETS["service_vs_raw"] * service["raw_frames_per_s"]["mean"])
    entries = [
        ("raw model in process, same batch policy", service["raw_cpu_ms_per_frame"]),
        ("service, all threads", cpu["server"]),
        ("· event loop: HTTP, FastAPI, JSON", cpu["server_event_loop"]),
        ("· decode + letterbox (timed alone, one thread)", work["decode_letterbox"]),
        ("· map back + encode every output (timed alone)", work["map_encode"]),
        ("· inference and the rest (the remainder)", rest),
        ("load generator, on the same cores", cpu["load_generator"]),
        ("service + load generator", cpu["server"] + cpu["load_generator"]),
        (f"{cores} cores' time per frame at {top['frames_per_s']:.1f} frames/s", 1000 * cores / top["frames_per_s"]),
        (f"budget per frame at {TARGETS['service_vs_raw']:.2f} × raw", budget),
    ]
    return ["", f"CPU per frame at saturation (single frames, c={top['concurrency']}; /proc and process time):", "",
            "| where | CPU ms per frame |", "| --- | --- |",
            *(f"| {name} | {value:.2f} |" for name, value in entries)]  # fmt: skip


def write_markdown(report: dict, path: Path, plot_name: str) -> str:
    text = markdown(report, plot_name)
    path.write_text(text)
    return text


def write_plot(report: dict, path: Path) -> None:
    """Latency percentiles and frames per second against concurrency, one line per server and request kind."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = []
    if "service" in report:
        s = report["service"]
        series += [("service, 1 frame", s["single"]), (f"service, {s['multi'][0]['frames_per_request']} frames"
                                                       if s["multi"] else "service, multi", s["multi"])]  # fmt: skip
    if "service_pinned" in report:
        series.append(("service pinned, 1 frame", report["service_pinned"]["single"]))
    if "plain" in report:
        series.append(("plain FastAPI + ORT, 1 frame", report["plain"]["single"]))
    if "eager" in report:
        series.append(("PyTorch eager, 1 frame", report["eager"]["single"]))
    fig, (lat, fps) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, rows in series:
        if not rows:
            continue
        x = [r["concurrency"] for r in rows]
        line = lat.plot(x, [r["p50_ms"] for r in rows], "o-", label=f"{label} p50")[0]
        lat.plot(x, [r["p99_ms"] for r in rows], "x--", color=line.get_color(), label=f"{label} p99")
        fps.plot(x, [r["frames_per_s"] for r in rows], "o-", color=line.get_color(), label=label)
    if "service" in report:
        fps.axhline(report["service"]["raw_frames_per_s"]["mean"], color="grey", ls=":", label="raw model")
    if "service_pinned" in report:
        fps.axhline(report["service_pinned"]["raw_frames_per_s"]["mean"], color="grey", ls="-.",
                    label="raw model, pinned")  # fmt: skip
    for ax, title in ((lat, "latency per request (ms)"), (fps, "frames per second")):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%d"))
        ax.set_xlabel("concurrent requests")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    lat.set_yscale("log")
    model = report["model"]
    cpu = report["machine"]["cpu"].split(",")[0]
    title = f"{model['name']} {model['version']} at {model['input'][1]}×{model['input'][0]} — {cpu}"
    fig.suptitle(f"{title}, {report['machine']['cores']} cores", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
