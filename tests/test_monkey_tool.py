"""The monkey's own logic, without a browser: its mutations never fail, and it knows which buttons open a model."""

import random
from collections import Counter

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from gptviz.checkpoints import CHECKPOINT_DIR
from tools import monkey
from ui import lesson, models, state


def test_a_damaged_checkpoint_can_be_any_cut_even_an_empty_one():
    for seed in range(300):  # cuts of length 0 (the case that raised 'empty range for randrange()') and up
        rng = random.Random(seed)
        good = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 2, 50])))
        cut = monkey.damaged(good, rng)
        assert len(cut) < max(len(good), 1)
    assert monkey.damaged(b"", random.Random(0)) == b""


def test_it_knows_the_lesson_buttons_that_open_the_bundled_model():
    opening = [s for s in lesson.STEPS if state.MODEL in s.settings]
    assert opening and set(monkey.MODEL_BUTTONS) == {s.button for s in opening}
    shown = set(monkey.MODEL_BUTTONS.values())  # each a bundled checkpoint, the default among them
    assert f"💾 {models.DEFAULT_CHECKPOINT}" in shown
    assert all((CHECKPOINT_DIR / f"{label.removeprefix('💾 ')}.safetensors").is_file() for label in shown)


class Turn:
    """A student's turn without a browser: its action raises what it is given."""

    index, actions = 0, ["0:0 button 'Start'"]

    def __init__(self, error=None):
        self.error = error

    def step(self):
        if self.error:
            raise self.error
        return "button"

    def problems(self):
        return ["an exception box: boom"]


def test_the_apps_failures_are_reported_and_the_monkeys_own_raise():
    counts = Counter()
    assert monkey.one_turn(Turn(), counts) == ["an exception box: boom"] and counts == {"button": 1}
    assert monkey.one_turn(Turn(PlaywrightTimeout("Timeout 90000ms exceeded.\nmore")), counts) == [
        "TimeoutError: Timeout 90000ms exceeded."]  # the page never settled: the app's
    with pytest.raises(monkey.MonkeyBug, match="itself failed .* ValueError: empty range"):
        monkey.one_turn(Turn(ValueError("empty range for randrange()")), counts)
