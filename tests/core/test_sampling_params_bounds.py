"""Every sampling parameter is checked for type, finiteness and range before a request is queued."""
from __future__ import annotations

import math

import pytest

from corral.core.sampling_params import MAX_INT, MIN_TEMPERATURE, SamplingParams
from corral.errors import ValidationError


@pytest.mark.parametrize("field,value", [
    ("top_k", 2**63), ("top_k", -(2**40)), ("top_k", 1.5), ("top_k", "5"),
    ("temperature", math.nan), ("temperature", math.inf), ("temperature", -1), ("temperature", 1e300),
    ("temperature", "hot"), ("temperature", True),
    ("top_p", math.nan), ("top_p", 0), ("top_p", 1.5),
    ("min_p", math.nan), ("min_p", -0.1),
    ("repetition_penalty", math.nan), ("repetition_penalty", math.inf), ("repetition_penalty", 0),
    ("repetition_penalty", 1e-30), ("repetition_penalty", 1e30),
    ("presence_penalty", math.nan), ("frequency_penalty", -math.inf),
    ("max_tokens", 2**70), ("max_tokens", 0), ("max_tokens", 10.0), ("max_tokens", True),
    ("min_tokens", -1), ("min_tokens", 2**70),
    ("seed", 2**70), ("seed", -(2**64)), ("seed", 1.5),
    ("n", 0), ("n", 129), ("n", True),
    ("logprobs", 21), ("logprobs", -1), ("logprobs", True),
    ("stop_token_ids", [2**63]), ("stop_token_ids", [-1]), ("stop_token_ids", ["a"]), ("stop_token_ids", 5),
    ("stop", [""]), ("stop", ["x" * 257]), ("stop", [1]), ("stop", ["a"] * 17),
    ("ignore_eos", "yes"), ("skip_special_tokens", None),
])
def test_out_of_range_values_are_validation_errors_naming_the_field(field, value):
    with pytest.raises(ValidationError) as err:
        SamplingParams(**{field: value})
    assert err.value.param == field and len(err.value.message) < 400


def test_values_at_the_bounds_are_accepted():
    p = SamplingParams(top_k=MAX_INT, max_tokens=MAX_INT, min_tokens=MAX_INT, seed=2**64 - 1, temperature=100,
                       repetition_penalty=0.01, presence_penalty=-2, frequency_penalty=2, logprobs=20,
                       stop_token_ids=[0, MAX_INT], n=128)
    assert p.top_k == MAX_INT and p.seed == 2**64 - 1
    assert SamplingParams(seed=-(2**63)).seed == -(2**63)


def test_negative_top_k_means_all_tokens_and_tiny_temperatures_are_raised():
    assert SamplingParams(top_k=-1).top_k == 0 and SamplingParams(top_k=-5).top_k == 0
    assert SamplingParams(temperature=1e-300).temperature == MIN_TEMPERATURE
    assert SamplingParams(temperature=0).greedy
