"""The checkpoint fuzzer (tools/fuzz_checkpoints.py) on the real bundled file.

Every mutated file is refused with a student message or loads and runs; never another exception,
never unbounded memory. The corpus holds the mutations that crashed the loader before it
validated files (found by the fuzzer itself); `python -m tools.fuzz_checkpoints --n 5000` runs long.
"""

import json

import pytest

from tools import fuzz_checkpoints as F

CORPUS = json.loads(F.CORPUS.read_text())


@pytest.fixture(scope="module")
def base():
    return F.BUNDLED.read_bytes()


def test_the_bundled_file_loads_and_runs(base):
    assert F.trial(base) == ("loaded", "")


@pytest.mark.parametrize("case", CORPUS, ids=[c["found"][:60] for c in CORPUS])
def test_regression_corpus(base, case):
    """Each recipe once raised `found` from load_checkpoint; now it has the outcome it should."""
    outcome, detail = F.trial(F.apply(case["recipe"], base))
    assert outcome == case["expect"], detail
    if outcome == "refused":
        assert detail.startswith("The ") or detail.startswith("This "), detail  # a sentence, not an exception repr


def test_short_fuzz_run(base):
    """CI's short run (about 10 s on a quiet host); the long one is a tool command."""
    r = F.fuzz(150, seed=12, base=base, log=lambda *_: None)
    assert r["bug"] == 0, r["bugs"][:3]
    assert r["refused"] > 60 and r["loaded"] > 5  # both outcomes are exercised
    assert r["peak_rss_growth_mb"] < F.MAX_RSS_GROWTH_MB


@pytest.mark.parametrize("how", F.JSON_TEXT_EDITS[1:])
@pytest.mark.parametrize("section", ["tokenizer", "meta", "config"])
def test_damaged_json_text_of_each_section_is_refused_or_loads(base, section, how):
    """Issue 21: the fuzzer also damages the JSON texts themselves (numbers, NaN, a self-doubling tokenizer)."""
    outcome, detail = F.trial(F.apply([{"op": "json_text", "section": section, "how": how, "at": 0.5, "char": "]"}],
                                      base))
    assert outcome in ("refused", "loaded"), detail
    if how == "doubling_bpe" and section == "tokenizer":
        assert outcome == "refused" and "tokens longer than 1 MB" in detail
