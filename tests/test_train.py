import math

import pytest
import torch

from gptviz.data import TokenData
from gptviz.errors import ConfigError, InputError, TrainingError
from gptviz.model import GPTConfig, preset_config
from gptviz.train import BLOWN_UP, TrainConfig, Trainer, log_spaced_steps, lr_at

from helpers import settled, wait_until


def quick(**kw):
    base = dict(max_iters=40, batch_size=8, learning_rate=3e-3, min_lr=3e-4, warmup_iters=5,
                eval_interval=20, eval_iters=4, sample_tokens=20)
    return TrainConfig(**{**base, **kw})


def test_learning_rate_warms_up_then_decays_to_min():
    cfg = TrainConfig(max_iters=100, learning_rate=1e-3, min_lr=1e-4, warmup_iters=10)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(100, cfg) == pytest.approx(1e-4)
    decay = [lr_at(s, cfg) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))


def test_snapshot_steps_are_log_spaced_and_end_at_the_last_step():
    assert log_spaced_steps(1000) == [0, 10, 30, 100, 300, 1000]
    assert log_spaced_steps(600) == [0, 10, 30, 100, 300, 600]
    assert log_spaced_steps(5) == [0, 5]


def test_training_lowers_the_loss_and_records_everything(small_config, shakespeare_char):
    trainer = Trainer(small_config, quick(max_iters=60), shakespeare_char)
    trainer.run()
    h = trainer.history
    assert trainer.status == "finished"
    assert h["eval_step"] == [0, 20, 40, 60]
    assert h["val_loss"][-1] < h["val_loss"][0] - 0.5
    assert len(h["train_loss"]) == 60 and h["step"] == list(range(60))
    assert sorted(trainer.snapshots) == [0, 10, 30, 60]
    assert all(v.dtype == torch.float16 for v in trainer.snapshots[30].values())
    assert not torch.equal(trainer.snapshots[0]["wte.weight"], trainer.snapshots[60]["wte.weight"])
    assert all(isinstance(s, str) and len(s) > 0 for s in h["samples"])
    kinds = {e.kind for e in trainer.events}
    assert {"step", "eval", "snapshot", "status"} <= kinds


def test_the_same_seed_trains_the_same_weights(small_config, shakespeare_char):
    a = Trainer(small_config, quick(max_iters=15, sample_tokens=0), shakespeare_char)
    b = Trainer(small_config, quick(max_iters=15, sample_tokens=0), shakespeare_char)
    a.run(), b.run()
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k
    c = Trainer(small_config, quick(max_iters=15, sample_tokens=0, seed=99), shakespeare_char)
    c.run()
    assert not torch.equal(a.model.wte.weight, c.model.wte.weight)


def test_a_diverging_learning_rate_stops_and_keeps_good_weights(small_config, shakespeare_char):
    # an infinite rate turns every weight into inf/NaN at the first update: the next loss is NaN
    trainer = Trainer(small_config, quick(max_iters=200, learning_rate=math.inf, grad_clip=0, warmup_iters=1),
                      shakespeare_char)
    with pytest.raises(TrainingError, match="The loss became NaN .* at step 1: the learning rate"):
        trainer.run()
    assert trainer.status == "diverged" and "weights from step 0 were kept" in trainer.message
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    x, y = shakespeare_char.get_batch("val", 4, 16)
    assert math.isfinite(trainer.model(x, y)[1].item())


def test_a_loss_that_explodes_but_stays_finite_stops_too(shakespeare_char):
    # without LayerNorm a rate of 1 drives the loss into the hundreds of thousands, never to NaN
    vocab = shakespeare_char.tokenizer.vocab_size
    config = GPTConfig(vocab_size=vocab, block_size=16, n_layer=1, n_head=2, n_embd=32, layernorm=False)
    trainer = Trainer(config, quick(max_iters=200, learning_rate=1.0, eval_interval=200), shakespeare_char)
    with pytest.raises(TrainingError, match=f"more than {BLOWN_UP} times a random guess"):
        trainer.run()
    assert trainer.status == "diverged" and trainer.step < 200
    assert "(such as 0.3)" in trainer.message
    limit = BLOWN_UP * math.log(vocab)
    assert max(trainer.history["train_loss"]) <= limit  # the exploded step is not in the history
    x, y = shakespeare_char.get_batch("val", 8, 16)
    assert trainer.model(x, y)[1].item() < limit  # the weights kept are from before the explosion


