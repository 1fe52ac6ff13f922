"""The monkey in CI: three browser sessions click, type, drag and pick at random for a minute.

GPTVIZ_MONKEY_SECONDS sets how long it runs (GPTVIZ_MONKEY_SEED which random sequence);
`python -m tools.monkey --minutes 20` is the long version, with the same checks (see tools/monkey.py).
"""

import os
import shutil

from tools import monkey

from .conftest import Server

SECONDS = float(os.environ.get("GPTVIZ_MONKEY_SECONDS", 60))
SEED = int(os.environ.get("GPTVIZ_MONKEY_SEED", 1))


def test_three_monkeys_never_see_an_error(browser):
    app = monkey.scratch_app()  # what the monkeys save stays out of checkpoints/
    server = Server({"GPTVIZ_MAX_TRAININGS": "1"}, app_dir=app)
    try:
        report = monkey.run(browser, server.url, SECONDS, SEED, server.log_errors)
    finally:
        server.stop()
        shutil.rmtree(app, ignore_errors=True)
    print(report.describe())
    assert not report.failures, report.describe()
    acted = {k: n for k, n in report.counts.items() if k not in ("blocked", "reload")}
    assert sum(acted.values()) >= 10 and len(acted) >= 4, report.counts  # it really used the widgets
