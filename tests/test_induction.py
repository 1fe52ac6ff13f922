"""Induction heads: the repeated-chunks corpus, the ICL score, the scores along a timeline, and the bundled
model that has one (checked with attention arithmetic of our own, not the detector's code)."""

import math

import pytest
import torch
from torch.nn import functional as F

from gptviz import detectors, induction
from gptviz.checkpoints import CHECKPOINT_DIR, load_checkpoint
from gptviz.data import CHUNK_LENGTHS, CORPORA, REPEATED_CORPUS, corpus_text, repeated_chunks
from gptviz.errors import ConfigError
from gptviz.model import GPT, GPTConfig
from gptviz.train import TrainConfig, snapshot_schedule

BUNDLED = CHECKPOINT_DIR / "induction-shakespeare-char.safetensors"


# ----------------------------------------------------------------------------- the corpus


def test_repeated_chunks_say_each_chunk_twice_with_lengths_in_range():
    text = "The quick brown fox\njumps over the lazy dog. " * 40
    out = repeated_chunks(text, (3, 9), seed=5)
    lines = out.split("\n")
    assert lines[-1] == ""  # every chunk ends with a line break
    chunks = []
    for line in lines[:-1]:
        half = len(line) // 2
        assert len(line) % 2 == 0 and line[:half] == line[half:], line
        chunks.append(line[:half])
    assert {len(c) for c in chunks} == set(range(3, 10))  # every length occurs, none outside
    assert "".join(chunks) == text.replace("\n", " ")[: len("".join(chunks))]  # the text, in order
    assert repeated_chunks(text, (3, 9), seed=5) == out and repeated_chunks(text, (3, 9), seed=6) != out


def test_the_bundled_repeated_corpus_is_made_from_tiny_shakespeare():
    assert REPEATED_CORPUS in CORPORA
    text = corpus_text(REPEATED_CORPUS)
    assert text == repeated_chunks(corpus_text("tinyshakespeare"), CHUNK_LENGTHS)
    assert set(text) == set(corpus_text("tinyshakespeare"))  # the same characters: a char model reads both
    first = text.split("\n")[0]
    assert first[: len(first) // 2] == first[len(first) // 2:]


def test_repeated_chunks_refuse_impossible_lengths():
    with pytest.raises(ConfigError, match="Chunk lengths"):
        repeated_chunks("abc", (5, 2))


# ----------------------------------------------------------------------------- snapshot schedule and recipe


def test_snapshot_every_adds_evenly_spaced_steps_and_the_end():
    steps = snapshot_schedule(TrainConfig(max_iters=1000, snapshot_every=150))
    assert set(range(0, 1000, 150)) | {1000} <= set(steps)
    assert {10, 30, 100, 300} <= set(steps)  # the log-spaced ones stay
    assert snapshot_schedule(TrainConfig(max_iters=1000)) == [0, 10, 30, 100, 300, 1000]


def test_a_dense_timeline_stays_within_its_memory_bound():
    assert induction.dense_every(50_000, 3000, 100) == 100  # the induction preset: 31 small snapshots
    big = 2_000_000  # 4 MB a snapshot: 8 fit in 32 MB, too few for a timeline
    assert induction.dense_every(big, 3000, 100) == 0
    mid = 400_000  # 0.8 MB a snapshot: 41 fit, so a 5000-step run keeps one every 122 steps
    every = induction.dense_every(mid, 5000, 100)
    assert every > 100 and 5000 // every * 2 * mid <= induction.SNAPSHOT_BYTES
    assert induction.dense_every(50_000, 3000, 0) == 0


def test_the_recipe_is_the_induction_preset_with_its_training():
    config, cfg = induction.recipe(65)
    assert (config.n_layer, config.block_size) == (2, induction.RECIPE["block_size"])
    assert (cfg.batch_size, cfg.learning_rate, cfg.snapshot_every) == tuple(
        induction.RECIPE[k] for k in ("batch_size", "learning_rate", "snapshot_every"))
    wider, _ = induction.recipe(65, n_embd=32, mlp=1)
    assert (wider.n_embd, wider.mlp) == (32, True)


# ----------------------------------------------------------------------------- the ICL score


def test_a_bigram_model_learns_nothing_in_context():
    # a bigram's logits depend on the current token only, and both copies hold the same pairs of tokens:
    # its losses on the two copies are equal exactly when the copies are aligned right
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, block_size=20, n_layer=0, pos_embd=False, layernorm=False, mlp=False))
    idx = induction.repeated_sequences(model.config, None, n_seqs=8)
    first, second = induction.copy_losses(model, idx)
    assert first > 1 and first == pytest.approx(second, abs=1e-5)
    assert induction.icl_score(model) == pytest.approx(0.0, abs=1e-5)


