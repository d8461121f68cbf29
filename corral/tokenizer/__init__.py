"""Tokenizers from GGUF metadata or Hugging Face files, chat templates, incremental detokenizing.

    Tokenizer.from_hf_dir(folder)      # tokenizer.json / tokenizer.model + configs
    Tokenizer.from_gguf(gguf_file)     # a corral.loader.gguf_file.GGUFFile (or a path)
    IncrementalDetokenizer(tokenizer)  # streaming text, never half a character
"""
from corral.tokenizer.detokenizer import IncrementalDetokenizer
from corral.tokenizer.tokenizer import Tokenizer

__all__ = ["Tokenizer", "IncrementalDetokenizer"]
