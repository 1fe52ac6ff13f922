"""How long an inspection page takes to redraw after a student changes something.

    python -m tools.rerun_times

Runs the real app in Streamlit's AppTest (one session, the bundled model, no browser) and times the
script rerun after a prompt edit and after a slider move on each inspection page: the server-side
part of what a student waits for.
"""

from __future__ import annotations

import statistics
import time

from streamlit.testing.v1 import AppTest

from tools.server import ROOT

PROMPTS = ["ROMEO:\nWhat light through", "To be, or not to be", "Good morrow, neighbour", "My lord, I come"]
# page -> (widget kind, key, values to cycle through) for the slider or picker move
SLIDERS = {
    "attention": ("selectbox", "attention_head", [0, 1, 2, 3]),
    "embeddings": ("selectbox", "embeddings_token", [43, 39, 58, 53]),  # token ids of e, a, t, o
    "next_token": ("slider", "next_token_temperature", [0.5, 1.0, 1.5, 0.8]),
    "layers": ("select_slider", "layers_position", [3, 6, 9, 12]),
}


def median_ms(at: AppTest, change, values) -> float:
    times = []
    for value in values * 2:
        change(value)
        t = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t)
        assert not at.exception, at.exception
    return statistics.median(times) * 1000


def main():
    print(f"{'page':<12} {'prompt edit':>12} {'slider move':>12}   (median ms of 8 reruns, AppTest)")
    for page, (kind, key, values) in SLIDERS.items():
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.run()
        at.switch_page(f"pages/{page}.py").run()
        prompt = median_ms(at, lambda p: at.text_area(key=f"prompt_{page}").set_value(p), PROMPTS) \
            if page != "embeddings" else float("nan")
        slider = median_ms(at, lambda v: getattr(at, kind)(key=key).set_value(v), values)
        print(f"{page:<12} {prompt:>12.0f} {slider:>12.0f}")


if __name__ == "__main__":
    main()
