import pytest
import torch

from gptviz.errors import ConfigError, InputError
from gptviz.generate import fit_to_window, generate, next_token_probs, sample_steps


def entropy(p):
    p = p[p > 0]
    return -(p * p.log()).sum().item()


def test_temperature_zero_is_greedy():
    logits = torch.tensor([0.1, 2.0, -1.0, 1.9])
    assert next_token_probs(logits, temperature=0).tolist() == [0.0, 1.0, 0.0, 0.0]


def test_higher_temperature_flattens_the_distribution():
    logits = torch.randn(50)
    ents = [entropy(next_token_probs(logits, temperature=t)) for t in (0.5, 1.0, 2.0)]
    assert ents[0] < ents[1] < ents[2]
    assert torch.allclose(next_token_probs(logits), torch.softmax(logits, -1))


def test_top_k_keeps_exactly_the_k_most_likely():
    logits = torch.tensor([3.0, 1.0, 2.0, 0.0, -1.0])
    probs = next_token_probs(logits, top_k=2)
    assert (probs > 0).nonzero().flatten().tolist() == [0, 2]
    assert probs.sum().item() == pytest.approx(1.0)


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs_in = torch.tensor([0.5, 0.3, 0.15, 0.05])
    probs = next_token_probs(probs_in.log(), top_p=0.7)  # 0.5 alone < 0.7, 0.5 + 0.3 >= 0.7
    assert (probs > 0).tolist() == [True, True, False, False]
    assert probs[0].item() == pytest.approx(0.5 / 0.8)
    assert (next_token_probs(probs_in.log(), top_p=0.1) > 0).tolist() == [True, False, False, False]


def test_bad_sampling_settings_are_refused():
    with pytest.raises(ConfigError, match="temperature"):
        next_token_probs(torch.zeros(3), temperature=-1)
    with pytest.raises(ConfigError, match="top_p"):
        next_token_probs(torch.zeros(3), top_p=1.5)


def test_same_seed_same_text_other_seed_other_text(small_model):
    a = generate(small_model, [1, 2, 3], 40, seed=7)
    assert a == generate(small_model, [1, 2, 3], 40, seed=7)
    assert a != generate(small_model, [1, 2, 3], 40, seed=8)
    assert len(a) == 40 and all(0 <= t < small_model.config.vocab_size for t in a)


def test_steps_report_the_distribution_they_sampled_from(small_model):
    steps = list(sample_steps(small_model, [1, 2], 5, top_k=3, seed=0))
    for s in steps:
        assert s.probs.shape == (small_model.config.vocab_size,)
        assert s.probs.sum().item() == pytest.approx(1.0, abs=1e-5)
        assert int((s.probs > 0).sum()) == 3 and s.probs[s.token] > 0


def test_kv_cache_gives_the_same_steps_inside_the_window(small_model):
    n = small_model.config.block_size - 4  # prompt of 4 + n new tokens fills the window exactly
    cached = list(sample_steps(small_model, [5, 6, 7, 8], n, seed=3, kv_cache=True))
    plain = list(sample_steps(small_model, [5, 6, 7, 8], n, seed=3, kv_cache=False))
    assert [s.token for s in cached] == [s.token for s in plain]
    for a, b in zip(cached, plain):
        assert (a.probs - b.probs).abs().max().item() <= 1e-5
        assert a.context_length == b.context_length


def test_generation_past_the_window_keeps_a_valid_context(small_model):
    bs = small_model.config.block_size
    steps = list(sample_steps(small_model, [1], 3 * bs, seed=0))
    assert len(steps) == 3 * bs
    lengths = [s.context_length for s in steps]
    assert max(lengths) == bs and min(lengths[bs:]) >= bs * 3 // 4


def test_empty_prompt_is_refused(small_model):
    with pytest.raises(InputError, match="empty"):
        generate(small_model, [], 5)


def test_a_prompt_is_fitted_to_the_window_from_its_end():
    ids = list(range(40))
    assert fit_to_window(ids, 32) == ids[8:]  # the last block_size tokens
    assert fit_to_window(ids, 32, room=20) == ids[28:]  # and room for 20 new ones
    assert fit_to_window(ids, 32, room=32) == [39]  # at least one prompt token stays
    assert fit_to_window(ids[:10], 32, room=5) == ids[:10]  # a short prompt is left alone


def test_a_fitted_prompt_and_its_new_tokens_fill_one_window_exactly(small_model):
    bs = small_model.config.block_size
    context = fit_to_window(list(range(3 * bs)), bs, room=5)
    steps = list(sample_steps(small_model, context, 5, seed=0))
    assert [s.context_length for s in steps] == list(range(bs - 5, bs))  # no token ever slid out
