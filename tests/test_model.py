import math

import pytest
import torch

from gptviz.errors import ConfigError
from gptviz.model import GPT, PRESETS, GPTConfig, KVCache, preset_config


def test_n_embd_must_divide_by_n_head():
    with pytest.raises(ConfigError, match=r"n_embd \(130\) must be divisible by n_head \(4\)"):
        GPTConfig(n_embd=130, n_head=4)


@pytest.mark.parametrize("field,value", [("n_layer", -1), ("block_size", 0), ("vocab_size", 0), ("dropout", 1.0)])
def test_bad_sizes_are_refused_with_the_field_name(field, value):
    with pytest.raises(ConfigError, match=field):
        GPTConfig(**{field: value})


def test_unknown_preset_lists_the_ladder():
    with pytest.raises(ConfigError, match="bigram"):
        preset_config("transformer-xl", vocab_size=65)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_untrained_loss_is_close_to_a_uniform_guess(preset):
    # small init weights: every token is about equally likely, so the loss is about ln(vocab_size)
    torch.manual_seed(0)
    model = GPT(preset_config(preset, vocab_size=65)).eval()
    idx = torch.randint(0, 65, (4, 64))
    _, loss = model(idx, idx)
    assert abs(loss.item() - math.log(65)) < 0.1


@pytest.mark.parametrize("preset", list(PRESETS))
def test_capture_path_gives_the_same_logits_as_the_fused_path(preset):
    torch.manual_seed(1)
    model = GPT(preset_config(preset, vocab_size=65)).eval()
    idx = torch.randint(0, 65, (2, 64))
    fused, _ = model(idx)
    captured, cache = model.run_with_cache(idx)
    assert (fused - captured).abs().max().item() <= 1e-5
    assert torch.equal(cache["logits"], captured)


def test_cache_names_explain_themselves(small_model):
    idx = torch.randint(0, small_model.config.vocab_size, (1, 10))
    _, cache = small_model.run_with_cache(idx)
    expected = {"embed", "pos_embed", "ln_final", "logits"}
    for i in range(small_model.config.n_layer):
        expected |= {f"blocks.{i}.{n}" for n in ("resid_pre", "attn.scores", "attn.pattern", "attn.out",
                                                 "attn.z", "mlp.hidden", "resid_mid", "resid_post")}
    assert expected <= set(cache)
    assert cache["blocks.0.mlp.hidden"].shape == (1, 10, 4 * small_model.config.n_embd)
    assert torch.equal(cache["blocks.0.resid_post"], cache["blocks.1.resid_pre"])


def test_attention_pattern_is_causal_and_normalised(small_model):
    cfg = small_model.config
    idx = torch.randint(0, cfg.vocab_size, (3, cfg.block_size))
    _, cache = small_model.run_with_cache(idx)
    for i in range(cfg.n_layer):
        pattern, scores = cache[f"blocks.{i}.attn.pattern"], cache[f"blocks.{i}.attn.scores"]
        assert pattern.shape == (3, cfg.n_head, cfg.block_size, cfg.block_size)
        assert torch.allclose(pattern.sum(-1), torch.ones(3, cfg.n_head, cfg.block_size), atol=1e-6)
        assert pattern.triu(diagonal=1).abs().max().item() == 0.0
        above = torch.ones(cfg.block_size, cfg.block_size, dtype=torch.bool).triu(diagonal=1)
        assert torch.isneginf(scores[..., above]).all() and torch.isfinite(scores[..., ~above]).all()


def test_future_tokens_do_not_change_past_predictions(small_model):
    idx = torch.randint(0, small_model.config.vocab_size, (1, 12))
    changed = idx.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % small_model.config.vocab_size
    a, _ = small_model(idx)
    b, _ = small_model(changed)
    assert torch.allclose(a[0, :8], b[0, :8], atol=1e-6)
    assert not torch.allclose(a[0, 8:], b[0, 8:])


def test_too_long_input_is_refused(small_model):
    with pytest.raises(ConfigError, match="block_size=16"):
        small_model(torch.zeros(1, 17, dtype=torch.long))


def test_logit_lens_reapplies_the_final_layernorm_per_layer(small_model):
    idx = torch.randint(0, small_model.config.vocab_size, (2, 10))
    logits, cache = small_model.run_with_cache(idx)
    lens = small_model.logit_lens(cache)
    assert lens.shape == (small_model.config.n_layer + 1, 2, 10, small_model.config.vocab_size)
    assert torch.allclose(lens[-1], logits, atol=1e-5)  # after the last block the lens is the model
    # row 0 must use the embedding's own statistics, computed by hand here
    x = cache["embed"] + cache["pos_embed"]
    normed = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)
    by_hand = small_model.lm_head(normed * small_model.ln_f.weight)
    assert torch.allclose(lens[0], by_hand, atol=1e-4)


