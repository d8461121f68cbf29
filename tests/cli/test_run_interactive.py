"""`corral run MODEL` as a person uses it: a pseudo-terminal, in-process (CORRAL_HOST is closed).

Every reply is compared with `LLM.chat` of the conversation so far (greedy), so history, /clear,
/set and multi-line input are checked by what the model was actually asked.
"""
from __future__ import annotations

import re

import pytest

from cli_harness import Terminal, cli_env, greedy_reply

PROMPT = r"\n?>>> "  # the prompt, after the newline that ends a reply or an echoed command


@pytest.fixture
def terminal(cli_store, closed_host):
    term = Terminal(["run", "plain"], cli_env(cli_store, closed_host))
    yield term
    term.close()


def _ask(term: Terminal, text: str) -> str:
    """Type a message; the reply printed before the next prompt."""
    term.line(text)
    term.expect(re.escape(text) + "\n")  # the terminal's echo
    return term.expect(PROMPT).removesuffix("\n")


def test_two_turns_clear_and_set_parameter(terminal, reference_llm):
    terminal.expect(PROMPT)
    first = _ask(terminal, "hello")
    assert first == greedy_reply(reference_llm, [{"role": "user", "content": "hello"}])
    second = _ask(terminal, "and then?")
    conversation = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": first},
                    {"role": "user", "content": "and then?"}]
    assert second == greedy_reply(reference_llm, conversation)
    assert second != greedy_reply(reference_llm, [{"role": "user", "content": "and then?"}])

    terminal.line("/clear")
    assert "Cleared session context" in terminal.expect(PROMPT)
    terminal.line("/set parameter num_predict 3")
    assert "Set parameter 'num_predict' to '3'" in terminal.expect(PROMPT)
    short = _ask(terminal, "and then?")
    assert short == greedy_reply(reference_llm, [{"role": "user", "content": "and then?"}], max_tokens=3)
    assert len(short) < len(greedy_reply(reference_llm, [{"role": "user", "content": "and then?"}]))

    terminal.line("/show parameters")
    shown = terminal.expect(PROMPT)
    assert "num_predict" in shown and "temperature" in shown
    terminal.line("/set parameter warmth 3")
    assert "Unknown parameter 'warmth'" in terminal.expect(PROMPT)
    terminal.line("/bye")
    assert terminal.wait() == 0


def test_multi_line_message(terminal, reference_llm):
    terminal.expect(PROMPT)
    terminal.line('"""first line')
    terminal.expect(r"\.\.\. ")
    terminal.line("second line")
    terminal.expect(r"\.\.\. ")
    terminal.line('third line"""')
    terminal.expect(re.escape('third line"""') + "\n")
    reply = terminal.expect(PROMPT).removesuffix("\n")
    content = "first line\nsecond line\nthird line"
    assert reply == greedy_reply(reference_llm, [{"role": "user", "content": content}])
    terminal.send("\x04")  # Ctrl-D on an empty line leaves too
    assert terminal.wait() == 0


def test_ctrl_c_stops_the_reply_not_the_program(terminal, reference_llm):
    terminal.expect(PROMPT)
    terminal.line("/set parameter num_predict 100000")
    terminal.expect(PROMPT)
    terminal.line("tell me a long story")
    terminal.expect(re.escape("tell me a long story") + "\n")
    terminal.wait_for_output()
    terminal.send("\x03")
    partial = terminal.expect(PROMPT, timeout_s=60).removesuffix("\n").replace("^C", "")  # the tty echoes ^C
    reference = greedy_reply(reference_llm, [{"role": "user", "content": "tell me a long story"}], max_tokens=32)
    assert partial and (reference.startswith(partial) or partial.startswith(reference))

    # The program and its engine carry on: a fresh conversation gets the greedy answer.
    terminal.line("/clear")
    terminal.expect(PROMPT)
    terminal.line("/set parameter num_predict 8")
    terminal.expect(PROMPT)
    assert _ask(terminal, "hello") == greedy_reply(reference_llm, [{"role": "user", "content": "hello"}])
    terminal.send("\x03")  # at the prompt: a hint, not an exit
    assert "Use Ctrl + d or /bye to exit." in terminal.expect(PROMPT)
    terminal.line("/bye")
    assert terminal.wait() == 0
