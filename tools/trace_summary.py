"""Where a student's wait goes, read from a Chrome DevTools performance trace.

    python -m tools.trace_summary trace.json

`python -m tools.browser_times --trace trace.json` records the trace and marks each interaction in the page
(`performance.mark`: START + name before the action, END + name once it is painted). For every interaction
this splits the marked window into the time the page's main thread was busy — running JavaScript (Streamlit,
Plotly, Vega), parsing and compiling it, style and layout, paint, garbage collection — and the time it sat
idle, which is the time spent waiting for the server: its script, and the messages on their way.
A page open is measured from the browser's navigationStart to its END mark.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

START, END = "gv>", "gv<"
KINDS = ("script", "parse & compile", "style & layout", "paint", "GC")
# Chrome's names for the work on a renderer's main thread; everything else inside a task counts as script.
_KIND_OF = {
    "parse & compile": ("ParseHTML", "v8.compile", "v8.compileModule", "V8.CompileCode", "v8.parseOnBackground",
                        "ParseAuthorStyleSheet", "CacheScript", "v8.produceCache", "v8.deserializeOnBackground"),
    "style & layout": ("Layout", "UpdateLayoutTree", "RecalculateStyles", "UpdateLayerTree", "PrePaint",
                       "HitTest", "ScheduleStyleRecalculation", "InvalidateLayout", "Document::updateStyle",
                       "LocalFrameView::layout", "IntersectionObserverController::computeIntersections"),
    "paint": ("Paint", "PaintImage", "Layerize", "Commit", "CompositeLayers", "UpdateLayer", "Decode Image",
              "PaintSetup", "RasterTask"),
}
_TASKS = ("RunTask", "ThreadControllerImpl::RunTask", "ThreadPool_RunTask")


def kind(name: str) -> str:
    if "GC" in name or name.startswith("V8.GC"):
        return "GC"
    return next((k for k, names in _KIND_OF.items() if name in names), "script")


def _main_threads(events: list[dict]) -> set[tuple[int, int]]:
    return {(e["pid"], e["tid"]) for e in events
            if e.get("ph") == "M" and e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"}


def _windows(events: list[dict]) -> list[tuple[str, tuple[int, int], float, float]]:
    """(interaction, main thread, start µs, end µs) for each marked interaction, in trace order."""
    marks = sorted((e for e in events if e.get("cat", "").find("blink.user_timing") >= 0
                    and e.get("ph") in ("R", "I", "n", "b", "X")), key=lambda e: e["ts"])
    opened, out, navigations = {}, [], []
    for e in marks:
        name = e["name"]
        if name == "navigationStart":
            navigations.append(e)
        elif name.startswith(START):
            opened[(e["pid"], name[len(START):])] = e
        elif name.startswith(END):
            label = name[len(END):]
            first = opened.pop((e["pid"], label), None)
            if first is None and label.startswith("open ") and navigations:  # a page open: from its navigation
                first = max((n for n in navigations if n["ts"] <= e["ts"]), key=lambda n: n["ts"], default=None)
            if first is not None:
                out.append((label, (e["pid"], e["tid"]), first["ts"], e["ts"]))
    return out


def _segments(slices: list[dict]) -> list[tuple[float, float, str]]:
    """The thread's timeline cut into (start, end, name) pieces, each named by the innermost event running then."""
    out, stack, now = [], [], None  # stack: [name, end]
    for e in sorted(slices, key=lambda e: (e["ts"], -e["dur"])):
        while stack and stack[-1][1] <= e["ts"]:  # events that ended before this one began
            name, end = stack.pop()
            out.append((now, end, name))
            now = end
        if stack and now < e["ts"]:
            out.append((now, e["ts"], stack[-1][0]))
        end = min(e["ts"] + e["dur"], stack[-1][1]) if stack else e["ts"] + e["dur"]  # nested, never past its parent
        stack.append((e["name"], end))
        now = e["ts"]
    while stack:
        name, end = stack.pop()
        out.append((now, end, name))
        now = end
    return [seg for seg in out if seg[1] > seg[0]]


def _events(trace: Path | str | dict) -> list[dict]:
    """The trace's events, from a file or from the JSON Playwright's stop_tracing() returned."""
    data = trace if isinstance(trace, dict) else json.loads(Path(trace).read_text())
    return data["traceEvents"] if isinstance(data, dict) else data


