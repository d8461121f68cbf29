"""One request that makes the model step raise fails alone; the batch it joined goes on unchanged."""
from __future__ import annotations

import logging

import pytest

from corral import SamplingParams
from corral.engine import model_runner
from corral.engine.step_isolation import RequestFailedError, StepFailedError

PROMPTS = ["The quick brown fox", "Once upon a time", "import numpy as"]
GREEDY = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)


@pytest.fixture(scope="module")
def llm(make_llm):
    return make_llm("qwen2", "hf")


def poison_sampler(monkeypatch, is_poisoned) -> None:
    """Make the sampler raise inside the step for any batch holding a poisoned request."""
    real = model_runner._sampling_batch

    def sampling_batch(requests, device):
        if any(is_poisoned(r) for r in requests):
            raise RuntimeError("injected fault")
        return real(requests, device)

    monkeypatch.setattr(model_runner, "_sampling_batch", sampling_batch)


def run_to_end(engine, ids: list[str]) -> dict:
    while engine.has_unfinished() and not all(engine.is_finished(r) for r in ids):
        engine.step()
    return {rid: engine.pop_final(rid).outputs[0].token_ids for rid in ids}


def test_a_poisoned_request_joining_a_running_batch_fails_alone(llm, monkeypatch):
    alone = {p: llm.generate([p], GREEDY)[0].outputs[0].token_ids for p in PROMPTS}
    engine = llm.engine
    poison_sampler(monkeypatch, lambda r: r.request_id.startswith("poison"))
    ids = [engine.add_request(p, GREEDY, request_id=f"ok-{i}") for i, p in enumerate(PROMPTS)]
    for _ in range(3):
        engine.step()
    poisoned = engine.add_request("Tell me a story", SamplingParams(temperature=0.8, max_tokens=12, n=2),
                                  request_id="poison-1")
    engine.step()
    failures = engine.pop_failures()
    assert set(failures) == {poisoned} and isinstance(failures[poisoned], RequestFailedError)
    assert "injected fault" in str(failures[poisoned]) and poisoned in str(failures[poisoned])
    assert poisoned not in engine.unfinished_request_ids()
    results = run_to_end(engine, ids)
    assert [results[f"ok-{i}"] for i in range(len(PROMPTS))] == [alone[p] for p in PROMPTS]
    assert engine.scheduler.kv_usage == 0 and not engine.has_unfinished()


def test_the_offline_api_raises_the_poisoned_requests_error(llm, monkeypatch):
    poison_sampler(monkeypatch, lambda r: r.sampling_params.seed == 666)
    poisoned = SamplingParams(temperature=0, max_tokens=12, seed=666)
    with pytest.raises(RequestFailedError, match="injected fault"):
        llm.generate(PROMPTS, [GREEDY, poisoned, GREEDY])
    assert not llm.engine.has_unfinished()
    monkeypatch.undo()
    assert len(llm.generate(PROMPTS[:1], GREEDY)[0].outputs[0].token_ids) == 12


def test_a_step_that_fails_for_everyone_is_logged_and_fails_the_batch(llm, monkeypatch, caplog):
    poison_sampler(monkeypatch, lambda r: True)
    engine = llm.engine
    ids = [engine.add_request(p, GREEDY, request_id=f"all-{i}") for i, p in enumerate(PROMPTS)]
    with caplog.at_level(logging.ERROR, logger="corral.engine"), pytest.raises(StepFailedError, match="injected"):
        engine.step()
    assert "all-0" in caplog.text and "all-2" in caplog.text
    for rid in ids:
        engine.abort(rid)
    assert engine.scheduler.kv_usage == 0


def test_stop_token_ids_outside_the_vocabulary_are_refused(llm):
    from corral.errors import ValidationError

    vocab = llm.engine.model_config.vocab_size
    with pytest.raises(ValidationError) as err:
        llm.generate(["hi"], SamplingParams(stop_token_ids=[vocab]))
    assert err.value.param == "stop_token_ids"
