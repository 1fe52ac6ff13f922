"""tools.trace_summary on a real Chromium trace: work the page did is told apart from waiting."""

import json

from tools import trace_summary
from tools.trace_summary import END, START

WORK = """async ([start, end]) => {
  const idle = ms => new Promise(r => setTimeout(r, ms));
  await idle(50);
  performance.mark(start + 'compute');
  const x = window.busy(300);  // JavaScript on the main thread, in a script file of the page
  performance.mark(end + 'compute');
  await idle(50);
  performance.mark(start + 'wait');
  await idle(400);  // nothing to do: the server's time
  performance.mark(end + 'wait');
  await idle(50);
  performance.mark(start + 'layout');
  const box = document.body.appendChild(document.createElement('div'));
  for (let i = 0; i < 3000; i++) box.appendChild(document.createElement('span')).textContent = 'token ' + i;
  for (let i = 0; i < 60; i++) { box.style.width = (300 + i * 7) + 'px'; void box.offsetHeight; }  // forced layouts
  performance.mark(end + 'layout');
  await idle(50);
  return x;
}"""


BUSY = "window.busy = ms => { const t = performance.now(); let x = 0; while (performance.now() - t < ms) x += Math.sqrt(x + 1); return x; };"


def test_the_summary_tells_script_from_waiting_and_layout(browser):
    page = browser.new_page()
    try:  # a page whose script comes from a file named like Streamlit's bundles
        page.route("http://gptviz.test/", lambda r: r.fulfill(
            content_type="text/html", body='<html><body><p>trace me</p><script src="/static/js/Busy.AbC_12-x.js"></script>'))
        page.route("http://gptviz.test/static/js/Busy.AbC_12-x.js", lambda r: r.fulfill(
            content_type="text/javascript", body=BUSY))
        page.goto("http://gptviz.test/")
        browser.start_tracing(page=page)
        page.evaluate(WORK, [START, END])
        trace = json.loads(browser.stop_tracing())
    finally:
        page.close()
    summary = trace_summary.summarize(trace)
    assert set(summary) == {"compute", "wait", "layout"}
    compute, wait, layout = (summary[k][0] for k in ("compute", "wait", "layout"))
    assert compute["total"] >= 300 and compute["script"] > 0.8 * compute["total"] and compute["idle"] < 0.2 * compute["total"]
    assert wait["total"] >= 400 and wait["idle"] > 0.8 * wait["total"] and wait["script"] < 0.2 * wait["total"]
    assert layout["style & layout"] == max(layout[k] for k in trace_summary.KINDS), layout
    assert "| compute |" in trace_summary.table(summary)
    where = trace_summary.scripts(trace)  # from the CPU profiler's samples
    assert where["compute"][0][0] == "Busy" and where["compute"][0][1] > 0.8 * compute["total"], where["compute"]
    assert sum(ms for _, ms in where.get("wait", [])) < 0.2 * wait["total"], where.get("wait")


def test_nested_events_count_their_own_time_once():
    ev = lambda name, ts, dur: {"ph": "X", "name": name, "ts": ts, "dur": dur, "pid": 1, "tid": 1}  # noqa: E731
    pieces = trace_summary._segments([ev("RunTask", 0, 100), ev("FunctionCall", 10, 60), ev("Layout", 20, 30),
                                      ev("Paint", 80, 10), ev("RunTask", 150, 20)])
    assert pieces == [(0, 10, "RunTask"), (10, 20, "FunctionCall"), (20, 50, "Layout"), (50, 70, "FunctionCall"),
                      (70, 80, "RunTask"), (80, 90, "Paint"), (90, 100, "RunTask"), (150, 170, "RunTask")]


def test_script_files_are_named_without_their_build_hash():
    assert trace_summary._bundle("http://127.0.0.1:8501/static/js/PlotlyChart.D9Z0_fxz.js") == "PlotlyChart"
    assert trace_summary._bundle("http://h/static/js/emotion-styled.browser.esm.DdOkyKg_.js") == "emotion-styled.browser.esm"
    assert trace_summary._bundle("chrome://resources/lit/v3_0/lit.rollup.js") == "lit.rollup"
