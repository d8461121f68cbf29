"""`corral run [MODEL] [PROMPT]`: answer one prompt, or chat interactively.

Interactive commands follow Ollama: /bye, /clear, /set parameter NAME VALUE, /set system TEXT,
/show parameters, /? ; a line starting with \"\"\" opens a multi-line message closed by \"\"\".
Ctrl-C stops the reply being written, not the program; Ctrl-D or /bye leaves.
"""
from __future__ import annotations

import sys
import time

from corral.errors import CorralError
from corral.cli.chat_backends import OPTION_FIELDS, LocalBackend, ServerBackend, server_is_running

HELP = """Available commands:
  /set parameter NAME VALUE   set a sampling option (temperature, top_k, top_p, min_p, seed, num_predict, stop, ...)
  /set system TEXT            set the system message
  /show parameters            show the options in use
  /clear                      forget the conversation so far
  /bye                        leave
Use \"\"\" to begin and end a multi-line message."""


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="chat with a model (default: the bundled model)")
    p.add_argument("model", nargs="?", default=None, help="a store name, a .gguf file or a Hugging Face folder")
    p.add_argument("prompt", nargs="*", help="answer this prompt and exit")
    p.add_argument("--local", action="store_true", help="run in this process even if a server is running")
    p.set_defaults(func=run)


def run(args) -> int:
    model = args.model or default_model_name()
    backend = ServerBackend(model) if not args.local and server_is_running() else load_local(model)
    prompt = " ".join(args.prompt)
    if not prompt and not sys.stdin.isatty():
        prompt = sys.stdin.read().strip()  # `echo question |` adds a newline the model need not see
    if prompt:
        _stream(backend, [{"role": "user", "content": prompt}], {})
        return 0
    return _interactive(backend)


def default_model_name() -> str:
    """The default model's name; says on stderr when it had to fall back to corral-mini."""
    from corral.store.default_model import default_model, fallback_note

    note = fallback_note()
    if note:
        print(note, file=sys.stderr)
    return default_model().name


def load_local(model: str) -> LocalBackend:
    """Load `model` in this process, saying on stderr what loads and how long it took (stdout
    stays for the answer alone, for scripts)."""
    print(f"Loading {describe(model)} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    backend = LocalBackend(model)
    print(f"Loaded in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return backend


def describe(model: str) -> str:
    """`model` as a user recognises it: a bundled model's name and what it is, else what was typed."""
    from corral.store.default_model import bundled_models

    for bundled in bundled_models():
        if model in (bundled.name, bundled.name.removesuffix(":latest"), str(bundled.path)):
            return f"{bundled.name} ({bundled.description})"
    return model


def _with_system(system: str | None, messages: list[dict]) -> list[dict]:
    """The conversation, with the system message `/set system` gave (the model's own otherwise)."""
    return ([{"role": "system", "content": system}] if system else []) + messages


def _stream(backend, messages: list[dict], options: dict) -> str:
    """Print the reply as it comes; Ctrl-C stops it (what came so far is returned)."""
    pieces = []
    replies = backend.chat(messages, options)
    try:
        for piece in replies:
            pieces.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
    except KeyboardInterrupt:
        replies.close()
    sys.stdout.write("\n")
    sys.stdout.flush()
    return "".join(pieces)


def _read_message() -> str | None:
    """One user message (None at end of input); handles \"\"\" multi-line blocks."""
    line = input(">>> ")
    if not line.lstrip().startswith('"""'):
        return line
    text = line.lstrip()[3:]
    if text.rstrip().endswith('"""') and text.strip() != "":
        return text.rstrip()[:-3]
    lines = [text] if text else []
    while True:
        more = input("... ")
        if more.rstrip().endswith('"""'):
            lines.append(more.rstrip()[:-3])
            return "\n".join(lines)
        lines.append(more)


def _interactive(backend) -> int:
    """Read messages until /bye or end of input. The model's Modelfile turns, system prompt and
    parameters are applied by the backend; `history` and `options` are this session's own."""
    history: list[dict] = []
    options: dict = {}
    system: str | None = None
    while True:
        try:
            message = _read_message()
        except EOFError:
            print()
            return 0
        except KeyboardInterrupt:
            print("\nUse Ctrl + d or /bye to exit.")
            continue
        stripped = message.strip()
        if not stripped:
            continue
        if stripped.startswith("/"):
            outcome = _command(stripped, options, history, getattr(backend, "options", {}))
            if outcome == "bye":
                return 0
            if isinstance(outcome, tuple):
                system = outcome[1]
            continue
        history.append({"role": "user", "content": message})
        try:
            reply = _stream(backend, _with_system(system, history), options)
        except CorralError as e:
            history.pop()
            print(f"Error: {e.message}")
            continue
        history.append({"role": "assistant", "content": reply})


def _command(line: str, options: dict, history: list[dict], model_options: dict):
    """Run one /command; "bye" to leave, ("system", TEXT) to set the system message."""
    parts = line.split(maxsplit=3)
    name = parts[0]
    if name in ("/bye", "/exit"):
        return "bye"
    if name == "/clear":
        history.clear()
        print("Cleared session context")
    elif name in ("/?", "/help"):
        print(HELP)
    elif name == "/set" and len(parts) >= 3 and parts[1] == "system":
        text = line.split(maxsplit=2)[2].strip().strip('"')
        print("Set system message.")
        return ("system", text)
    elif name == "/set" and len(parts) == 4 and parts[1] == "parameter":
        key, raw = parts[2], parts[3]
        if key not in OPTION_FIELDS:
            print(f"Unknown parameter '{key}'. Known: {', '.join(OPTION_FIELDS)}")
            return None
        try:
            value = OPTION_FIELDS[key][1](raw)
        except ValueError:
            print(f"Couldn't set parameter: {raw!r} is not a valid {OPTION_FIELDS[key][1].__name__}")
            return None
        if key == "stop":
            options.setdefault("stop", []).append(value)
        else:
            options[key] = value
        print(f"Set parameter '{key}' to '{raw}'")
    elif name == "/show" and len(parts) >= 2 and parts[1] == "parameters":
        shown = {**model_options, **options}
        for key, value in shown.items():
            print(f"{key:<20} {value}")
        if not shown:
            print("No parameters set.")
    else:
        print(f"Unknown command '{line}'. Type /? for help")
    return None