def test_a_high_rate_that_the_model_survives_is_not_stopped(shakespeare_char):
    # a bigram table at rate 1 jumps above a random guess at first, then learns the bigram statistics
    vocab = shakespeare_char.tokenizer.vocab_size
    trainer = Trainer(preset_config("bigram", vocab, 16), quick(max_iters=150, learning_rate=1.0, eval_interval=150),
                      shakespeare_char)
    trainer.run()
    losses = trainer.history["train_loss"]
    assert trainer.status == "finished"
    assert max(losses) > math.log(vocab) + 1 and losses[-1] < math.log(vocab) - 1


def test_pause_resume_and_stop_from_another_thread(small_config, shakespeare_char):
    trainer = Trainer(small_config, quick(max_iters=100_000, eval_interval=1000, sample_tokens=0),
                      shakespeare_char).start()
    assert wait_until(lambda: trainer.step >= 5)
    trainer.pause()
    paused_at = settled(lambda: trainer.step)  # the step in flight finishes, then nothing moves
    assert trainer.status == "paused" and paused_at is not None
    trainer.resume()
    assert wait_until(lambda: trainer.step >= paused_at + 5)
    trainer.stop()
    trainer.join(10)
    assert trainer.status == "stopped" and "kept" in trainer.message
    assert not torch.equal(trainer.model.wte.weight.half(), trainer.snapshots[0]["wte.weight"])


def test_stopping_a_paused_run_ends_it(small_config, shakespeare_char):
    trainer = Trainer(small_config, quick(max_iters=100_000, sample_tokens=0), shakespeare_char).start()
    assert wait_until(lambda: trainer.step >= 2)
    trainer.pause()
    trainer.stop()
    trainer.join(10)
    assert trainer.status == "stopped"


def test_model_must_cover_the_tokenizer(shakespeare_char):
    from gptviz.model import GPTConfig

    with pytest.raises(ConfigError, match="tokenizer has"):
        Trainer(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=8), quick(), shakespeare_char)


def test_text_too_short_for_the_block_is_refused():
    data = TokenData.from_text("hello there, " * 10, "char")
    from gptviz.model import GPTConfig

    with pytest.raises(InputError, match="too short for block_size 64"):
        Trainer(GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=64), quick(), data)


@pytest.mark.parametrize("field,value", [("max_iters", 0), ("batch_size", 0), ("learning_rate", 0.0)])
def test_bad_training_settings_are_refused(small_config, shakespeare_char, field, value):
    with pytest.raises(ConfigError, match=field):
        Trainer(small_config, quick(**{field: value}), shakespeare_char)


def test_a_run_nobody_watches_stops_itself_and_keeps_its_weights(small_config, shakespeare_char):
    trainer = Trainer(small_config, quick(max_iters=100_000, eval_interval=1000, sample_tokens=0), shakespeare_char,
                      abandon_after_s=0.5).start()
    wait_until(lambda: trainer.step >= 3, seconds=5, every=0.05, before=trainer.heartbeat)  # someone is watching
    watched_until = trainer.step
    assert trainer.status == "running" and watched_until >= 3
    trainer.join(30)  # no more heartbeats: the tab was closed
    assert trainer.status == "stopped" and trainer.abandoned and "nobody watched" in trainer.message
    assert trainer.step > watched_until
    assert not torch.equal(trainer.model.wte.weight.half(), trainer.snapshots[0]["wte.weight"])


def test_a_paused_run_nobody_watches_stops_too(small_config, shakespeare_char):
    trainer = Trainer(small_config, quick(max_iters=100_000, sample_tokens=0), shakespeare_char,
                      abandon_after_s=0.5).start()
    assert wait_until(lambda: trainer.step >= 2, before=trainer.heartbeat)
    trainer.pause()
    trainer.join(30)
    assert trainer.status == "stopped" and trainer.abandoned


