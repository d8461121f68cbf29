"""Chat templates are untrusted code: a bomb is a ChatTemplateError with bounded memory and time,
and ordinary templates render exactly as Jinja2's own sandbox renders them."""
from __future__ import annotations

import resource
import time
import tracemalloc

import pytest

from corral.errors import ChatTemplateError
from corral.tokenizer.chat_template import render_chat_template

USER = [{"role": "user", "content": "hi"}]
BIG = "{% set big = 'x' * 1000000 %}"

BOMBS = {
    "repeat a string": "{{ 'x' * 10000000000 }}",
    "repeat through a variable": "{% set n = 10**10 %}{{ 'x' * n }}",
    "repeat a list": "{{ [1] * 10000000000 }}",
    "nested loops": "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "nested loops writing": "{% for a in range(100000) %}{% for b in range(100000) %}xy{% endfor %}{% endfor %}",
    "range of a million": "{% for a in range(10**6) %}{% for b in range(10**6) %}x{% endfor %}{% endfor %}",
    "loops over a built string": BIG + "{% for a in big %}{% for b in big %}{% endfor %}{% endfor %}",
    "huge power": "{{ 10 ** 100000000 }}",
    "repeated squaring": "{% set ns = namespace(x=3) %}{% for i in range(64) %}{% set ns.x = ns.x * ns.x %}{% endfor %}",
    "doubling with ~": "{% set ns = namespace(x='x') %}{% for i in range(64) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}",
    "doubling with +": "{% set ns = namespace(x='x') %}{% for i in range(64) %}{% set ns.x = ns.x + ns.x %}{% endfor %}",
    "doubling a list": "{% set ns = namespace(x=[1]) %}{% for i in range(64) %}{% set ns.x = ns.x + ns.x %}{% endfor %}",
    "nested literals": BIG + "{% set b = [big,big,big,big,big,big,big,big,big,big] %}{% set c = [b,b,b,b,b,b,b,b,b,b] %}"
                             "{% set d = [c,c,c,c,c,c,c,c,c,c] %}{{ d }}",
    "nested literals as a string": BIG + "{% set b = [big,big,big,big,big] %}{% set c = [b,b,b,b,b] %}{{ c|string|length }}",
    "padding in % format": "{{ '%0999999999d' % 1 }}",
    "padding in str.format": "{{ '{:>9999999999}'.format(1) }}",
    "format filter": "{{ '%999999999s'|format(1) }}",
    "center filter": "{{ 'x'|center(10000000000) }}",
    "ljust": "{{ 'x'.ljust(10000000000) }}",
    "indent": "{{ 'x\ny'|indent(10000000000, true) }}",
    "batch": "{{ [1]|batch(10000000000, 0)|list }}",
    "replace the empty string": BIG + "{{ big.replace('', big)|length }}",
    "join with a big separator": BIG + "{{ (range(100000)|map('string')|list)|join(big)|length }}",
    "str.join with a big separator": BIG + "{{ big.join(range(100000)|map('string'))|length }}",
    "expandtabs": "{{ ('\t' * 1000000).expandtabs(100000) }}",
    "sum of lists": "{{ range(100000)|batch(1)|sum(start=[])|length }}",
    "tojson indent": "{{ messages|tojson(indent=1000000000) }}",
    "recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "recursive loop": "{% for x in range(3) recursive %}{{ loop(range(100000)) }}{% endfor %}",
    "set block": "{% set x %}{% for i in range(100000) %}{% for j in range(100000) %}" + "y" * 64
                 + "{% endfor %}{% endfor %}{% endset %}{{ x|length }}",
    "deep expression": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
    "translate table": "{{ 'aaaa'.translate({97: 'x' * 1000000}) }}",
}


# Bombs that spend their budget in many small steps: tracemalloc would slow them tenfold, so their
# memory is checked by the process's peak resident size instead.
LOOPING = {"nested loops", "nested loops writing", "loops over a built string", "doubling a list",
           "join with a big separator", "str.join with a big separator", "sum of lists", "set block"}


@pytest.mark.parametrize("name", BOMBS)
def test_bombs_fail_cleanly(name):
    traced = name not in LOOPING
    if traced:
        tracemalloc.start()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10
    start = time.monotonic()
    try:
        with pytest.raises(ChatTemplateError) as e:
            render_chat_template(BOMBS[name], USER)
        peak = tracemalloc.get_traced_memory()[1] if traced else 0
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - start
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10) - rss_before
    assert "\n" not in str(e.value)
    # Generous bounds (this checks that the render stops, not how fast): a bomb unchecked takes
    # gigabytes or hours; a checked one a second or two and tens of megabytes at most.
    assert peak < 256 << 20 and grown < 512 << 20, f"{max(peak, grown) >> 20} MiB"
    assert elapsed < 60, f"{elapsed:.0f} s"


