"""The GPT family, from a bigram table to a stack of transformer blocks.

Read it like the lecture: embeddings -> (attention -> MLP) blocks -> final LayerNorm -> logits.
One class covers the whole ladder; the presets at the bottom switch parts on and off.

Every interesting activation passes through a `HookPoint`. Nobody listens during training,
so the hook costs one function call; `run_with_cache` listens to all of them and returns
a dict of short names (`blocks.0.attn.pattern`, `blocks.1.resid_post`, ...) that also answers to
TransformerLens's names (`blocks.0.attn.hook_pattern`, ...) with TransformerLens's shapes (lens_names.py).
"""

from __future__ import annotations

import contextlib
import math
import numbers
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
from torch.nn import functional as F

from .errors import ConfigError
from .lens_names import ActivationCache


# Upper bounds far above anything a CPU classroom trains (GPT-2 XL has 48 layers of 1,600), so that a
# damaged or hostile checkpoint cannot ask for a model that takes minutes or gigabytes to build.
MAX_SETTINGS = dict(n_layer=128, n_head=256, n_embd=16_384, block_size=16_384, vocab_size=1_000_000)
_SETTING_TYPES = {"int": numbers.Integral, "float": numbers.Real, "bool": bool}
_TYPE_WORDS = {numbers.Integral: "a whole number", numbers.Real: "a number", bool: "true or false"}


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 64  # the longest context the model sees
    n_layer: int = 4  # 0 = no attention at all: a bigram model
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True  # biases in Linear and LayerNorm layers (they help a little in short CPU runs)
    # Switches for the lecture's ladder; a full GPT has all of them on.
    pos_embd: bool = True  # learned position embeddings
    mlp: bool = True  # a feed-forward layer after attention in each block
    residual: bool = True  # x + f(x) instead of f(x)
    layernorm: bool = True  # pre-norm in each block and a final LayerNorm

    def __post_init__(self):
        self.validate()

    def validate(self):
        for f in fields(self):  # settings read from a file can hold anything JSON can
            v, kind = getattr(self, f.name), _SETTING_TYPES[f.type]
            if isinstance(v, bool) != (kind is bool) or not isinstance(v, kind):
                raise ConfigError(f"{f.name} must be {_TYPE_WORDS[kind]}, not {v!r}.")
        for name in ("vocab_size", "block_size", "n_embd"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1 (got {getattr(self, name)}).")
        for name, most in MAX_SETTINGS.items():
            if getattr(self, name) > most:
                raise ConfigError(f"{name} can be at most {most:,} (got {getattr(self, name):,}).")
        if self.n_layer < 0:
            raise ConfigError(f"n_layer must be 0 or more (got {self.n_layer}).")
        if self.n_layer > 0:
            if self.n_head < 1:
                raise ConfigError(f"n_head must be at least 1 (got {self.n_head}).")
            if self.n_embd % self.n_head:
                raise ConfigError(
                    f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                    "each head gets an equal slice of the embedding."
                )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1) (got {self.dropout}).")

    def num_params(self) -> int:
        """The model's parameter count from the settings alone, without building it (what a file's
        header asks for is checked with this before anything is allocated)."""
        C, V, L = self.n_embd, self.vocab_size, self.n_layer
        norm = (2 * C if self.bias else C) if self.layernorm else 0

        def linear(n_in, n_out):
            return n_in * n_out + (n_out if self.bias else 0)

        attn = norm + linear(C, 3 * C) + linear(C, C)
        mlp = norm + linear(C, 4 * C) + linear(4 * C, C) if self.mlp else 0
        pos = self.block_size * C if self.pos_embd else 0
        return V * C + pos + L * (attn + mlp) + norm + linear(C, V)

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"Unknown model settings: {', '.join(sorted(unknown))}.")
        return cls(**d)


