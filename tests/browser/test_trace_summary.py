"""tools.trace_summary on a real Chromium trace: work the page did is told apart from waiting."""

import json

from tools import trace_summary
from tools.trace_summary import END, START

WORK = """async ([start, end]) => {
  const idle = ms => new Promise(r => setTimeout(r, ms));
  await idle(50);
  performance.mark(start + 'compute');
  const t = performance.now(); let x = 0;
  while (performance.now() - t < 300) x += Math.sqrt(x + 1);  // JavaScript on the main thread
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


def test_the_summary_tells_script_from_waiting_and_layout(browser):
    page = browser.new_page()
    try:
        page.set_content("<html><body><p>trace me</p></body></html>")
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


def test_nested_events_count_their_own_time_once():
    ev = lambda name, ts, dur: {"ph": "X", "name": name, "ts": ts, "dur": dur, "pid": 1, "tid": 1}  # noqa: E731
    pieces = trace_summary._segments([ev("RunTask", 0, 100), ev("FunctionCall", 10, 60), ev("Layout", 20, 30),
                                      ev("Paint", 80, 10), ev("RunTask", 150, 20)])
    assert pieces == [(0, 10, "RunTask"), (10, 20, "FunctionCall"), (20, 50, "Layout"), (50, 70, "FunctionCall"),
                      (70, 80, "RunTask"), (80, 90, "Paint"), (90, 100, "RunTask"), (150, 170, "RunTask")]
