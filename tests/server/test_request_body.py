"""The body size limit's setting: parsed from `--max-body-size` / CORRAL_MAX_BODY_SIZE."""
from __future__ import annotations

import pytest

from corral.errors import ValidationError
from corral.server.request_body import DEFAULT_MAX_BODY_SIZE, parse_size


@pytest.mark.parametrize("text,size", [("16MiB", 16 << 20), ("512k", 512 << 10), ("1048576", 1 << 20),
                                       ("2 GiB", 2 << 30), ("1.5m", 3 << 19), ("10MB", 10_000_000)])
def test_sizes_parse(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-5", "16 TiB", "100", "nan", "1e9"])
def test_bad_sizes_are_validation_errors(text):
    with pytest.raises(ValidationError) as err:
        parse_size(text)
    assert err.value.param == "max_body_size"


def test_the_default_is_sixteen_mebibytes():
    assert DEFAULT_MAX_BODY_SIZE == 16 << 20