class HookPoint(nn.Module):
    """An identity layer that names an activation so that it can be read or changed."""

    def forward(self, x):
        return x

    def __call__(self, x):
        # skip nn.Module's call machinery when nobody listens: hooks are free during training
        return super().__call__(x) if self._forward_hooks else x

    @property
    def active(self) -> bool:
        return bool(self._forward_hooks)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_scores = HookPoint()  # (B, nh, T, T) before softmax, -inf above the diagonal
        self.hook_pattern = HookPoint()  # (B, nh, T, T) attention weights, rows sum to 1
        self.hook_z = HookPoint()  # (B, nh, T, hs) each head's output; zero a head here to ablate it
        self.hook_out = HookPoint()  # (B, T, C) what attention adds to the residual stream

    def forward(self, x, past_kv=None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        # (B, T, C) -> (B, nh, T, hs): the heads become a batch dimension
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if past_kv is not None:  # generation: keys and values of earlier tokens are remembered
            k, v = past_kv.extend(k, v)
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        watched = self.hook_scores.active or self.hook_pattern.active
        z = self.hook_z(self._explicit(q, k, v) if watched else self._fused(q, k, v))
        y = z.transpose(1, 2).contiguous().view(B, T, C)  # concatenate the heads again
        return self.hook_out(self.resid_dropout(self.c_proj(y)))

    def _explicit(self, q, k, v):
        """The lecture's attention, step by step: used when someone wants to see the scores or the pattern."""
        scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(k.size(-1)))
        scores = self.hook_scores(scores.masked_fill(~_causal_mask(q, k), float("-inf")))
        pattern = self.hook_pattern(F.softmax(scores, dim=-1))
        return self.attn_dropout(pattern) @ v

    def _fused(self, q, k, v):
        """The same computation in one kernel (fast; used in training)."""
        T, T_k = q.size(2), k.size(2)
        offset = T > 1 and T != T_k  # new tokens after cached ones: the mask's diagonal moves right
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=_causal_mask(q, k) if offset else None, is_causal=T > 1 and T == T_k,
            dropout_p=self.dropout if self.training else 0.0,
        )


def _causal_mask(q, k) -> torch.Tensor:
    """(T, T_k), True where query i (at absolute position T_k - T + i) may look: keys 0..T_k - T + i."""
    T, T_k = q.size(2), k.size(2)
    return torch.ones(T, T_k, dtype=torch.bool, device=q.device).tril(diagonal=T_k - T)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.hook_pre = HookPoint()  # (B, T, 4 * n_embd) before the non-linearity
        self.hook_hidden = HookPoint()  # (B, T, 4 * n_embd) after the non-linearity
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)
        self.hook_out = HookPoint()

    def forward(self, x):
        x = self.hook_pre(self.c_fc(x))  # widen every token to 4 * n_embd numbers
        x = self.hook_hidden(self.gelu(x))  # the neurons: keep (mostly) the positive part
        x = self.c_proj(x)  # and back to n_embd
        return self.hook_out(self.dropout(x))


def _norm(config: GPTConfig) -> nn.Module:
    return nn.LayerNorm(config.n_embd, bias=config.bias) if config.layernorm else nn.Identity()


