"""The tiny stand-ins' specs agree with the chat templates the server renders them with."""

import pytest

from chat_templates import ChatTemplate
from chat_templates.renderer import builtin_source
from engine.builtin.tiny_models import SPECS, TinySpec


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_a_stand_in_has_its_templates_bos_and_eos(spec: TinySpec) -> None:
    template = ChatTemplate.builtin(spec.template)

    assert (spec.bos or "", spec.eos) == (template.bos_token, template.eos_token)
    assert {spec.eos, *([spec.bos] if spec.bos else [])} <= set(spec.special_tokens)


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_a_stand_in_embeds_the_template_the_server_renders(spec: TinySpec) -> None:
    assert builtin_source(spec.template) == ChatTemplate.builtin(spec.template).source


def test_only_built_in_templates_have_a_source() -> None:
    with pytest.raises(ValueError, match=r"No built-in chat template 'qwq-32b\.jinja'"):
        builtin_source("qwq-32b.jinja")
