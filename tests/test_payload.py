"""Every figure a page sends stays within a byte budget (the bundled model, a full 64-token prompt).

Each rerun sends its figures to the browser again: a builder that starts sending per-cell text or
floats as decimal strings would slow every click of every student. Budgets are today's sizes plus
about a quarter; raise one only with a reason (see README, "What a student waits for").
"""

import json

import pytest
import torch

from gptviz import analysis as A
from gptviz import viz

PROMPT = "ROMEO:\nBut soft, what light through yonder window breaks? It is the"[:64]
BUDGET_KB = {  # JSON as plotly / Vega-Lite receive it
    "attention grid": 470,  # 16 heads x 64 x 64 float32 cells, sent as binary (base64)
    "head close-up": 150,
    "row bars": 14,
    "next-token bars": 10,
    "logit lens": 11,
    "residual norms": 20,
    "embeddings 2-D": 13,
    "embeddings 3-D": 13,
    "position similarity": 40,
    "loss chart": 33,
}


@pytest.fixture(scope="module")
def figures(ckpt):
    tok, model = ckpt.tokenizer, ckpt.model.eval()
    ids = tok.encode(PROMPT)
    assert len(ids) == 64 == model.config.block_size
    labels = [tok.label(i) for i in ids]
    logits, cache = model.run_with_cache(torch.tensor([ids]))
    patterns = A.attention_for(cache, model.config.n_layer)
    wte = model.wte.weight.detach()
    vocab = [tok.label(i) for i in range(wte.shape[0])]
    coords2, explained2 = A.pca(wte, 2)
    coords3, explained3 = A.pca(wte, 3)
    return {
        "attention grid": viz.attention_grid(patterns, labels, detector_badges={(0, 2): "prev"}),
        "head close-up": viz.attention_head_chart(patterns[0, 0], labels, query=63, key=0),
        "row bars": viz.attention_row_bars(patterns[0, 0, 63], labels, "Where does query 63 look?", highlight=0),
        "next-token bars": viz.next_token_bars(torch.softmax(logits[0, -1], -1), tok.label),
        "logit lens": viz.logit_lens_chart(A.logit_lens_table(model, cache, tok)),
        "residual norms": viz.residual_norm_heatmap(A.residual_norms(cache, model.config.n_layer), labels),
        "embeddings 2-D": viz.embedding_scatter(coords2, vocab, [A.char_class(v) for v in vocab],
                                                explained=explained2),
        "embeddings 3-D": viz.embedding_scatter(coords3, vocab, list(range(len(vocab))), explained=explained3),
        "position similarity": viz.similarity_heatmap(A.cosine_similarity_matrix(model.wpe.weight),
                                                      [str(i) for i in range(64)]),
        "loss chart": viz.loss_chart([{"name": "bundled", **ckpt.meta["history"]}], tok.vocab_size),
    }


@pytest.mark.parametrize("name", BUDGET_KB)
def test_each_figure_stays_within_its_budget(figures, name):
    fig = figures[name]
    size = len(json.dumps(fig) if isinstance(fig, dict) else fig.to_json()) / 1024
    assert size <= BUDGET_KB[name], f"{name}: {size:.0f} KB, budget {BUDGET_KB[name]} KB"


def test_heatmaps_travel_as_binary_not_as_decimal_text(figures):
    grid = json.loads(figures["attention grid"].to_json())
    assert all(isinstance(t["z"], dict) and t["z"]["dtype"] == "f4" for t in grid["data"])
