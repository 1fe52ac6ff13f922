"""One head, step by step: every number shown is checked against the model's own recorded activation."""

import re

import torch

from gptviz import neurons
from ui import state

PAGE, PROMPT = "pages/head_steps.py", "ROMEO:\nWhat say you to "  # for the `page` fixture (tests/conftest.py)


def differences(at) -> list[float]:
    """Every 'largest difference' the page reports between its own arithmetic and the model's cache."""
    return [float(d) for c in at.caption for d in re.findall(r"largest difference ([0-9.e+-]+)\)", c.value)]


def test_each_step_equals_the_models_own_activation(page):
    assert page.select_slider(key=state.HeadSteps.QUERY).value == len(PROMPT) - 1  # the last token asks
    assert len(differences(page)) == 6 and max(differences(page)) < 1e-4
    page.selectbox(key=state.HeadSteps.HEAD).set_value(1).run()
    page.select_slider(key=state.HeadSteps.QUERY).set_value(3).run()
    assert not page.exception
    assert any("head 1; the query is token 3 ('E')" in c.value for c in page.caption)
    assert len(differences(page)) == 6 and max(differences(page)) < 1e-4


def test_the_highlighted_step_is_pointed_at(page):
    page.pills(key=state.HeadSteps.FOCUS).set_value("qkv").run()
    pointed = [m.value for m in page.markdown if m.value.startswith("#### 👉")]
    assert len(pointed) == 1 and pointed[0].startswith("#### 👉 2.")


def test_neurons_page_picks_the_prompts_strongest_neuron(page, ckpt):
    page.switch_page("pages/neurons.py").run()
    assert not page.exception, page.exception
    _, cache = ckpt.model.run_with_cache(torch.tensor([ckpt.tokenizer.encode(PROMPT)]))
    strongest = neurons.prompt_neurons(cache, 0, k=12)[0][0]
    assert page.number_input(key=state.Neurons.NEURON).value == strongest
    page.number_input(key=state.Neurons.NEURON).set_value(7).run()
    assert any("neuron 7 of layer 0" in m.value for m in page.markdown)
