"""One student can never take the class down: each attack of issue 21, reproduced, then refused with a
message meant for a student (the rest of the class notices nothing)."""

import json
import struct

import pytest
import torch

from gptviz import limits
from gptviz.checkpoints import CHECKPOINT_DIR, load_checkpoint, to_bytes
from gptviz.errors import CheckpointError
from gptviz.model import GPT, GPTConfig
from gptviz.tokenizers import BPE_MAX_TOKEN_BYTES, CharTokenizer, from_dict
from ui import state

from helpers import wait_until


def tiny(**over) -> tuple[GPT, CharTokenizer]:
    tok = CharTokenizer("abcdefgh ")
    return GPT(GPTConfig(**{"vocab_size": tok.vocab_size, "block_size": 8, "n_layer": 1, "n_head": 1,
                            "n_embd": 8, **over})), tok


def with_header(data: bytes, section: str, text: str) -> bytes:
    """The same checkpoint with one of its JSON sections replaced (the header is rewritten whole)."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header["__metadata__"][section] = text
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    return struct.pack("<Q", len(new)) + new + data[8 + n:]


# --- the tokenizer that doubles itself -----------------------------------------------------------

def test_a_bpe_whose_merges_double_a_token_is_refused_before_it_is_built():
    merges = [[32, 32]] + [[256 + i, 256 + i] for i in range(40)]  # token 256+i is 2**(i+1) spaces
    with pytest.raises(CheckpointError, match="longer than 1 MB in all"):
        from_dict({"kind": "bpe", "merges": merges})


def test_a_bpe_just_under_the_byte_cap_still_loads():
    merges = [[32, 32]] + [[256 + i, 256 + i] for i in range(17)]  # the longest token: 2**18 bytes
    tok = from_dict({"kind": "bpe", "merges": merges})
    assert sum(len(tok.token_bytes(i)) for i in range(tok.vocab_size)) <= BPE_MAX_TOKEN_BYTES
    assert tok.token_bytes(tok.vocab_size - 1) == b" " * 2**18


def test_a_checkpoint_with_the_doubling_tokenizer_gets_a_checkpoint_message():
    model, tok = tiny(vocab_size=300)
    data = with_header(to_bytes(model, tok), "tokenizer",
                       json.dumps({"kind": "bpe", "merges": [[32, 32]] + [[256 + i, 256 + i] for i in range(40)]}))
    with pytest.raises(CheckpointError, match="tokenizer is damaged"):
        load_checkpoint(data)


# --- numbers in the JSON ---------------------------------------------------------------------------

@pytest.mark.parametrize("history, words", [
    ('{"history": {"step": [' + "9" * 5000 + "]}}", "5,000-digit number"),
    ('{"history": {"train_loss": [NaN]}}', "NaN, which is not a number"),
    ('{"history": {"val_loss": [Infinity]}}', "Infinity, which is not a number"),
    ('{"history": {"val_loss": [1e999]}}', "too large to be a float"),
    ('{"seed": -' + "1" * 40 + "}", "41-digit number"),
])
def test_numbers_in_the_meta_json_are_bounded(history, words):
    model, tok = tiny()
    with pytest.raises(CheckpointError, match=words):
        load_checkpoint(with_header(to_bytes(model, tok), "meta", history))


def test_ordinary_numbers_in_the_meta_json_load():
    model, tok = tiny()
    ck = load_checkpoint(with_header(to_bytes(model, tok), "meta", '{"history": {"step": [0, 10], "val_loss": [2.5, null]}}'))
    assert ck.meta["history"]["step"] == [0, 10] and ck.meta["history"]["val_loss"] == [2.5, None]


# --- models larger than the app can show -------------------------------------------------------------

def test_a_small_file_asking_for_a_huge_attention_is_refused():
    """286 KB that made the Attention page allocate 8.6 GB per tensor (block 4096, 16 heads)."""
    tok = CharTokenizer("".join(chr(33 + i) for i in range(65)))
    model = GPT(GPTConfig(vocab_size=65, block_size=4096, n_layer=1, n_head=16, n_embd=16))
    data = to_bytes(model, tok)
    assert len(data) < 400_000
    with pytest.raises(CheckpointError, match=r"block_size 4,096; the app shows models up to block_size 256"):
        load_checkpoint(data)
    assert load_checkpoint(data, for_app=False).model.config.block_size == 4096  # the command line opens it


@pytest.mark.parametrize("name, value", [("n_layer", 9), ("n_head", 32), ("n_embd", 512)])
def test_every_setting_beyond_the_train_page_is_refused(name, value):
    over = {"n_layer": 1, "n_head": 1, "n_embd": 32, name: value}
    model, tok = tiny(**over)
    with pytest.raises(CheckpointError, match=f"{name} {value:,}"):
        load_checkpoint(to_bytes(model, tok))


def test_the_bundled_checkpoint_is_within_the_app_limits():
    ck = load_checkpoint(CHECKPOINT_DIR / "shakespeare-char.safetensors")
    limits.check_openable(ck.model.config)


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.safetensors"
    with open(path, "wb") as f:
        f.truncate(limits.CHECKPOINT_MAX_BYTES + 1)  # sparse: no disk used
    with pytest.raises(CheckpointError, match=f"at most {limits.CHECKPOINT_MAX_MB:,} MB"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="at most 1 MB"):
        load_checkpoint(b"x" * (2 * limits.MB), max_bytes=limits.MB)


# --- download -> open ------------------------------------------------------------------------------

def timeline(model: GPT, max_iters: int) -> dict:
    """The snapshots a training of max_iters keeps (train.log_spaced_steps), as the Trainer stores them."""
    from gptviz.train import log_spaced_steps

    return {s: {k: v.to(torch.float16) for k, v in model.state_dict().items()} for s in log_spaced_steps(max_iters)}


def default_download() -> bytes:
    """What *Download this model* gives for the Train page's defaults (the char text of Tiny Shakespeare)."""
    from gptviz.model import preset_config
    from gptviz.train import TrainConfig

    model = GPT(preset_config("gpt", vocab_size=65))
    tok = CharTokenizer("".join(chr(32 + i) for i in range(65)))
    return to_bytes(model, tok, {"corpus": "tinyshakespeare"}, timeline(model, TrainConfig().max_iters))