def test_one_recipe_short_runs_leave_their_warm_up():
    short = TrainConfig(max_iters=20, learning_rate=1e-2)
    assert short.min_lr == pytest.approx(1e-3) and short.warmup_iters == 2
    assert lr_at(1, short) == pytest.approx(1e-2)  # warmed up after 2 of 20 steps
    assert lr_at(19, short) < 2e-3  # and decayed to near a tenth by the end
    default = TrainConfig()
    assert default.min_lr == pytest.approx(default.learning_rate / 10) and default.warmup_iters == 30
    assert TrainConfig(max_iters=5).warmup_iters == 1
    assert TrainConfig(min_lr=0.0, warmup_iters=7).min_lr == 0.0  # explicit values win


def test_the_command_line_uses_the_same_recipe():
    from gptviz import cli

    args = cli.build_parser().parse_args(["train", "--iters", "20", "--lr", "0.01"])
    cfg = cli._train_config(args)
    assert (cfg.min_lr, cfg.warmup_iters) == (TrainConfig(max_iters=20, learning_rate=0.01).min_lr, 2)


def poisoned(vocab_size_extra: int = 3, every: int = 5000) -> TokenData:
    """Real text with a few token ids the model has no embedding for: torch's embedding raises an
    IndexError at whichever step first draws one of them (not a GptvizError: a real, unexpected failure)."""
    from gptviz.data import corpus_text

    data = TokenData.from_text(corpus_text("tinyshakespeare")[:60_000], "char")
    data.train[every::every] = data.tokenizer.vocab_size + vocab_size_extra
    return data


def test_an_unexpected_error_ends_the_run_as_error_with_good_weights_and_a_logged_traceback(caplog):
    import logging

    data = poisoned()
    config = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=32)
    trainer = Trainer(config, quick(max_iters=5000, eval_interval=5000, eval_iters=1, sample_tokens=0), data)
    events = []
    trainer.on_event = events.append
    with caplog.at_level(logging.ERROR, logger="gptviz.train"), pytest.raises(Exception) as raised:
        trainer.run()
    assert type(raised.value).__name__ == "GptvizError"  # the student's message, not the IndexError
    assert trainer.status == "error" and trainer.done and 0 < trainer.step < 5000
    assert "IndexError" in trainer.message and "not of your settings" in trainer.message
    kept = trainer._good_step
    assert f"weights from step {kept} were kept" in trainer.message and kept <= trainer.step
    assert [e.data["status"] for e in events if e.kind == "status"] == ["running", "error"]
    assert any(r.exc_info and r.exc_info[0] is IndexError for r in caplog.records)  # the traceback is logged
    x, y = data.get_batch("val", 4, 16)  # only the training split is poisoned
    assert math.isfinite(trainer.model(x, y)[1].item())  # the kept weights still work


def test_bf16_autocast_trains_to_the_same_loss_as_fp32_within_the_seed_noise(small_config, shakespeare_char):
    def val_loss(bf16: bool, seed: int) -> tuple[float, set]:
        trainer = Trainer(small_config, quick(max_iters=50, sample_tokens=0, seed=seed), shakespeare_char)
        trainer.bf16 = bf16
        seen = set()  # the dtype the output layer computed in: training steps and evaluations
        trainer.model.lm_head.register_forward_hook(lambda m, i, out: seen.add((m.training, out.dtype)))
        trainer.run()
        return trainer.history["val_loss"][-1], seen

    fp32, fp32_seen = val_loss(False, 1)
    other_seed, _ = val_loss(False, 2)
    bf16, bf16_seen = val_loss(True, 1)
    assert bf16_seen == {(True, torch.bfloat16), (False, torch.float32)}  # steps in bf16, evaluations in fp32
    assert fp32_seen == {(True, torch.float32), (False, torch.float32)}
    assert fp32 < 3.5 and abs(bf16 - fp32) <= 0.05 + abs(other_seed - fp32)


def test_bf16_is_used_only_where_the_cpu_has_it_unless_told(monkeypatch):
    from gptviz.train import native_bf16

    flags = open("/proc/cpuinfo").read().split()
    assert native_bf16(torch.device("cpu")) == ("avx512_bf16" in flags or "amx_bf16" in flags)
    assert not native_bf16(torch.device("meta"))  # not a CPU: no autocast to CPU bf16
    monkeypatch.setenv("GPTVIZ_BF16", "1")
    assert native_bf16(torch.device("cpu"))
    monkeypatch.setenv("GPTVIZ_BF16", "0")
    assert not native_bf16(torch.device("cpu"))
