"""What a run will cost, before it starts: parameters, memory, time."""

import dataclasses

import pytest
import torch

from gptviz import budget
from gptviz.errors import ConfigError
from gptviz.model import GPT, GPTConfig, preset_config
from gptviz.train import TrainConfig, Trainer

PEAK = 100e9  # FLOP/s: any machine will do, the tests compare estimates with each other


def test_parameters_are_counted_without_building_real_weights():
    for preset in ("bigram", "multi_head", "gpt"):
        config = preset_config(preset, 65)
        torch.manual_seed(0)
        assert budget.num_params(config) == GPT(config).num_params()


def test_a_model_built_on_the_meta_device_skips_the_random_init():
    class Counting(GPT):
        inits = 0

        def _init_weights(self, module):
            Counting.inits += 1
            super()._init_weights(module)

    config = preset_config("gpt", 65)
    with torch.device("meta"):  # how checkpoints are opened and parameters counted
        model = Counting(config)
    assert Counting.inits == 0 and all(p.is_meta for p in model.parameters())
    model = Counting(config)  # a real model still gets GPT-2's init, residual projections scaled by depth
    assert Counting.inits > 0
    proj = model.blocks[0].attn.c_proj.weight
    assert proj.std().item() == pytest.approx(0.02 / (2 * config.n_layer) ** 0.5, rel=0.1)
    assert model.blocks[0].attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize("max_iters,eval_interval", [(13, 5), (20, 5), (3, 10), (7, 1)])
def test_the_evaluations_counted_are_the_ones_the_trainer_makes(shakespeare_char, small_config, max_iters,
                                                                eval_interval):
    cfg = TrainConfig(max_iters=max_iters, eval_interval=eval_interval, batch_size=4, eval_iters=1, sample_tokens=0)
    trainer = Trainer(small_config, cfg, shakespeare_char)
    trainer.run()
    assert budget.num_evals(cfg) == len(trainer.history["eval_step"])


def test_time_grows_with_steps_size_and_evaluations():
    config, cfg = preset_config("gpt", 65), TrainConfig(max_iters=400, eval_interval=100)
    est = budget.estimate(config, cfg, PEAK)
    assert 0 < est.eval_seconds < est.seconds
    longer = budget.estimate(config, dataclasses.replace(cfg, max_iters=800), PEAK)
    step = budget.step_seconds(config, est.params, cfg.batch_size * config.block_size, PEAK)
    assert longer.seconds - est.seconds == pytest.approx(400 * step + longer.eval_seconds - est.eval_seconds)
    often = dataclasses.replace(cfg, eval_interval=10)  # 41 evaluations instead of 5
    assert budget.estimate(config, often, PEAK).eval_seconds == pytest.approx(
        est.eval_seconds * budget.num_evals(often) / budget.num_evals(cfg))
    assert budget.estimate(config, dataclasses.replace(cfg, sample_tokens=0), PEAK).eval_seconds < est.eval_seconds
    assert budget.estimate(preset_config("gpt", 65, n_layer=8), cfg, PEAK).seconds > est.seconds
    assert budget.estimate(config, cfg, 2 * PEAK).seconds < est.seconds
    assert budget.estimate(config, cfg).seconds is None  # no measured speed, no guess


def test_a_tiny_model_still_costs_time_per_layer():
    # FLOPs alone would call a 16-wide model nearly free; its operations still take time each
    tiny, cfg = preset_config("gpt", 65, n_embd=16), TrainConfig(max_iters=100)
    flops_only = 100 * cfg.batch_size * tiny.block_size * budget.flops_per_token(tiny, budget.num_params(tiny)) / PEAK
    per_step = budget.step_seconds(tiny, budget.num_params(tiny), cfg.batch_size * tiny.block_size, PEAK)
    assert per_step * 100 > 10 * flops_only
    deeper = budget.step_seconds(preset_config("gpt", 65, n_embd=16, n_layer=8), budget.num_params(tiny),
                                 cfg.batch_size * tiny.block_size, PEAK)
    assert deeper > per_step


def test_a_big_vocabulary_costs_time_beyond_its_flops():
    # GPT-2's 50,257 logits per token: softmax and loss over 200 MB a batch, at memory speed, not matmul speed
    config, tokens = preset_config("gpt", 50257, n_layer=2, n_embd=32), 16 * 64
    params = budget.num_params(config)
    flops_only = tokens * budget.flops_per_token(config, params) / (budget.TYPICAL_MFU * PEAK)
    assert budget.step_seconds(config, params, tokens, PEAK) > 2 * flops_only
    assert budget.forward_seconds(config, params, tokens, PEAK) > budget.step_seconds(config, params, tokens, PEAK) / 3
    char = preset_config("gpt", 65, n_layer=2, n_embd=32)  # a small vocabulary: forward is about a third
    forward, step = (f(char, budget.num_params(char), tokens, PEAK) for f in (budget.forward_seconds, budget.step_seconds))
    assert step / 3 <= forward < step / 2


def test_memory_counts_weights_optimizer_and_activations_and_refuses_too_much():
    config = preset_config("gpt", 65)
    small, big = (budget.estimate(config, TrainConfig(batch_size=b)) for b in (8, 64))
    assert small.memory_bytes > 4 * 4 * small.params  # weights, gradients, two AdamW moments, and more
    assert big.memory_bytes > small.memory_bytes
    budget.check_fits(small)
    with pytest.raises(ConfigError, match=r"about [\d,]+ MB .* limit per training is 1 MB"):
        budget.check_fits(small, limit_bytes=1024**2)
    huge = GPTConfig(vocab_size=65, block_size=256, n_layer=8, n_head=8, n_embd=256)
    with pytest.raises(ConfigError, match="Make n_embd, n_layer, block_size or batch_size smaller"):
        budget.check_fits(budget.estimate(huge, TrainConfig(batch_size=64)))