def test_the_train_pages_default_download_keeps_its_whole_timeline_and_opens_again():
    data = default_download()
    assert len(data) > 10 * limits.MB  # more than the old 10 MB upload limit: the reported failure
    ck = load_checkpoint(data)
    assert len(ck.snapshots) == 6


def test_the_largest_model_the_app_trains_fits_the_upload_limit_with_a_thinner_timeline():
    model = GPT(limits.largest_config())  # 32 M parameters: ~130 MB of float32 weights
    data = to_bytes(model, CharTokenizer("ab"), {}, timeline(model, 5000))  # 8 snapshots would be ~500 MB
    assert len(data) <= limits.CHECKPOINT_MAX_BYTES
    (n,) = struct.unpack("<Q", data[:8])
    steps = {k.split(".")[1] for k in json.loads(data[8:8 + n]) if k.startswith("snapshot.")}
    assert steps == {"0", "5000"}  # the first and the last are kept
    del model


def test_fitting_snapshots_keeps_the_ends_and_spreads_the_rest():
    from gptviz.checkpoints import fitting_snapshots

    snaps = {s: {"w": torch.zeros(10, dtype=torch.float16)} for s in (0, 10, 30, 100, 300, 1000, 3000, 5000)}
    assert fitting_snapshots(snaps, 20 * 100) == sorted(snaps)
    assert fitting_snapshots(snaps, 20 * 3) == [0, 300, 5000]
    assert fitting_snapshots(snaps, 20) == [5000] and fitting_snapshots(snaps, 19) == []


def test_the_app_sets_the_servers_upload_limit_itself(app):
    from streamlit import config

    uploader = app.sidebar.get("file_uploader")[0]
    assert uploader.proto.max_upload_size_mb == limits.CHECKPOINT_MAX_MB
    assert config.get_option("server.maxUploadSize") == limits.CHECKPOINT_MAX_MB