def summarize(trace: Path | str | dict) -> dict[str, list[dict]]:
    """{interaction: [one dict per repeat: total, idle and each of KINDS, in ms]}."""
    events = _events(trace)
    mains = _main_threads(events)
    slices = defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and "dur" in e and (e["pid"], e["tid"]) in mains:
            slices[(e["pid"], e["tid"])].append(e)
    timelines = {thread: _segments(s) for thread, s in slices.items()}
    result = defaultdict(list)
    for label, thread, t0, t1 in _windows(events):
        row = dict.fromkeys(KINDS, 0.0)
        for a, b, name in timelines.get(thread, []):
            overlap = min(b, t1) - max(a, t0)
            if overlap > 0:
                row["script" if name in _TASKS else kind(name)] += overlap / 1000  # a task's own time: glue code
        row["total"] = (t1 - t0) / 1000
        row["idle"] = max(row["total"] - sum(row[k] for k in KINDS), 0.0)
        result[label].append(row)
    return dict(result)


def _bundle(url: str) -> str:
    """A script's short name: Streamlit's `static/js/PlotlyChart.D9Z0_fxz.js` -> `PlotlyChart`."""
    name = url.rsplit("/", 1)[-1]
    return re.sub(r"(\.[A-Za-z0-9_-]{8})?\.m?js$", "", name) or url


def _samples(events: list[dict]) -> dict[tuple[int, int], list[tuple[float, float, str]]]:
    """The CPU profiler's samples per thread: (time µs, weight µs, script the sampled code belongs to)."""
    profiles = {}  # (pid, profile id) -> [thread, clock, nodes {id: (parent, url, function)}]
    out = defaultdict(list)
    for e in sorted((e for e in events if e.get("name") in ("Profile", "ProfileChunk")), key=lambda e: e["ts"]):
        data, pid = e["args"]["data"], e["pid"]
        if e["name"] == "Profile":
            profiles[(pid, e["id"])] = [(pid, e["tid"]), data.get("startTime", e["ts"]), {}]
            continue
        profile = profiles.get((pid, e["id"]))
        if profile is None:
            continue
        nodes = profile[2]
        for node in data.get("cpuProfile", {}).get("nodes", []):
            frame = node["callFrame"]
            nodes[node["id"]] = (node.get("parent"), frame.get("url", ""), frame.get("functionName", ""))
        for sample, delta in zip(data.get("cpuProfile", {}).get("samples", []), data.get("timeDeltas", [])):
            profile[1] += delta
            node, where = sample, None
            while node in nodes and where is None:  # the nearest frame that belongs to a script file
                parent, url, function = nodes[node]
                if url:
                    where = _bundle(url)
                elif function.startswith("(") and function != "(root)":  # (program), (garbage collector), (idle)
                    where = function
                node = parent
            out[profile[0]].append((profile[1], max(delta, 0), where or "(inline script)"))
    return out


def scripts(trace: Path | str | dict, top: int = 4) -> dict[str, list[tuple[str, float]]]:
    """{interaction: the scripts its main-thread time went to, most first, ms per repeat} from CPU samples."""
    events = _events(trace)
    samples = _samples(events)
    totals, repeats = defaultdict(lambda: defaultdict(float)), defaultdict(int)
    for label, thread, t0, t1 in _windows(events):
        repeats[label] += 1
        for t, weight, where in samples.get(thread, []):
            if t0 <= t < t1 and where != "(idle)":
                totals[label][where] += weight / 1000
    return {label: sorted(((w, ms / repeats[label]) for w, ms in per.items()), key=lambda x: -x[1])[:top]
            for label, per in totals.items()}


def table(summary: dict[str, list[dict]]) -> str:
    """A Markdown table of medians: where each interaction's time went."""
    cols = ("total", "idle", *KINDS)
    lines = ["| interaction | total ms | idle: waiting for the server | " + " | ".join(KINDS) + " |",
             "|---|" + "---:|" * len(cols)]
    for label, rows in sorted(summary.items(), key=lambda kv: -statistics.median(r["total"] for r in kv[1])):
        meds = [statistics.median(r[c] for r in rows) for c in cols]
        lines.append(f"| {label} | " + " | ".join(f"{m:.0f}" for m in meds) + " |")
    return "\n".join(lines)


def script_table(per: dict[str, list[tuple[str, float]]]) -> str:
    lines = ["| interaction | where the main thread's time went (CPU samples, ms per repeat) |", "|---|---|"]
    for label, parts in per.items():
        lines.append(f"| {label} | " + ", ".join(f"{w} {ms:.0f}" for w, ms in parts) + " |")
    return "\n".join(lines)


def report(trace: Path | str | dict) -> str:
    """Both tables: the kinds of work per interaction, then the scripts it went to (the file is read once)."""
    data = {"traceEvents": _events(trace)}
    return table(summarize(data)) + "\n\n" + script_table(scripts(data))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trace", type=Path)
    print(report(p.parse_args(argv).trace))


if __name__ == "__main__":
    main()
