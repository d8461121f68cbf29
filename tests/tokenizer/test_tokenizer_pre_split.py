"""GGUF pre-tokenizer names split text like the tokenizer.json they were converted from."""
from __future__ import annotations

import json

import pytest

from corral.loader.gguf_file import GGUFFile
from corral.tokenizer import Tokenizer
from corral.tokenizer.pre_tokenizers import split_regexes
from corral.tokenizer.spm_model import read_spm_model
from tests.fixtures.tokenizers import TRAINING_TEXT
from tokenizer_files import write_vocab_gguf

TEXT = "Hello, world!  It's 12345 + 6.78 -- x<=y\n\n\tCafé 日本語 ABCdef camelCase 🙂"


def _train(folder, pre_tokenizer):
    from tokenizers import Tokenizer as Engine, decoders, models, trainers
    from tokenizers import pre_tokenizers as pre

    engine = Engine(models.BPE())
    engine.pre_tokenizer = pre_tokenizer
    engine.decoder = decoders.ByteLevel()
    engine.train_from_iterator([TRAINING_TEXT], trainers.BpeTrainer(
        vocab_size=380, initial_alphabet=pre.ByteLevel.alphabet(), show_progress=False,
        special_tokens=["<|endoftext|>"]))
    folder.mkdir()
    engine.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>"}))


def _pre_tokenizers():
    from tokenizers import Regex
    from tokenizers import pre_tokenizers as pre

    byte_level = pre.ByteLevel(add_prefix_space=False, use_regex=False)
    return {
        "gpt-2": pre.ByteLevel(add_prefix_space=False),
        "starcoder": pre.Sequence([pre.Digits(individual_digits=True), pre.ByteLevel(add_prefix_space=False)]),
        "tekken": pre.Sequence([pre.Split(Regex(split_regexes("tekken")[0]), "isolated"), byte_level]),
        "gpt-4o": pre.Sequence([pre.Split(Regex(split_regexes("gpt-4o")[0]), "isolated"), byte_level]),
    }


@pytest.mark.parametrize("name", ["gpt-2", "starcoder", "tekken", "gpt-4o"])
def test_pre_tokenizer_round_trip(name, tmp_path):
    folder = tmp_path / name
    _train(folder, _pre_tokenizers()[name])
    gguf_file = GGUFFile(write_vocab_gguf(folder, tmp_path / f"{name}.gguf"))
    assert gguf_file.metadata["tokenizer.ggml.pre"] == name
    ours, from_gguf = Tokenizer.from_hf_dir(folder), Tokenizer.from_gguf(gguf_file)
    for text in (TEXT, TRAINING_TEXT):
        assert from_gguf.encode(text) == ours.encode(text)
        assert from_gguf.decode(from_gguf.encode(text)) == text


def test_spm_model_reader_matches_sentencepiece(spm_dir):
    import sentencepiece

    reference = sentencepiece.SentencePieceProcessor(model_file=str(spm_dir / "tokenizer.model"))
    model = read_spm_model(spm_dir / "tokenizer.model")
    assert model.model_type == "bpe" and model.byte_fallback and model.add_dummy_prefix
    assert len(model.pieces) == reference.get_piece_size()
    for i, piece in enumerate(model.pieces):
        assert piece == reference.id_to_piece(i)
        assert model.scores[i] == pytest.approx(reference.get_score(i))
        assert (model.types[i] == 3) == reference.is_control(i)
        assert (model.types[i] == 6) == reference.is_byte(i)
        assert (model.types[i] == 2) == reference.is_unknown(i)