def test_limit_errors_say_what_happened():
    with pytest.raises(ChatTemplateError, match="more than .* characters"):
        render_chat_template(BOMBS["repeat a string"], USER)
    with pytest.raises(ChatTemplateError, match="steps of work"):
        render_chat_template(BOMBS["nested loops"], USER)


def test_a_template_too_long_to_compile():
    with pytest.raises(ChatTemplateError, match="longer than"):
        render_chat_template("x" * (2 << 20), USER)


# Ordinary templates exercising what the limits touch: ~, +, *, %, str.format, filters with sizes,
# loops and their variables, macros, set blocks, namespaces, recursive loops.
ORDINARY = [
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content | trim }}{% if not loop.last %}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}",
    "{{ '=' * 10 }}{{ ['a', 'b'] * 2 }}{{ 'a' + 'b' }}{{ [1] + [2] }}{{ 2 ** 10 }}{{ 7 % 3 }}{{ 3 * 4 }}",
    "{{ '%s: %05.1f|%-4s|' % ('pi', 3.14159, 'x') }}{{ '{} and {:>6}'.format('a', 'b') }}{{ '%(k)s' % {'k': 1} }}",
    "{{ 'abc' ~ 1 ~ none ~ [1, 2] }}{% for m in messages %}{{ m.role ~ ':' ~ m.content }}{% endfor %}",
    "{{ 'x'|center(9) }}|{{ 'a\nb'|indent(2, true) }}|{{ range(7)|batch(3, 0)|list }}|{{ range(7)|slice(3)|list }}",
    "{{ '%s-%s'|format(1, 2) }}|{{ messages|map(attribute='role')|join(', ') }}|{{ 'aXbX'|replace('X', '--') }}",
    "{{ 'one two three four'|wordwrap(7) }}|{{ [[1], [2]]|sum(start=[]) }}|{{ range(5)|sum }}|{{ 'ab'|list }}",
    "{{ 'a'.ljust(4) }}|{{ '7'.zfill(3) }}|{{ '-'.join(['a', 'b']) }}|{{ 'a	b'.expandtabs(4) }}",
    "{% macro show(m) %}[{{ m.role }}]{{ caller() if caller else '' }}{% endmacro %}"
    "{% for m in messages %}{% call show(m) %}{{ m.content }}{% endcall %}{% endfor %}",
    "{% set ns = namespace(text='', n=0) %}{% for m in messages|reverse %}{% set ns.text = ns.text ~ m.role %}"
    "{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.text }}{{ ns.n }}{% set block %}A{{ ns.n }}B{% endset %}{{ block }}",
    "{% for item in tree recursive %}{{ item.name }}{% if item.children %}({{ loop(item.children) }}){% endif %}"
    "{% endfor %}{{ loop_test if loop_test is defined else 'none' }}",
    "{% for m in messages %}{{ loop.index }}/{{ loop.length }}{{ loop.cycle('a', 'b') }}{{ loop.first }}"
    "{% if loop.previtem is defined %}{{ loop.previtem.role }}{% endif %}{% endfor %}{{ range(3)|list }}",
]
TREE = [{"name": "a", "children": [{"name": "b", "children": []}, {"name": "c", "children": [{"name": "d"}]}]}]
CONVERSATION = [{"role": "system", "content": " be brief "}, {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"}]


@pytest.mark.parametrize("template", ORDINARY)
def test_ordinary_templates_render_as_jinja_sandbox_renders_them(template):
    """The reference: Jinja2's ImmutableSandboxedEnvironment, configured as transformers does."""
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    variables = dict(messages=CONVERSATION, add_generation_prompt=True, tree=TREE)
    want = env.from_string(template).render(tools=None, documents=None, **variables)
    assert render_chat_template(template, CONVERSATION, tree=TREE) == want


def test_a_long_conversation_fits_the_budget():
    template = ("{% for m in messages %}{{ '<|im_start|>' + m.role + '\n' + m.content | trim + '<|im_end|>' + '\n' }}"
                "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    messages = [{"role": "user" if i % 2 else "assistant", "content": f"message {i} " * 20} for i in range(20_000)]
    text = render_chat_template(template, messages)
    assert text.count("<|im_start|>") == 20_001