def test_the_default_download_opens_in_the_sidebar(app):
    app.sidebar.get("file_uploader")[0].upload("my-first-gpt.safetensors", default_download())
    app.run()
    assert not app.exception and not app.sidebar.error
    assert app.sidebar.selectbox[0].value == "up:my-first-gpt"
    assert len(app.session_state[state.TAB].uploads["my-first-gpt"].snapshots) == 6


# --- saving: atomic names, a quota ------------------------------------------------------------------

def test_two_students_saving_one_new_name_at_once_never_lose_a_model(tmp_path):
    """'name taken' was checked, then os.replace: the second writer silently replaced the first."""
    import threading

    from gptviz.checkpoints import save_checkpoint

    models = [tiny()[0] for _ in range(8)]
    tok = tiny()[1]
    barrier, outcomes = threading.Barrier(8), []

    def save(i):
        barrier.wait()
        try:
            save_checkpoint(tmp_path / "same.safetensors", models[i], tok, {"who": i}, overwrite=False)
            outcomes.append(("saved", i))
        except CheckpointError as e:
            outcomes.append(("refused", str(e)))

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    [t.start() for t in threads], [t.join() for t in threads]
    saved = [i for kind, i in outcomes if kind == "saved"]
    assert len(saved) == 1 and len(outcomes) == 8
    assert all("was just taken by someone else" in m for kind, m in outcomes if kind == "refused")
    assert load_checkpoint(tmp_path / "same.safetensors").meta == {"who": saved[0]}  # the one told "saved"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.safetensors"]  # no temporary file left


def test_the_checkpoints_folder_has_a_quota(tmp_path, monkeypatch):
    from gptviz.checkpoints import QUOTA_ENV, quota_bytes, save_checkpoint

    model, tok = tiny()
    one = len(to_bytes(model, tok))
    save_checkpoint(tmp_path / "a.safetensors", model, tok, quota=2 * one)
    save_checkpoint(tmp_path / "b.safetensors", model, tok, quota=2 * one)
    with pytest.raises(CheckpointError, match="checkpoints folder is full.*Download the model instead"):
        save_checkpoint(tmp_path / "c.safetensors", model, tok, quota=2 * one)
    assert not (tmp_path / "c.safetensors").exists()
    monkeypatch.setenv(QUOTA_ENV, "5")
    assert quota_bytes() == 5 * limits.MB


# --- the server's memory budget and each tab's share ------------------------------------------------

def test_the_budget_reads_sizes_and_refuses_what_does_not_fit():
    from gptviz import memory

    assert memory.parse_size("12G") == 12 * 2**30 and memory.parse_size("8000M") == 8000 * 2**20
    assert memory.parse_size("512 MB") == 512 * 2**20 and memory.parse_size("1024") == 1024
    with pytest.raises(ValueError):
        memory.parse_size("lots")
    assert memory.budget_bytes({}) == int(memory.total_ram() * memory.DEFAULT_SHARE)
    assert memory.budget_bytes({memory.BUDGET_ENV: "3G"}) == 3 * 2**30
    b = memory.Budget(limit=10 * memory.GB, used=lambda: 9 * memory.GB)
    b.check(memory.GB, "this", "")  # exactly full is allowed
    with pytest.raises(memory.MemoryBudgetError, match=r"no room for this training.*9\.0 of the server's 10\.0 GB.*Shrink it"):
        b.check(memory.GB + 1, "this training", "Shrink it.")


