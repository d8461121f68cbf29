"""How a causal-LM reranker turns a (query, document) pair into its prompt text.

- `TemplatePrompt`: a text with `{query}` and `{document}` (Qwen3-Reranker's model card prompt,
  llama.cpp's `rerank` chat template in a GGUF);
- `ChatPrompt`: the model's Jinja chat template rendered for the messages
  [{"role": "query", ...}, {"role": "document", ...}], as sentence-transformers' CrossEncoder renders
  a pair for a causal LM (its LogitScore models), with the chat-template arguments it saves.

`tail()` is the text after the document: a pair too long for the model is cut inside the document
and the tail kept whole, as the model card and sentence-transformers (`restore_suffix`) do.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_PLACEHOLDER = re.compile(r"\{query\}|\{document\}")
_SENTINEL = "\u2063corral-document\u2063"  # text no template produces by itself


@dataclass(frozen=True)
class TemplatePrompt:
    template: str  # with {query} and {document}

    def render(self, query: str, document: str) -> str:
        """Placeholders are filled in one pass, so a query holding "{document}" stays as written."""
        values = {"{query}": query, "{document}": document}
        return _PLACEHOLDER.sub(lambda m: values[m.group(0)], self.template)

    def tail(self) -> str:
        return self.template.rsplit("{document}", 1)[1] if "{document}" in self.template else ""


@dataclass(frozen=True)
class ChatPrompt:
    template: str  # Jinja source
    add_generation_prompt: bool = False  # apply_chat_template's default, as sentence-transformers calls it
    variables: dict[str, Any] = field(default_factory=dict)  # special tokens, saved chat-template kwargs

    def render(self, query: str, document: str) -> str:
        """Raises ChatTemplateError when the template fails on the pair."""
        from corral.tokenizer.chat_template import render_chat_template

        messages = [{"role": "query", "content": query}, {"role": "document", "content": document}]
        return render_chat_template(self.template, messages, add_generation_prompt=self.add_generation_prompt,
                                    **self.variables)

    def tail(self) -> str:
        text = self.render("q", _SENTINEL)
        return text.rsplit(_SENTINEL, 1)[1] if _SENTINEL in text else ""

    def carries_pair(self) -> bool:
        """Whether both the query and the document reach the prompt (a template written for
        system/user/assistant only drops them; sentence-transformers probes the same way)."""
        from corral.errors import ChatTemplateError

        try:
            base, query, document = self.render("a", "b"), self.render("c", "b"), self.render("a", "c")
        except ChatTemplateError:
            return False
        return base != query and base != document
