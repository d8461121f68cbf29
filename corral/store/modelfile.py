r'''Ollama's Modelfile: parse it, and write one back out for `show --modelfile`.

```
# comment
FROM hf.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M   (or ./model.gguf, or a folder)
PARAMETER temperature 0.7
PARAMETER stop "<|im_end|>"                          (repeatable)
SYSTEM """You are terse."""                           (triple quotes span lines)
TEMPLATE """{{ .Prompt }}"""
MESSAGE user Hello
LICENSE """..."""
```

Instructions are case-insensitive; an argument is a `"""`-quoted block, a `"`-quoted string
(with \" and \\ escapes) or the rest of the line. ADAPTER and unknown instructions are errors.
'''
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.errors import StoreError
from corral.store.params import add_parameter, format_value

INSTRUCTIONS = ("FROM", "PARAMETER", "SYSTEM", "TEMPLATE", "MESSAGE", "LICENSE", "ADAPTER")
MESSAGE_ROLES = ("system", "user", "assistant")


@dataclass
class Modelfile:
    from_: str
    params: dict[str, Any] = field(default_factory=dict)
    system: str | None = None
    template: str | None = None
    messages: list[dict[str, str]] = field(default_factory=list)
    license: str | None = None


class _Reader:
    """Walks the text keeping a line number for error messages."""

    def __init__(self, text: str):
        self.text = text.replace("\r\n", "\n")
        self.pos = 0

    @property
    def line(self) -> int:
        return self.text.count("\n", 0, self.pos) + 1

    def error(self, message: str) -> StoreError:
        return StoreError(f"Modelfile line {self.line}: {message}")

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def skip_blank_and_comments(self) -> None:
        while not self.at_end():
            ch = self.text[self.pos]
            if ch in " \t\n":
                self.pos += 1
            elif ch == "#":
                self.skip_line()
            else:
                return

    def skip_line(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end + 1

    def skip_spaces(self) -> None:
        while not self.at_end() and self.text[self.pos] in " \t":
            self.pos += 1

    def word(self) -> str:
        start = self.pos
        while not self.at_end() and self.text[self.pos] not in " \t\n":
            self.pos += 1
        return self.text[start:self.pos]

    def argument(self, what: str) -> str:
        self.skip_spaces()
        if self.text.startswith('"""', self.pos):
            end = self.text.find('"""', self.pos + 3)
            if end < 0:
                raise self.error(f'{what}: """ is never closed')
            value = self.text[self.pos + 3:end]
            self.pos = end + 3
            self._end_of_line(what)
            return value
        if self.text.startswith('"', self.pos):
            return self._quoted(what)
        end = self.text.find("\n", self.pos)
        end = len(self.text) if end < 0 else end
        value = self.text[self.pos:end].strip()
        self.pos = end
        if not value:
            raise self.error(f"{what} needs a value")
        return value

    def _quoted(self, what: str) -> str:
        out = []
        i = self.pos + 1
        while i < len(self.text):
            ch = self.text[i]
            if ch == "\\" and i + 1 < len(self.text) and self.text[i + 1] in '"\\':
                out.append(self.text[i + 1])
                i += 2
            elif ch == '"':
                self.pos = i + 1
                self._end_of_line(what)
                return "".join(out)
            else:
                out.append(ch)
                i += 1
        raise self.error(f'{what}: " is never closed')

    def _end_of_line(self, what: str) -> None:
        self.skip_spaces()
        if not self.at_end() and self.text[self.pos] not in "\n#":
            raise self.error(f"{what}: unexpected text after the closing quote")
        self.skip_line()


def parse_modelfile(text: str) -> Modelfile:
    """Parse Modelfile text; StoreError with the line number for anything it cannot take."""
    reader = _Reader(text)
    found: dict[str, Any] = {"params": {}, "messages": [], "licenses": []}
    while True:
        reader.skip_blank_and_comments()
        if reader.at_end():
            break
        instruction = reader.word().upper()
        if instruction not in INSTRUCTIONS:
            raise reader.error(f"unknown instruction {instruction!r}; expected one of {', '.join(INSTRUCTIONS)}")
        _apply(reader, instruction, found)
    if "from" not in found:
        raise StoreError("Modelfile has no FROM line; add `FROM <model name or path>`")
    return Modelfile(
        from_=found["from"],
        params=found["params"],
        system=found.get("system"),
        template=found.get("template"),
        messages=found["messages"],
        license="\n\n".join(found["licenses"]) or None,
    )


def _apply(reader: _Reader, instruction: str, found: dict[str, Any]) -> None:
    if instruction == "ADAPTER":
        raise reader.error("ADAPTER (LoRA adapters) is not supported by corral; merge the adapter into the weights")
    if instruction == "FROM":
        if "from" in found:
            raise reader.error("FROM appears twice; a Modelfile has one base model")
        found["from"] = reader.argument("FROM")
    elif instruction == "PARAMETER":
        reader.skip_spaces()
        key = reader.word()
        if not key:
            raise reader.error("PARAMETER needs a name and a value")
        value = reader.argument(f"PARAMETER {key}")
        try:
            add_parameter(found["params"], key, value)
        except StoreError as e:
            raise reader.error(e.message) from None
    elif instruction == "MESSAGE":
        reader.skip_spaces()
        role = reader.word().lower()
        if role not in MESSAGE_ROLES:
            raise reader.error(f"MESSAGE role must be one of {', '.join(MESSAGE_ROLES)}, got {role!r}")
        found["messages"].append({"role": role, "content": reader.argument("MESSAGE")})
    elif instruction == "LICENSE":
        found["licenses"].append(reader.argument("LICENSE"))
    else:
        found[instruction.lower()] = reader.argument(instruction)


def render_modelfile(
    from_: str,
    params: dict[str, Any],
    system: str | None,
    template: str | None,
    messages: list[dict[str, str]] | tuple[dict[str, str], ...],
    license: str | None,
) -> str:
    """Modelfile text that `parse_modelfile` reads back to the same settings."""
    lines = [f"FROM {from_}"]
    if template is not None:
        lines.append(f"TEMPLATE {_block(template)}")
    if system is not None:
        lines.append(f"SYSTEM {_block(system)}")
    for key, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"PARAMETER {key} {format_value(item)}")
    for message in messages:
        lines.append(f"MESSAGE {message['role']} {_block(message['content'])}")
    if license is not None:
        lines.append(f"LICENSE {_block(license)}")
    return "\n".join(lines) + "\n"


def _block(text: str) -> str:
    if '"""' in text or text.endswith('"'):  # would end the block early; "..." escapes everything
        return format_value(text)
    return f'"""{text}"""'
