"""The numbers behind each picture: tensors in, plain tensors / lists / dicts out.

Pages call these once per (model, prompt) and hand the results to `gptviz.viz`;
nothing here draws, and nothing here knows about Streamlit.

    logits, cache = model.run_with_cache(idx)
    table = logit_lens_table(model, cache, tokenizer)       # -> viz.logit_lens_chart(table)
    coords, ratio = pca(model.wte.weight, k=2)              # -> viz.embedding_scatter(coords, ...)
"""

from __future__ import annotations

import math
import re
import unicodedata

import torch
from torch.nn import functional as F

from .model import GPT
from .tokenizers import Tokenizer

# ----------------------------------------------------------------------------- embeddings


@torch.no_grad()
def pca(x: torch.Tensor, k: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Project the rows of x (N, D) on their k main directions.

    Returns coords (N, k) and the share of the variance each direction explains (k,), descending.
    Each direction's sign is fixed (its largest loading is positive) so the picture does not
    mirror itself between reruns or training snapshots.
    """
    x = x.detach().float().cpu()
    centred = x - x.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    m = min(k, vh.shape[0])
    comps = vh[:m]
    biggest = comps.abs().argmax(dim=1)
    signs = torch.sign(comps[torch.arange(m), biggest])
    comps = comps * torch.where(signs == 0, 1.0, signs)[:, None]

    coords = torch.zeros(x.shape[0], k)
    coords[:, :m] = centred @ comps.T
    var = s**2
    ratio = torch.zeros(k)
    if var.sum() > 0:  # all points equal: nothing to explain
        ratio[:m] = var[:m] / var.sum()
    return coords, ratio


@torch.no_grad()
def cosine_similarity_matrix(x: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (N, N) cosine of every pair of rows (e.g. position embeddings)."""
    unit = F.normalize(x.detach().float(), dim=-1)
    return (unit @ unit.T).clamp(-1.0, 1.0)


@torch.no_grad()
def nearest_neighbours(weights: torch.Tensor, token_id: int, k: int = 10) -> list[tuple[int, float]]:
    """The k tokens whose embeddings point most nearly the same way as token_id's: [(id, cosine)]."""
    unit = F.normalize(weights.detach().float(), dim=-1)
    sims = unit @ unit[token_id]
    sims[token_id] = float("-inf")  # a token is always its own nearest neighbour
    k = min(k, weights.shape[0] - 1)
    if k <= 0:
        return []
    values, ids = sims.topk(k)
    return [(int(i), float(v)) for i, v in zip(ids, values.clamp(-1.0, 1.0))]


# ----------------------------------------------------------------------------- token statistics


def token_counts(ids, vocab_size: int) -> torch.Tensor:
    """How often each id occurs: (vocab_size,) int64. ids: a list or a tensor of ids below vocab_size."""
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    return torch.bincount(ids, minlength=vocab_size)


def top_tokens(counts: torch.Tensor, k: int = 20) -> list[tuple[int, int]]:
    """The k most frequent ids with their counts, most frequent first; ties by id; zeros left out."""
    counts = torch.as_tensor(counts)
    values, ids = torch.sort(counts, descending=True, stable=True)
    return [(int(i), int(c)) for i, c in zip(ids[:k], values[:k]) if c > 0]


CHAR_CLASSES = ("uppercase", "lowercase", "digit", "space", "punctuation", "other")
_WHITESPACE_MARKS = set("␣⏎⇥␍")  # how tokenizers.visible() shows whitespace in labels
_HEX_BYTE = re.compile(r"<0x[0-9A-F]{2}>")


def char_class(label: str) -> str:
    """The kind of character a token starts with, for colouring embeddings.

    Takes a raw character or a token label. Multi-character tokens (BPE, gpt2) get the class
    of their first non-whitespace character, so " The" is "uppercase" and " the" "lowercase";
    a token of only whitespace is "space". Symbols such as "+" or "$" count as punctuation,
    raw bytes (<0xE2>) and letters without case as "other".
    """
    if _HEX_BYTE.fullmatch(label):
        return "other"
    for c in label:
        if c.isspace() or c in _WHITESPACE_MARKS:
            continue
        if c.isupper():
            return "uppercase"
        if c.islower():
            return "lowercase"
        if c.isdigit():
            return "digit"
        if unicodedata.category(c)[0] in "PS":
            return "punctuation"
        return "other"
    return "space" if label else "other"


# ----------------------------------------------------------------------------- inside the model


def _residual_streams(cache: dict, n_layer: int) -> list[torch.Tensor]:
    """The residual stream at each layer boundary: embeddings, then after each block."""
    if n_layer == 0:
        return [cache["embed"] + cache.get("pos_embed", 0)]
    return [cache[f"blocks.{i}.resid_pre"] for i in range(n_layer)] + [cache[f"blocks.{n_layer - 1}.resid_post"]]


def layer_names(n_layer: int) -> list[str]:
    """Row names of the per-layer views: 'embed', 'block 0', ..."""
    return ["embed"] + [f"block {i}" for i in range(n_layer)]


@torch.no_grad()
def residual_norms(cache: dict, n_layer: int) -> torch.Tensor:
    """(n_layer + 1, T): the L2 norm of batch 0's residual stream at each position and layer boundary."""
    return torch.stack([s[0].float().norm(dim=-1) for s in _residual_streams(cache, n_layer)]).cpu()


def attention_for(cache: dict, n_layer: int) -> torch.Tensor:
    """(n_layer, n_head, T, T): every attention pattern of batch 0, ready for viz.attention_grid."""
    if n_layer == 0:
        T = cache["embed"].shape[1]
        return torch.zeros(0, 0, T, T)
    return torch.stack([cache[f"blocks.{i}.attn.pattern"][0] for i in range(n_layer)]).cpu()


@torch.no_grad()
def logit_lens_table(model: GPT, cache: dict, tokenizer: Tokenizer, position: int = -1, k: int = 5) -> dict:
    """What the model would predict at one position if it stopped after each layer.

    Rows: 'embed', 'block 0', ... (the last row is the model's real prediction). For each row:
    the top-k labels and probabilities, and the rank (1 = most likely) and probability of the
    final top-1 token. `first_layer_top1` is the first row where that token already ranks #1
    (n_layer when only the full model gets there; None only if it never does).
    """
    n_layer = model.config.n_layer
    lens = model.logit_lens(cache)  # (n_layer + 1, B, T, vocab)
    T = lens.shape[2]
    probs = F.softmax(lens[:, 0, position].float(), dim=-1).cpu()
    answer = int(probs[-1].argmax())
    answer_p = probs[:, answer]
    ranks = (probs > answer_p[:, None]).sum(dim=1) + 1
    top_p, top_i = probs.topk(min(k, probs.shape[1]), dim=-1)
    first = next((row for row, r in enumerate(ranks.tolist()) if r == 1), None)
    return {
        "position": position % T,
        "layers": layer_names(n_layer),
        "top_ids": top_i.tolist(),
        "top_labels": [[tokenizer.label(i) for i in row] for row in top_i.tolist()],
        "top_probs": top_p.tolist(),
        "answer_id": answer,
        "answer_label": tokenizer.label(answer),
        "answer_rank": ranks.tolist(),
        "answer_prob": answer_p.tolist(),
        "first_layer_top1": first,
    }


@torch.no_grad()
def ablation_effect(model: GPT, idx: torch.Tensor, heads: list[tuple[int, int]], targets=None) -> dict:
    """How the next-token prediction (last position of batch 0) changes when some heads are silenced.

    heads: [(layer, head), ...]. Returns probs_before / probs_after (vocab,), their KL divergence
    KL(before || after) in nats, and loss_before / loss_after over the whole batch when targets are
    given (else None).
    """
    was_training = model.training
    model.eval()  # dropout would make before and after differ by chance
    try:
        logits, loss = model(idx, targets)
        with model.ablate_heads(list(heads)):
            logits_ab, loss_ab = model(idx, targets)
    finally:
        model.train(was_training)
    logp = F.log_softmax(logits[0, -1].float(), dim=-1).cpu()
    logq = F.log_softmax(logits_ab[0, -1].float(), dim=-1).cpu()
    kl = F.kl_div(logq, logp, log_target=True, reduction="sum")
    return {
        "probs_before": logp.exp(),
        "probs_after": logq.exp(),
        "kl": max(float(kl), 0.0),  # rounding can make a zero KL slightly negative
        "loss_before": None if loss is None else float(loss),
        "loss_after": None if loss_ab is None else float(loss_ab),
    }


def head_ablation_effect(model: GPT, idx: torch.Tensor, layer: int, head: int, targets=None) -> dict:
    """ablation_effect for one head."""
    return ablation_effect(model, idx, [(layer, head)], targets)


def prompt_targets(ids: list[int]) -> torch.Tensor | None:
    """Targets for the loss on a prompt itself: each token predicts the next; the last has none (-100)."""
    return torch.tensor([ids[1:] + [-100]]) if len(ids) > 1 else None


def loss_hints(history: dict, vocab_size: int, warmup_iters: int = 0) -> list[str]:
    """Plain-words readings of a loss curve, for students (nanoGPT's issues show these puzzle people)."""
    hints = []
    guess = math.log(vocab_size)
    steps, train = history.get("step", []), history.get("train_loss", [])
    after = [(s, l) for s, l in zip(steps, train) if s >= warmup_iters]
    if after:
        step, worst = max(after, key=lambda p: p[1])
        if worst > guess + 0.5:
            hints.append(f"The training loss jumped to {worst:.2f} at step {step}, above the random-guess line "
                         f"(ln {vocab_size} = {guess:.2f}): the learning rate is probably too high. Try it 3x lower.")
    evals, val, val_train = history.get("eval_step", []), history.get("val_loss", []), history.get("eval_train_loss", [])
    if len(val) >= 3:
        best = min(range(len(val)), key=val.__getitem__)
        if val[-1] > guess - 0.1 and evals[-1] > 0:
            hints.append("The validation loss is still at the random-guess line: the model has not learned yet. "
                         "Train longer or raise the learning rate.")
        elif best < len(val) - 1 and val[-1] > val[best] + 0.02:
            hints.append(f"The validation loss was lowest at step {evals[best]} ({val[best]:.3f}) and has risen "
                         "since: more steps no longer help.")
            if val_train and val_train[-1] < val_train[best] - 0.05:
                hints.append("Training loss keeps falling while validation loss rises: the model is memorising its "
                             "training text (overfitting). Try dropout, a smaller model or more text.")
    return hints
