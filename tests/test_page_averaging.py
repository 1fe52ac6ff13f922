"""The averaging trick: four versions of one average on a toy tensor; the first three agree exactly."""

import torch

from gptviz import averaging
from ui import state

PAGE = "pages/averaging.py"  # opened by the `page` fixture (tests/conftest.py)


def tables(at) -> list[torch.Tensor]:
    """x as the student edits it, then the four 'weights @ x' tables, version by version."""
    return [torch.tensor(d.value.to_numpy()).float() for d in at.dataframe]


def results(at) -> list[torch.Tensor]:
    return tables(at)[1:]


def test_three_versions_agree_and_attention_differs(page):
    x = averaging.toy_tensor(5, 3, 1337)
    assert torch.equal(tables(page)[0], x)
    shown = results(page)
    assert len(shown) == 4
    for version, table in zip(averaging.VERSIONS.values(), shown):
        assert torch.allclose(table, version(x), atol=1e-4)
    assert len(page.success) == 3 and len(page.warning) == 1


def test_new_numbers_and_a_new_shape(page):
    before = results(page)[0]
    page.button(key=state.Averaging.NEW).click().run()
    assert page.session_state[state.Averaging.SEED] == 1338
    assert not torch.equal(results(page)[0], before)
    page.slider(key=state.Averaging.T).set_value(7).run()
    assert [tuple(t.shape) for t in results(page)] == [(7, 3)] * 4
    assert torch.allclose(results(page)[0], averaging.loop_average(averaging.toy_tensor(7, 3, 1338)),
                          atol=1e-4)