class Block(nn.Module):
    """Communication (attention) followed by computation (MLP), each with a residual path."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.residual = config.residual
        self.ln_1 = _norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = _norm(config) if config.mlp else None
        self.mlp = MLP(config) if config.mlp else None
        self.hook_resid_pre = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, x, past_kv=None):
        x = self.hook_resid_pre(x)
        a = self.attn(self.ln_1(x), past_kv)
        x = self.hook_resid_mid(x + a if self.residual else a)
        if self.mlp is not None:
            m = self.mlp(self.ln_2(x))
            x = x + m if self.residual else m
        return self.hook_resid_post(x)


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)  # token embeddings
        self.wpe = nn.Embedding(config.block_size, config.n_embd) if config.pos_embd else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = _norm(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=config.bias)
        self.hook_embed = HookPoint()
        self.hook_pos_embed = HookPoint()
        self.hook_ln_final = HookPoint()
        self.hook_logits = HookPoint()
        if self.wte.weight.is_meta:  # built to be loaded or counted: random numbers would be thrown away
            return
        self.apply(self._init_weights)
        # GPT-2's trick: scale the layers that write into the residual stream by depth
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * max(config.n_layer, 1)))

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx, targets=None, kv_cache: "KVCache | None" = None):
        B, T = idx.shape
        start = kv_cache.length if kv_cache is not None else 0
        if start + T > self.config.block_size:
            raise ConfigError(
                f"The model sees at most block_size={self.config.block_size} tokens, got {start + T}."
            )
        x = self.hook_embed(self.wte(idx))
        if self.wpe is not None:
            pos = torch.arange(start, start + T, device=idx.device)
            x = x + self.hook_pos_embed(self.wpe(pos))
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, kv_cache.layers[i] if kv_cache is not None else None)
        if kv_cache is not None:
            kv_cache.length += T
        logits = self.hook_logits(self.lm_head(self.hook_ln_final(self.ln_f(x))))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss

    # --- looking inside -------------------------------------------------------------

    def hook_points(self) -> dict[str, HookPoint]:
        """Every named activation: 'blocks.0.attn.hook_pattern' is called 'blocks.0.attn.pattern'."""
        return {
            name.replace("hook_", ""): m for name, m in self.named_modules() if isinstance(m, HookPoint)
        }

    @contextlib.contextmanager
    def hooks(self, fns: dict):
        """Run code with functions attached to hook points: fn(tensor) -> tensor or None."""
        points = self.hook_points()
        handles = []
        try:
            for name, fn in fns.items():
                if name not in points:
                    raise ConfigError(f"No activation called {name!r} in this model.")
                handles.append(points[name].register_forward_hook(lambda m, args, out, fn=fn: fn(out)))
            yield self
        finally:
            for h in handles:
                h.remove()

    @torch.no_grad()
    def run_with_cache(self, idx, names=None):
        """Forward pass that also returns every named activation (or only `names`), detached.

        Interventions compose: inside `with model.ablate_heads(...)` the cache shows the ablated run.
        """
        cache = ActivationCache()

        def saver(name):
            def save(t):
                cache[name] = t.detach()
            return save

        with self.hooks({name: saver(name) for name in (names or self.hook_points())}):
            logits, _ = self(idx)
        return logits, cache

    def logit_lens(self, cache) -> torch.Tensor:
        """What the model would predict if it stopped after each layer.

        Returns (n_layer + 1, B, T, vocab): row 0 reads the embeddings, row i the output of block i-1.
        The final LayerNorm is applied afresh to every intermediate residual stream, with that
        stream's own mean and variance (not the scale cached from the last layer).
        """
        streams = [cache[f"blocks.{i}.resid_pre"] for i in range(self.config.n_layer)]
        if self.config.n_layer:
            streams.append(cache[f"blocks.{self.config.n_layer - 1}.resid_post"])
        else:  # a bigram model: the stream is just the embedding
            streams.append(cache["embed"] + cache.get("pos_embed", 0))
        with torch.no_grad():
            return torch.stack([self.lm_head(self.ln_f(s)) for s in streams])

    @contextlib.contextmanager
    def ablate_heads(self, heads):
        """Zero the output of the given (layer, head) pairs while inside the `with` block."""
        by_layer: dict[int, list[int]] = {}
        for layer, head in heads:
            if not (0 <= layer < self.config.n_layer and 0 <= head < self.config.n_head):
                raise ConfigError(f"There is no head {head} in layer {layer} of this model.")
            by_layer.setdefault(layer, []).append(head)

        def zero(hs):
            def fn(z):
                z = z.clone()
                z[:, hs] = 0.0
                return z
            return fn

        with self.hooks({f"blocks.{l}.attn.z": zero(hs) for l, hs in by_layer.items()}):
            yield self


class LayerKV:
    """Keys and values of one layer for the tokens seen so far (for fast generation)."""

    def __init__(self, capacity: int):
        self.capacity, self.length = capacity, 0
        self.k = self.v = None  # (B, nh, capacity, hs), filled from the left

    def extend(self, k, v):
        if self.k is None:  # allocate once: writing into a buffer is cheaper than torch.cat per token
            B, nh, _, hs = k.shape
            self.k = k.new_empty(B, nh, self.capacity, hs)
            self.v = v.new_empty(B, nh, self.capacity, hs)
        end = self.length + k.size(2)
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class KVCache:
    def __init__(self, n_layer: int, block_size: int):
        self.layers = [LayerKV(block_size) for _ in range(n_layer)]
        self.length = 0  # tokens already processed


# The lecture's ladder, one step at a time. Attention presets keep a residual path and LayerNorm so
# that each step trains well in a minute on a CPU; switch them off to see why the lecture adds them.
PRESETS: dict[str, dict] = {
    "bigram": dict(n_layer=0, n_embd=64, pos_embd=False, layernorm=False, mlp=False),
    "single_head": dict(n_layer=1, n_head=1, n_embd=64, mlp=False),
    "multi_head": dict(n_layer=1, n_head=4, n_embd=64, mlp=False),
    "blocks": dict(n_layer=3, n_head=4, n_embd=64),
    "gpt": dict(n_layer=4, n_head=4, n_embd=128),
    "induction": dict(n_layer=2, n_head=1, n_embd=64, mlp=False),  # one head a layer: it cannot share the job
}
LADDER = ["bigram", "single_head", "multi_head", "blocks", "gpt"]  # the lecture's steps (not the induction preset)
PRESET_TITLES = {
    "bigram": "Bigram: the current token alone predicts the next (a lookup table)",
    "single_head": "One self-attention head: each token looks back at earlier tokens",
    "multi_head": "Multi-head attention: four smaller heads look for different things",
    "blocks": "Blocks: attention + MLP, three layers deep",
    "gpt": "GPT: four wider blocks (nanoGPT's CPU 'baby' size)",
    "induction": "Induction head: two one-head layers that learn to copy (on repeated Shakespeare)",
}


def preset_config(name: str, vocab_size: int, block_size: int = 64, **overrides) -> GPTConfig:
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return GPTConfig(vocab_size=vocab_size, block_size=block_size, **{**PRESETS[name], **overrides})
