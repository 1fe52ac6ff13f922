"""TransformerLens's names for the activations `run_with_cache` records, so its tutorials work here.

`GPT.run_with_cache` stores activations under short names (`blocks.0.attn.pattern`); the cache also
answers to TransformerLens's names (`blocks.0.attn.hook_pattern`), as views with its shapes. Kept out
of model.py so that the model reads like the lecture.
"""

from __future__ import annotations

import re

# TransformerLens's names for our activations: (its name pattern, our name, how its shape differs).
# Read from TransformerLens's components (HookedTransformer, abstract_attention, mlp, layer_norm).
_HEADS_LAST = "heads"  # ours (batch, head, pos, d_head), TransformerLens's (batch, pos, head, d_head)
_NO_BATCH = "batch"  # ours (pos, d_model), TransformerLens's (batch, pos, d_model)
TRANSFORMER_LENS_NAMES = [
    (r"hook_embed", "embed", None),
    (r"hook_pos_embed", "pos_embed", _NO_BATCH),
    (r"blocks\.(\d+)\.hook_resid_pre", "blocks.{0}.resid_pre", None),
    (r"blocks\.(\d+)\.attn\.hook_([qkvz])", "blocks.{0}.attn.{1}", _HEADS_LAST),
    (r"blocks\.(\d+)\.attn\.hook_attn_scores", "blocks.{0}.attn.scores", None),
    (r"blocks\.(\d+)\.attn\.hook_pattern", "blocks.{0}.attn.pattern", None),
    (r"blocks\.(\d+)\.hook_attn_out", "blocks.{0}.attn.out", None),
    (r"blocks\.(\d+)\.hook_resid_mid", "blocks.{0}.resid_mid", None),
    (r"blocks\.(\d+)\.mlp\.hook_pre", "blocks.{0}.mlp.pre", None),
    (r"blocks\.(\d+)\.mlp\.hook_post", "blocks.{0}.mlp.hidden", None),
    (r"blocks\.(\d+)\.hook_mlp_out", "blocks.{0}.mlp.out", None),
    (r"blocks\.(\d+)\.hook_resid_post", "blocks.{0}.resid_post", None),
    (r"ln_final\.hook_normalized", "ln_final", None),
]
_TL = [(re.compile(pattern), ours, view) for pattern, ours, view in TRANSFORMER_LENS_NAMES]


class ActivationCache(dict):
    """`run_with_cache`'s activations under our names; TransformerLens's names also work, as views
    with its shapes (no copy): cache["blocks.0.attn.hook_q"] is cache["blocks.0.attn.q"].transpose(1, 2)."""

    def _alias(self, name):
        for pattern, ours, view in _TL:
            m = pattern.fullmatch(name) if isinstance(name, str) else None
            if m and dict.__contains__(self, ours.format(*m.groups())):
                t = dict.__getitem__(self, ours.format(*m.groups()))
                if view == _HEADS_LAST:
                    return t.transpose(1, 2)
                if view == _NO_BATCH:
                    return t.expand(dict.__getitem__(self, "embed").shape[0], *t.shape)
                return t
        return None

    def __missing__(self, name):
        t = self._alias(name)
        if t is None:
            raise KeyError(name)
        return t

    def __contains__(self, name):
        return dict.__contains__(self, name) or self._alias(name) is not None

    def get(self, name, default=None):
        return self[name] if name in self else default