def test_logit_lens_of_a_bigram_reads_the_embedding():
    torch.manual_seed(0)
    model = GPT(preset_config("bigram", vocab_size=30)).eval()
    idx = torch.randint(0, 30, (1, 5))
    logits, cache = model.run_with_cache(idx)
    assert torch.allclose(model.logit_lens(cache)[0], logits)


def test_ablating_a_head_zeroes_only_that_head(small_model):
    idx = torch.randint(0, small_model.config.vocab_size, (1, 12))
    clean_logits, clean = small_model.run_with_cache(idx)
    with small_model.ablate_heads([(1, 0)]):
        ablated_logits, ablated = small_model.run_with_cache(idx)
    assert ablated["blocks.1.attn.z"][:, 0].abs().max().item() == 0.0
    assert torch.equal(ablated["blocks.1.attn.z"][:, 1], clean["blocks.1.attn.z"][:, 1])
    assert torch.equal(ablated["blocks.0.resid_post"], clean["blocks.0.resid_post"])  # earlier layers untouched
    assert not torch.allclose(ablated_logits, clean_logits)
    after, _ = small_model(idx)
    assert torch.allclose(after, clean_logits, atol=1e-6)  # the hook is gone after the with-block


def test_ablating_every_head_of_a_layer_removes_its_attention(small_model):
    torch.nn.init.normal_(small_model.blocks[0].attn.c_proj.bias)  # trained biases are not zero
    idx = torch.randint(0, small_model.config.vocab_size, (1, 12))
    heads = [(0, h) for h in range(small_model.config.n_head)]
    with small_model.ablate_heads(heads):
        _, cache = small_model.run_with_cache(idx)
    # with every head silent, attention adds only its output bias to the residual stream
    added = cache["blocks.0.resid_mid"] - cache["blocks.0.resid_pre"]
    assert torch.allclose(added, small_model.blocks[0].attn.c_proj.bias.expand_as(added), atol=1e-6)


def test_ablating_a_missing_head_is_refused(small_model):
    with pytest.raises(ConfigError, match="no head 5 in layer 0"):
        with small_model.ablate_heads([(0, 5)]):
            pass


def test_hooks_refuse_unknown_names(small_model):
    with pytest.raises(ConfigError, match="blocks.9.attn.pattern"):
        with small_model.hooks({"blocks.9.attn.pattern": lambda t: t}):
            pass


def test_kv_cache_matches_the_full_forward(small_model):
    cfg = small_model.config
    idx = torch.randint(0, cfg.vocab_size, (2, cfg.block_size))
    full, _ = small_model(idx)
    cache = KVCache(cfg.n_layer, cfg.block_size)
    parts = [small_model(idx[:, :5], kv_cache=cache)[0], small_model(idx[:, 5:9], kv_cache=cache)[0]]
    parts += [small_model(idx[:, t : t + 1], kv_cache=cache)[0] for t in range(9, cfg.block_size)]
    assert cache.length == cfg.block_size
    assert (torch.cat(parts, dim=1) - full).abs().max().item() <= 1e-5


def test_kv_cache_with_capture_matches_too(small_model):
    # the explicit path must offset its causal mask by the remembered tokens
    cfg = small_model.config
    idx = torch.randint(0, cfg.vocab_size, (1, 10))
    full, _ = small_model(idx)
    cache = KVCache(cfg.n_layer, cfg.block_size)
    small_model(idx[:, :6], kv_cache=cache)
    with small_model.hooks({"blocks.0.attn.pattern": lambda p: None}):
        part, _ = small_model(idx[:, 6:], kv_cache=cache)
    assert (part - full[:, 6:]).abs().max().item() <= 1e-5


def test_config_round_trips_through_a_dict(small_config):
    assert GPTConfig.from_dict(small_config.to_dict()) == small_config
    with pytest.raises(ConfigError, match="n_lyer"):
        GPTConfig.from_dict({**small_config.to_dict(), "n_lyer": 3})


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("switches", [{}, dict(bias=False), dict(layernorm=False, pos_embd=False), dict(mlp=False)])
def test_parameter_count_from_the_settings_alone(preset, switches):
    # what a checkpoint's header asks for is sized with this before any model is built
    config = preset_config(preset, 65, **switches)
    assert config.num_params() == GPT(config).num_params()


