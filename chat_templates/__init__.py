"""Chat templates for the served models, and a transformers-compatible Jinja renderer."""

from chat_templates.renderer import ChatTemplate, ChatTemplateError

__all__ = ["ChatTemplate", "ChatTemplateError"]