def test_used_memory_counts_the_server_and_its_workers():
    import subprocess
    import sys

    from gptviz import memory

    child = subprocess.Popen([sys.executable, "-c", "import sys; b = bytearray(200 * 2**20); sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        assert wait_until(lambda: memory.rss(child.pid) > 200 * 2**20, 30)
        assert child.pid in memory.children()
        assert memory.used_bytes() >= memory.rss() + 200 * 2**20
    finally:
        child.communicate(b"")
    assert memory.rss(child.pid) == 0  # gone


@pytest.fixture
def full_server(monkeypatch):
    """A server whose memory budget is already used up."""
    from gptviz import memory

    monkeypatch.setattr(memory, "_budget", memory.Budget(limit=memory.used_bytes()))


def test_past_the_budget_a_training_is_refused_with_advice_and_nothing_is_lost(app, full_server):
    app.switch_page("pages/train.py").run()
    app.button(key="train_start").click().run()
    assert not app.exception and not app.session_state[state.TAB].runs
    assert any("no room for this training" in e.value and "smaller model" in e.value for e in app.error)


def test_past_the_budget_an_upload_is_refused_and_the_tab_keeps_its_models(app, full_server):
    app.sidebar.get("file_uploader")[0].upload("mine.safetensors", default_download())
    app.run()
    assert not app.exception and "mine" not in app.session_state[state.TAB].uploads
    assert any("no room for opening this file" in e.value for e in app.sidebar.error)
    assert app.sidebar.selectbox[0].value == "ckpt:shakespeare-char"


def test_a_tab_opens_at_most_its_share_of_files(app, monkeypatch):
    monkeypatch.setattr(limits, "UPLOADS_PER_TAB", 2)
    data = default_download()
    for name in ("one", "two", "three"):
        app.sidebar.get("file_uploader")[0].upload(f"{name}.safetensors", data)
        app.run()
    assert sorted(app.session_state[state.TAB].uploads) == ["one", "two"]
    assert any("already has 2 files open" in e.value for e in app.sidebar.error)


def test_a_tab_keeps_its_share_of_server_checkpoints_built_least_recently_used_first(app, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr("ui.models.checkpoint_dir", lambda: tmp_path)
    for name in ("a", "b", "c", "d"):
        shutil.copy(CHECKPOINT_DIR / "shakespeare-char.safetensors", tmp_path / f"{name}.safetensors")
    app.switch_page("pages/next_token.py").run()  # a page that builds the picked model
    for key in ("ckpt:a", "ckpt:b", "ckpt:c", "ckpt:a", "ckpt:d"):
        app.sidebar.selectbox[0].set_value(key).run()
        assert not app.exception
    assert list(app.session_state[state.LOADED]) == ["c", "a", "d"]  # b was the least recently used


def test_a_tab_keeps_at_most_its_share_of_runs(app, monkeypatch):
    monkeypatch.setattr(limits, "RUNS_PER_TAB", 4)
    app.switch_page("pages/train.py").run()
    app.button(key="train_ladder").click().run()  # five runs: more than this tab may keep
    assert not app.session_state[state.TAB].runs
    assert any("at most 4" in e.value and "delete runs" in e.value for e in app.error)


# --- names and ids that must not collide -------------------------------------------------------------

def test_an_upload_named_like_a_bundled_text_does_not_change_it_for_the_class(app):
    from streamlit.testing.v1 import AppTest

    from gptviz.data import corpus_text
    from ui import data as ui_data

    ui_data._token_data.clear()  # the server's tokenized-text cache, as at a class's start
    attacker = app
    attacker.session_state[state.CORPUS] = state.UPLOAD
    attacker.session_state[state.UPLOADED_TEXT] = "the attacker's text " * 50
    attacker.session_state[state.UPLOADED_NAME] = "tinyshakespeare"  # a name without .txt, sent by hand
    attacker.session_state[state.UPLOADED_ID] = "forged"
    attacker.switch_page("pages/train.py").run()
    assert any("1,000 tokens" in c.value for c in attacker.caption)  # the attacker trains on their own text
    classmate = AppTest.from_file(str(CHECKPOINT_DIR.parent / "app.py"), default_timeout=90)
    classmate.run()
    classmate.switch_page("pages/train.py").run()
    shakespeare = f"{len(corpus_text('tinyshakespeare')):,} tokens"
    assert any("tinyshakespeare" in c.value and shakespeare in c.value for c in classmate.caption)
    assert not attacker.exception and not classmate.exception


def test_memo_keys_never_repeat_when_python_reuses_an_id():
    from ui.models import identity

    seen_ids, identities = set(), set()
    repeated = False
    for _ in range(200):
        m = torch.nn.Linear(1, 1)
        repeated = repeated or id(m) in seen_ids
        seen_ids.add(id(m))
        identities.add(identity(m))
        assert identity(m) == identity(m)
        del m
    assert repeated  # CPython reused an address: id() would have mixed these models up
    assert len(identities) == 200