@pytest.mark.parametrize("field, value, words", [
    ("n_layer", 2.0, "whole number"), ("n_head", True, "whole number"), ("dropout", "0.1", "a number"),
    ("bias", 1, "true or false"), ("n_layer", 100_000, "at most 128"), ("vocab_size", 10**9, "at most"),
])
def test_settings_of_the_wrong_type_or_size_are_refused(field, value, words):
    with pytest.raises(ConfigError, match=f"{field} .*{words}|{field} must be {words}"):
        GPTConfig(**{field: value})


# ---------------------------------------------------------------- TransformerLens's names


def test_code_written_for_transformer_lens_reads_our_cache(small_model):
    """TransformerLens's recipe for each activation, run on the cache under its own names and shapes."""
    import torch.nn.functional as F
    cfg, m = small_model.config, small_model
    idx = torch.randint(0, cfg.vocab_size, (2, 9))
    logits, cache = m.run_with_cache(idx)
    B, T, H, D = 2, 9, cfg.n_head, cfg.head_size
    assert torch.equal(cache["hook_embed"] + cache["hook_pos_embed"], cache["blocks.0.hook_resid_pre"])
    for i, block in enumerate(m.blocks):
        q, k, v = (cache[f"blocks.{i}.attn.hook_{n}"] for n in "qkv")
        assert q.shape == k.shape == v.shape == (B, T, H, D)  # batch, pos, head_index, d_head
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / D ** 0.5
        scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
        assert torch.allclose(scores, cache[f"blocks.{i}.attn.hook_attn_scores"], atol=1e-5)
        pattern = cache[f"blocks.{i}.attn.hook_pattern"]
        assert torch.allclose(pattern, scores.softmax(-1), atol=1e-6)
        z = cache[f"blocks.{i}.attn.hook_z"]
        assert torch.allclose(z, torch.einsum("bhqk,bkhd->bqhd", pattern, v), atol=1e-6)
        attn_out = block.attn.c_proj(z.reshape(B, T, H * D))  # W_O over the heads, TL's "z -> attn_out"
        assert torch.allclose(attn_out, cache[f"blocks.{i}.hook_attn_out"], atol=1e-6)
        resid_mid = cache[f"blocks.{i}.hook_resid_pre"] + cache[f"blocks.{i}.hook_attn_out"]
        assert torch.allclose(resid_mid, cache[f"blocks.{i}.hook_resid_mid"], atol=1e-6)
        assert torch.allclose(F.gelu(cache[f"blocks.{i}.mlp.hook_pre"]), cache[f"blocks.{i}.mlp.hook_post"])
        resid_post = cache[f"blocks.{i}.hook_resid_mid"] + cache[f"blocks.{i}.hook_mlp_out"]
        assert torch.allclose(resid_post, cache[f"blocks.{i}.hook_resid_post"], atol=1e-6)
    assert torch.allclose(m.lm_head(cache["ln_final.hook_normalized"]), logits, atol=1e-6)
    # zero-copy views of our tensors, and still a dict of our own names
    assert cache["blocks.0.attn.hook_q"].data_ptr() == cache["blocks.0.attn.q"].data_ptr()
    assert cache["hook_pos_embed"].data_ptr() == cache["pos_embed"].data_ptr()
    assert "blocks.0.attn.hook_z" in cache and not any(k.startswith("hook_") for k in cache)
    assert cache.get("blocks.9.attn.hook_q") is None
    with pytest.raises(KeyError):
        cache["blocks.0.attn.hook_result"]  # not provided (README lists what is not)


# ---------------------------------------------------------------- which attention kernel runs


def _aten_calls(model, idx, names=None) -> dict[str, int]:
    """How often each aten operator ran in one forward pass (torch's own profiler)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        if names is None:
            model(idx)
        else:
            model.run_with_cache(idx, names)
    return {e.key: e.count for e in prof.key_averages()}


def test_fused_attention_runs_unless_someone_listens_to_the_pattern(small_model):
    n = small_model.config.n_layer
    idx = torch.randint(0, small_model.config.vocab_size, (1, 12))
    plain = _aten_calls(small_model, idx)
    assert plain.get("aten::scaled_dot_product_attention") == n and "aten::_softmax" not in plain
    resid = _aten_calls(small_model, idx, ["blocks.0.resid_post", "blocks.1.attn.z"])  # not scores/pattern
    assert resid.get("aten::scaled_dot_product_attention") == n and "aten::_softmax" not in resid
    one = _aten_calls(small_model, idx, [f"blocks.{n - 1}.attn.pattern"])  # only the last layer listens
    assert one.get("aten::scaled_dot_product_attention") == n - 1 and one.get("aten::_softmax") == 1
    every = _aten_calls(small_model, idx, [f"blocks.{i}.attn.scores" for i in range(n)])
    assert "aten::scaled_dot_product_attention" not in every and every.get("aten::_softmax") == n
