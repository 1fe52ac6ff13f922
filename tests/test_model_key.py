"""The picker's model keys: a typed pair that reads and writes the text the picker stores."""

import pytest

from ui.models import ModelKey


def test_a_key_reads_back_what_it_wrote():
    for kind, name in [(ModelKey.CKPT, "shakespeare-char"), (ModelKey.RUN, "12"), (ModelKey.UP, "my:model")]:
        key = ModelKey(kind, name)
        assert ModelKey.parse(str(key)) == key
    assert str(ModelKey(ModelKey.RUN, "3")) == "run:3" and ModelKey.parse("up:a:b").name == "a:b"


@pytest.mark.parametrize("text", ["shakespeare-char", "disk:x", "", ":x", None])
def test_anything_else_is_refused_with_a_key_error(text):
    with pytest.raises(KeyError):
        ModelKey.parse(text)
