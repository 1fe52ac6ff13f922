import pytest
import torch
from torch.nn import functional as F

from gptviz import analysis as A
from gptviz.model import GPT, preset_config


@pytest.fixture
def prompt(shakespeare_char):
    return torch.tensor([shakespeare_char.tokenizer.encode("First Citizen:\nB")])  # 16 tokens = block_size


# ----------------------------------------------------------------------------- pca


def rank2_cloud(n=40, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    scales = torch.tensor([[3.0, 1.0]])  # two directions of clearly different spread
    return (torch.randn(n, 2, generator=g) * scales) @ torch.randn(2, d, generator=g) + 5.0


def test_pca_of_a_rank2_cloud_keeps_all_pairwise_distances():
    x = rank2_cloud()
    coords, ratio = A.pca(x, k=2)
    assert coords.shape == (40, 2)
    exact = "donot_use_mm_for_euclid_dist"  # the fast path is imprecise for near-equal points
    torch.testing.assert_close(torch.cdist(coords, coords, compute_mode=exact), torch.cdist(x, x, compute_mode=exact),
                               atol=1e-3, rtol=1e-3)
    assert ratio[0] >= ratio[1] > 0
    assert ratio.sum() == pytest.approx(1.0, abs=1e-5)  # two directions hold all the variance


def test_pca_explained_ratios_are_descending_and_sum_to_at_most_one():
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(1))
    coords, ratio = A.pca(x, k=3)
    assert coords.shape == (50, 3)
    assert torch.all(ratio[:-1] >= ratio[1:])
    assert 0 < ratio.sum() < 1
    assert torch.all(coords.var(0)[:-1] >= coords.var(0)[1:])  # the first axis spreads the points most


def test_pca_sign_does_not_depend_on_row_order_and_mirrors_with_the_data():
    x = rank2_cloud(seed=2)
    coords, _ = A.pca(x, k=2)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(A.pca(x[perm], k=2)[0], coords[perm], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(A.pca(-x, k=2)[0], -coords, atol=1e-4, rtol=1e-4)


def test_pca_with_fewer_points_than_components_pads_with_zeros():
    coords, ratio = A.pca(torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]]), k=3)
    assert coords.shape == (2, 3) and ratio.shape == (3,)
    assert ratio[0] == pytest.approx(1.0) and coords[:, 1:].abs().max() < 1e-5  # 2 points: one line
    assert torch.all(A.pca(torch.ones(5, 4), k=2)[1] == 0)  # identical points: nothing to explain


# ----------------------------------------------------------------------------- neighbours, similarity


def test_a_token_with_the_same_direction_is_the_nearest_neighbour(small_model):
    weights = small_model.wte.weight.detach().clone()
    weights[7] = 2.5 * weights[3]  # same direction, other length: cosine 1
    neighbours = A.nearest_neighbours(weights, 3, k=5)
    assert len(neighbours) == 5
    assert neighbours[0][0] == 7 and neighbours[0][1] == pytest.approx(1.0, abs=1e-5)
    assert 3 not in [i for i, _ in neighbours]
    cosines = [c for _, c in neighbours]
    assert cosines == sorted(cosines, reverse=True)
    assert neighbours[1][1] == pytest.approx(F.cosine_similarity(weights[3], weights[neighbours[1][0]], dim=0).item(),
                                             abs=1e-5)


def test_nearest_neighbours_k_is_capped_by_the_vocabulary():
    assert len(A.nearest_neighbours(torch.randn(4, 3), 0, k=10)) == 3


def test_cosine_similarity_matrix_matches_torch(small_model):
    pos = small_model.wpe.weight
    sim = A.cosine_similarity_matrix(pos)
    assert sim.shape == (16, 16)
    torch.testing.assert_close(sim.diagonal(), torch.ones(16))
    torch.testing.assert_close(sim, sim.T)
    torch.testing.assert_close(sim[2, 5], F.cosine_similarity(pos[2], pos[5], dim=0).detach())


# ----------------------------------------------------------------------------- token statistics