def test_a_model_that_copies_gets_an_icl_score_of_its_gain():
    class Copier(torch.nn.Module):
        """Predicts, at position t, the token that followed the previous occurrence of idx[t] (10 nats sure)."""

        config = GPTConfig(vocab_size=12, block_size=12)

        def forward(self, idx):
            B, T = idx.shape
            logits = torch.zeros(B, T, 12)
            for b in range(B):
                for t in range(T):
                    before = [s for s in range(t) if idx[b, s] == idx[b, t]]
                    if before:
                        logits[b, t, idx[b, before[-1] + 1]] = 10.0
            return logits, None

    idx = induction.repeated_sequences(Copier.config, None, n_seqs=4)
    first, second = induction.copy_losses(Copier(), idx)
    assert first == pytest.approx(math.log(12))  # nothing to copy yet: a uniform guess
    assert second == pytest.approx(-F.log_softmax(torch.tensor([10.0] + [0.0] * 11), 0)[0].item(), rel=1e-4)


# ----------------------------------------------------------------------------- scores over a timeline


def test_timeline_scores_of_a_bigram_have_no_heads_and_do_not_crash():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=20, block_size=16, n_layer=0, pos_embd=False, layernorm=False, mlp=False)
    snaps = {s: {k: v.half() for k, v in GPT(config).state_dict().items()} for s in (0, 5)}
    line = induction.timeline_scores(config, snaps)
    assert line["steps"] == [0, 5] and line["scores"]["induction"].shape == (2, 0, 0)
    assert induction.formation_step(line) is None and induction.strongest(line, "induction") is None
    assert line["icl"] == pytest.approx([0.0, 0.0], abs=1e-4)


@pytest.fixture(scope="module")
def bundled():
    return load_checkpoint(BUNDLED)


@pytest.fixture(scope="module")
def line(bundled):
    val = torch.tensor(bundled.tokenizer.encode(corpus_text(REPEATED_CORPUS)[-20_000:]))
    weights = {s: w for s, w in bundled.snapshots.items()}
    return induction.timeline_scores(bundled.model.config, weights, val)


def test_timeline_scores_match_the_detector_at_each_step(bundled, line):
    assert line["steps"] == sorted(bundled.snapshots)
    last = line["steps"][-1]
    model = induction.model_from(bundled.model.config, bundled.snapshots[last])
    val = torch.tensor(bundled.tokenizer.encode(corpus_text(REPEATED_CORPUS)[-20_000:]))
    again = detectors.head_scores(model, tokens=val)
    for name in detectors.REGISTRY:
        assert torch.allclose(line["scores"][name][-1], again[name])
    assert line["icl"][-1] == pytest.approx(induction.icl_score(model, val))


def test_the_bundled_timeline_shows_the_phase_change(line):
    formed = induction.formation_step(line)
    assert formed is not None and 0 < formed < line["steps"][-1]
    best = line["scores"]["induction"].flatten(1).max(1).values
    i = line["steps"].index(formed)
    assert best[0] < 0.1 and best[i] >= detectors.DEFAULT_THRESHOLD  # nothing at the start, a head at `formed`
    assert line["icl"][0] < 0.3 < 1.0 < line["icl"][-1]  # the model learns to use its context
    # at least ten snapshots across the drop: from the first sign of the head (0.1) to a clear one (0.5)
    start = next(s for s, b in zip(line["steps"], best) if b >= 0.1)
    end = next(s for s, b in zip(line["steps"], best) if b >= 0.5)
    assert len([s for s in line["steps"] if start <= s <= end]) >= 10, (start, end)


