"""The shared tiny-model fixtures are what they claim to be."""
import json

import pytest
from tokenizers import Tokenizer

from fixtures.tiny_models import TINY_ARCHS


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_vocab_is_the_tokenizers_and_logits_have_its_width(tiny_models, reference_logits, arch):
    folder = tiny_models(arch, "hf")
    config = json.loads((folder / "config.json").read_text())
    vocab = Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size(with_added_tokens=True)
    assert config["vocab_size"] == vocab
    assert config["hidden_size"] % 256 == 0 and config["intermediate_size"] % 256 == 0  # whole K-quant blocks
    logits = reference_logits(folder, [1, 2, 3])
    assert logits.shape == (3, vocab)
    assert logits.std() > 0.1  # weights large enough that tokens are not near-ties everywhere