def test_token_counts_and_top_tokens():
    counts = A.token_counts([3, 1, 3, 0, 3, 1, 4], vocab_size=6)
    assert counts.tolist() == [1, 2, 0, 3, 1, 0]
    assert A.token_counts(torch.tensor([[3, 1], [3, 0]]), 6).tolist() == [1, 1, 0, 2, 0, 0]
    assert A.top_tokens(counts, 3) == [(3, 3), (1, 2), (0, 1)]  # tie between 0 and 4: smaller id first
    assert A.top_tokens(counts, 10) == [(3, 3), (1, 2), (0, 1), (4, 1)]  # zero counts left out


@pytest.mark.parametrize("label,expected", [
    ("A", "uppercase"), ("z", "lowercase"), ("7", "digit"), (" ", "space"), ("\n", "space"),
    ("␣", "space"), ("⏎", "space"), ("␣␣␣", "space"), (",", "punctuation"), ("+", "punctuation"),
    ("$", "punctuation"), ("␣The", "uppercase"), ("␣the", "lowercase"), ("␣42", "digit"),
    ("é", "lowercase"), ("中", "other"), ("<0xE2>", "other"), ("", "other"),
])
def test_char_class(label, expected):
    assert A.char_class(label) == expected


def test_every_shakespeare_label_has_a_class(shakespeare_char):
    classes = [A.char_class(label) for label in shakespeare_char.tokenizer.labels()]
    assert set(classes) == {"uppercase", "lowercase", "space", "punctuation"}  # no digits in these 60k chars
    chars = shakespeare_char.tokenizer.chars
    assert classes.count("uppercase") == sum(c.isupper() for c in chars) > 20
    assert classes.count("lowercase") == 26


# ----------------------------------------------------------------------------- inside the model


def test_logit_lens_table_ends_with_the_models_own_prediction(small_model, shakespeare_char, prompt):
    tok = shakespeare_char.tokenizer
    logits, cache = small_model.run_with_cache(prompt)
    table = A.logit_lens_table(small_model, cache, tok, k=5)
    n_layer = small_model.config.n_layer
    assert table["layers"] == ["embed", "block 0", "block 1"]
    assert table["position"] == prompt.shape[1] - 1
    assert len(table["top_labels"]) == len(table["top_probs"]) == n_layer + 1
    answer = int(logits[0, -1].argmax())
    assert table["answer_id"] == answer == table["top_ids"][-1][0]
    assert table["answer_label"] == tok.label(answer)
    assert table["answer_rank"][-1] == 1
    assert table["answer_prob"][-1] == pytest.approx(float(torch.softmax(logits[0, -1], -1)[answer]), rel=1e-5)
    first = table["first_layer_top1"]
    assert first is not None and first <= n_layer
    assert table["answer_rank"][first] == 1 and all(r > 1 for r in table["answer_rank"][:first])
    for ids, labels, probs in zip(table["top_ids"], table["top_labels"], table["top_probs"]):
        assert labels == [tok.label(i) for i in ids]
        assert probs == sorted(probs, reverse=True) and len(probs) == 5


def test_logit_lens_table_at_another_position(small_model, shakespeare_char, prompt):
    logits, cache = small_model.run_with_cache(prompt)
    table = A.logit_lens_table(small_model, cache, shakespeare_char.tokenizer, position=3, k=2)
    assert table["position"] == 3 and table["answer_id"] == int(logits[0, 3].argmax())
    assert len(table["top_ids"][0]) == 2


def test_logit_lens_of_a_bigram_model_has_one_row(shakespeare_char, prompt):
    torch.manual_seed(0)
    model = GPT(preset_config("bigram", vocab_size=shakespeare_char.tokenizer.vocab_size, block_size=16)).eval()
    logits, cache = model.run_with_cache(prompt)
    table = A.logit_lens_table(model, cache, shakespeare_char.tokenizer)
    assert table["layers"] == ["embed"] and table["first_layer_top1"] == 0
    assert table["answer_id"] == int(logits[0, -1].argmax())
    assert A.residual_norms(cache, 0).shape == (1, 16)
    assert A.attention_for(cache, 0).shape == (0, 0, 16, 16)


