"""The averaging trick: the lecture's versions 1-3 agree within 1e-6; version 4 weighs the past its own way."""

import pytest
import torch

from gptviz import averaging
from gptviz.errors import ConfigError
from ui import state


@pytest.mark.parametrize("T, C, seed", [(1, 1, 0), (5, 3, 1337), (8, 2, 7), (12, 8, 3)])
def test_the_first_three_versions_are_equal(T, C, seed):
    x = averaging.toy_tensor(T, C, seed)
    expected = torch.stack([x[: t + 1].mean(0) for t in range(T)])  # the plain definition, written here again
    for name in list(averaging.VERSIONS)[:3]:
        assert (averaging.VERSIONS[name](x) - expected).abs().max() <= averaging.EQUAL_WITHIN == 1e-6, name


def test_learned_scores_weigh_the_past_unevenly_but_never_the_future():
    x = averaging.toy_tensor(6, 4, 0)
    w = averaging.weights_of("4. softmax of learned scores (q·k)", x)
    torch.testing.assert_close(w.sum(1), torch.ones(6))
    assert (torch.triu(w, 1) == 0).all()
    assert (w[0] == torch.tensor([1.0, 0, 0, 0, 0, 0])).all()  # the first token can only look at itself
    assert not torch.allclose(w, averaging.tril_weights(6))
    differences = averaging.compare(x)
    assert max(list(differences.values())[:3]) <= 1e-6 < list(differences.values())[3]
    torch.testing.assert_close(averaging.attention_average(x), w @ x)


def test_a_toy_of_the_wrong_shape_gets_a_message():
    with pytest.raises(ConfigError, match="1 to 12 rows"):
        averaging.toy_tensor(13, 2)


@pytest.fixture
def page(app):
    app.switch_page("pages/averaging.py").run()
    assert not app.exception, app.exception
    return app


def outputs(at):
    """The four results, in order (the editor of x is the one frame with an id)."""
    return [torch.tensor(d.value.to_numpy(dtype="float32")) for d in at.dataframe if not d.proto.id]


def test_the_page_shows_four_results_and_which_agree(page):
    x = torch.tensor(page.session_state[state.Averaging.TOY])
    assert x.shape == (5, 3)
    results = outputs(page)
    assert len(results) == 4
    for name, shown in zip(averaging.VERSIONS, results):
        torch.testing.assert_close(shown, averaging.VERSIONS[name](x), atol=1e-4, rtol=0)  # rounded to 4 places
    assert len(page.success) == 3 and len(page.warning) == 1


def test_editing_a_number_changes_every_version(page):
    before = outputs(page)[0]
    page.slider(key="averaging_T").set_value(3).run()
    (editor,) = page.data_editor
    edited = editor.value.copy()
    edited.iloc[0, 0] = 9.0
    page.session_state[editor.key] = {"edited_rows": {0: {"c0": 9.0}}, "added_rows": [], "deleted_rows": []}
    page.run()  # what the browser sends when the student types 9 into the first cell
    assert not page.exception
    results = outputs(page)
    assert results[0].shape == (3, 3) and before.shape == (5, 3)
    assert results[0][0, 0] == pytest.approx(9.0) and results[0][2, 0] == pytest.approx(float(edited.iloc[:, 0].mean()),
                                                                                     abs=1e-4)
    assert len(page.success) == 3