# ----------------------------------------------------------------------------- the bundled model, checked independently


def _patterns(model, idx):
    names = [f"blocks.{i}.attn.pattern" for i in range(model.config.n_layer)]
    _, cache = model.run_with_cache(idx, names)
    return [cache[n] for n in names]  # (B, H, T, T) each


def test_the_bundled_model_has_an_induction_head_fed_by_a_previous_token_head(bundled):
    model, tok = bundled.model, bundled.tokenizer
    assert BUNDLED.stat().st_size < 5 * 2**20  # a few MB
    g = torch.Generator().manual_seed(123)
    n = model.config.block_size // 2
    letters = torch.tensor(tok.encode("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    half = letters[torch.rand(20, len(letters), generator=g).argsort(1)[:, :n]]  # no letter twice in a half
    idx = torch.cat([half, half], 1)
    layer1 = _patterns(model, idx)[1]
    # query n + i should look at key i + 1: the token after the first copy of the current token
    q = torch.arange(n, 2 * n - 1)
    induction_score = layer1[:, :, q, q - n + 1].mean(dim=(0, 2))  # (H,)
    assert induction_score.max() >= 0.5, induction_score

    # layer 0 feeds it: on real text its head looks one token back more than at any other distance ...
    text = torch.tensor(tok.encode(corpus_text(REPEATED_CORPUS)[-5_000:]))
    starts = torch.randint(len(text) - 2 * n, (20,), generator=g)
    windows = text[starts[:, None] + torch.arange(2 * n)]
    layer0 = _patterns(model, windows)[0]
    t = torch.arange(6, 2 * n)
    by_distance = torch.stack([layer0[:, :, t, t - d].mean(dim=(0, 2)) for d in range(6)])  # (distance, head)
    prev_head = int(by_distance[1].argmax())
    assert int(by_distance[:, prev_head].argmax()) == 1 and by_distance[1, prev_head] >= 0.3, by_distance
    # ... and without layer 0's attention the induction head is lost
    hook = model.blocks[0].attn.hook_out.register_forward_hook(lambda module, args, out: torch.zeros_like(out))
    try:
        ablated = _patterns(model, idx)[1][:, :, q, q - n + 1].mean(dim=(0, 2))
    finally:
        hook.remove()
    assert ablated.max() < induction_score.max() / 3, (ablated, induction_score)

    logits, _ = model(idx)
    nll = -F.log_softmax(logits[:, :-1].float(), -1).gather(-1, idx[:, 1:, None])[..., 0]  # loss on token t + 1
    first, second = nll[:, : n - 1].mean(), nll[:, n:].mean()  # each copy without its unpredictable first token
    assert first - second >= 1.0, (first, second)


def test_the_command_line_preset_brings_its_recipe_and_explicit_options_win():
    from gptviz import cli

    args = cli.build_parser().parse_args(["train", "--preset", "induction", "--iters", "300"])
    cli._apply_recipe(args)
    cfg = cli._train_config(args)
    assert args.corpus == REPEATED_CORPUS and args.block_size == induction.RECIPE["block_size"]
    assert cfg.max_iters == 300  # given on the command line
    assert (cfg.batch_size, cfg.learning_rate, cfg.snapshot_every, cfg.weight_decay) == tuple(
        induction.RECIPE[k] for k in ("batch_size", "learning_rate", "snapshot_every", "weight_decay"))
    plain = cli.build_parser().parse_args(["train", "--preset", "gpt"])
    cli._apply_recipe(plain)
    assert plain.corpus == "tinyshakespeare" and cli._train_config(plain).snapshot_every == 0