def test_residual_norms_match_a_hand_computation(small_model, prompt):
    _, cache = small_model.run_with_cache(prompt)
    norms = A.residual_norms(cache, 2)
    assert norms.shape == (3, 16)
    T = prompt.shape[1]
    x0 = small_model.wte(prompt[0]) + small_model.wpe(torch.arange(T))
    torch.testing.assert_close(norms[0], x0.norm(dim=-1).detach())
    torch.testing.assert_close(norms[2], cache["blocks.1.resid_post"][0].norm(dim=-1))
    x1 = small_model.blocks[0](x0[None])[0]
    torch.testing.assert_close(norms[1], x1.norm(dim=-1).detach(), atol=1e-5, rtol=1e-5)


def test_attention_for_stacks_the_patterns_of_batch_0(small_model, prompt):
    _, cache = small_model.run_with_cache(torch.cat([prompt, prompt.flip(1)]))
    att = A.attention_for(cache, 2)
    assert att.shape == (2, 2, 16, 16)
    torch.testing.assert_close(att[1, 0], cache["blocks.1.attn.pattern"][0, 0])
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 2, 16))
    assert torch.all(att.triu(diagonal=1) == 0)  # no looking ahead


def test_ablating_a_head_changes_the_prediction(small_model, prompt):
    targets = torch.roll(prompt, -1, dims=1)
    small_model.train()
    effect = A.head_ablation_effect(small_model, prompt, layer=1, head=0, targets=targets)
    assert small_model.training  # the mode is restored
    small_model.eval()
    logits, loss = small_model(prompt, targets)
    torch.testing.assert_close(effect["probs_before"], torch.softmax(logits[0, -1], -1).detach())
    assert effect["loss_before"] == pytest.approx(loss.item(), rel=1e-5)
    assert effect["probs_after"].sum().item() == pytest.approx(1.0, abs=1e-5)
    assert not torch.equal(effect["probs_before"], effect["probs_after"])
    assert effect["kl"] > 0 and effect["loss_after"] != effect["loss_before"]
    manual_kl = (effect["probs_before"] * (effect["probs_before"] / effect["probs_after"]).log()).sum()
    assert effect["kl"] == pytest.approx(manual_kl.item(), rel=1e-3, abs=1e-9)


def test_ablating_a_head_whose_output_is_thrown_away_changes_nothing(small_model, prompt):
    hs = small_model.config.head_size
    with torch.no_grad():  # the output projection ignores head 1 of layer 0: silencing it is harmless
        small_model.blocks[0].attn.c_proj.weight[:, hs:2 * hs] = 0.0
    effect = A.head_ablation_effect(small_model, prompt, layer=0, head=1)
    torch.testing.assert_close(effect["probs_before"], effect["probs_after"])
    assert effect["kl"] == pytest.approx(0.0, abs=1e-7)
    assert effect["loss_before"] is None and effect["loss_after"] is None


def _history(val, train, steps=None):
    steps = steps or list(range(0, 100 * len(val), 100))
    return {"step": list(range(steps[-1])), "train_loss": [3.0] * steps[-1], "eval_step": steps,
            "val_loss": val, "eval_train_loss": train}


def test_loss_hints_spot_overfitting():
    h = _history(val=[4.1, 2.5, 2.1, 2.0, 2.2, 2.4], train=[4.1, 2.4, 1.9, 1.6, 1.2, 0.9])
    hints = A.loss_hints(h, vocab_size=65)
    assert any("lowest at step 300 (2.000)" in s for s in hints)
    assert any("overfitting" in s for s in hints)


def test_loss_hints_spot_a_too_high_learning_rate_and_nothing_learned():
    h = _history(val=[4.17, 4.2, 4.15], train=[4.17, 4.2, 4.15])
    h["train_loss"][50] = 9.0  # a spike after warm-up
    hints = A.loss_hints(h, vocab_size=65, warmup_iters=30)
    assert any("jumped to 9.00 at step 50" in s and "too high" in s for s in hints)
    assert any("not learned yet" in s for s in hints)


def test_a_healthy_curve_gets_no_hints():
    h = _history(val=[4.1, 2.5, 2.2, 2.05], train=[4.1, 2.45, 2.1, 1.95])
    assert A.loss_hints(h, vocab_size=65, warmup_iters=30) == []
