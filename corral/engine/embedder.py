"""Embeddings and rerank scores from a loaded EmbeddingModel: tokenize, batch, forward, pool.

Contracts:
- `prepare` turns texts or token-id lists into model inputs with the model's special tokens
  (BERT's [CLS] ... [SEP], Qwen3-Embedding's trailing <|endoftext|>). An input longer than the
  model's `max_len` is cut in the middle of its own tokens (the special tokens stay) when
  `truncate`, else it raises ContextLengthError naming the input and the limit.
- `embed_ids` runs many inputs per forward, sorted by length and padded on the right, in batches
  of at most `max_batch_tokens` padded tokens; the result is in input order.
- Pooling and normalization are the model's (EmbeddingModel.pooling); `dimensions` keeps the first
  dimensions of each vector (Matryoshka), normalized again when the model normalizes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from corral.engine.embedding_loader import EmbeddingModel
from corral.errors import ContextLengthError, ValidationError

Input = str | list[int]


class Embedder:
    def __init__(self, model: EmbeddingModel, max_batch_tokens: int = 16384):
        self.model = model
        self.tokenizer = model.tokenizer
        self.max_len = model.max_len
        self.max_batch_tokens = max_batch_tokens
        self._hf_engine = model.format == "hf"

    @property
    def kind(self) -> str:
        return self.model.kind

    # -- tokens -----------------------------------------------------------------------------

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Ids as the model takes them: a folder's tokenizer.json post-processor adds the special
        tokens; a GGUF's metadata says which (BOS/EOS flags)."""
        if self._hf_engine and self.tokenizer.added_tokens is None:
            return list(self.tokenizer.engine.encode(text, add_special_tokens=add_special_tokens).ids)
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens)

    def _specials(self) -> tuple[list[int], list[int]]:
        """The ids the model puts before and after every input."""
        plain, full = self.encode("a", False), self.encode("a", True)
        at = next((i for i in range(len(full) - len(plain) + 1) if full[i:i + len(plain)] == plain), 0)
        return full[:at], full[at + len(plain):]

    def _fit(self, ids: list[int], index: int, truncate: bool, suffix: list[int]) -> list[int]:
        if len(ids) <= self.max_len:
            return ids
        if not truncate:
            raise ContextLengthError(f"input {index} has {len(ids)} tokens but the model takes at most "
                                     f"{self.max_len}; shorten it or ask for truncation", param="input")
        tail = suffix if suffix and ids[-len(suffix):] == suffix else []  # kept, like the leading specials
        return ids[:self.max_len - len(tail)] + tail

    def prepare(self, inputs: list[Input], truncate: bool = False) -> list[list[int]]:
        """Texts are tokenized with the model's special tokens; id lists are taken as given."""
        suffix = self._specials()[1]
        vocab = self.tokenizer.vocab_size
        out = []
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                ids = self.encode(item)
            else:
                ids = [int(t) for t in item]
                if any(not 0 <= t < vocab for t in ids):
                    raise ValidationError("input", f"input {i} has a token id outside the vocabulary (0..{vocab - 1})")
            if not ids:
                raise ValidationError("input", f"input {i} is empty; give at least one token")
            out.append(self._fit(ids, i, truncate, suffix))
        return out

    def prepare_pairs(self, query: str, documents: list[str], truncate: bool = True) -> list[tuple[list[int], list[int]]]:
        """(ids, token types) of each (query, document) pair as a cross-encoder takes them; a causal
        reranker's pairs are its prompt (`model.rerank_prompt`), cut before the prompt's tail."""
        prompt = self.model.rerank_prompt
        tail = self.encode(prompt.tail(), False) if prompt is not None else []
        out = []
        for i, doc in enumerate(documents):
            if prompt is not None:
                ids = self.encode(prompt.render(query, doc), False)
                types = [0] * len(ids)
            elif self._hf_engine and self.tokenizer.added_tokens is None:
                enc = self.tokenizer.engine.encode(query, doc, add_special_tokens=True)
                ids, types = list(enc.ids), list(enc.type_ids)
            else:  # llama.cpp's layout: BOS query EOS SEP document EOS, one token type
                first, second = self.encode(query), self.encode(doc)
                second = second[1:] if second[:1] == first[:1] and self.tokenizer.add_bos else second
                sep = [first[-1]] if self.tokenizer.add_eos else []
                ids = first + sep + second
                types = [0] * len(ids)
            if len(ids) > self.max_len:
                if not truncate:
                    raise ContextLengthError(f"query and document {i} have {len(ids)} tokens together but the model "
                                             f"takes at most {self.max_len}; shorten them", param="documents")
                # the closing separator, or the prompt after the document (as the model card cuts)
                whole_tail = tail and ids[-len(tail):] == tail and len(tail) < self.max_len
                keep_tail = len(tail) if whole_tail else 1
                ids = ids[:self.max_len - keep_tail] + ids[-keep_tail:]
                types = types[:self.max_len - keep_tail] + types[-keep_tail:]
            out.append((ids, types))
        return out

    # -- compute ----------------------------------------------------------------------------

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches, current = [], []
        for i in order:
            if current and (len(current) + 1) * lengths[i] > self.max_batch_tokens:
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def _hidden(self, seqs: list[list[int]], types: list[list[int]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded (B, T) ids through the network -> hidden (B, T, H) and mask (B, T)."""
        T = max(len(s) for s in seqs)
        ids = torch.zeros(len(seqs), T, dtype=torch.long)
        mask = torch.zeros(len(seqs), T, dtype=torch.bool)
        tt = torch.zeros(len(seqs), T, dtype=torch.long)
        for b, s in enumerate(seqs):
            ids[b, :len(s)] = torch.tensor(s)
            mask[b, :len(s)] = True
            if types is not None:
                tt[b, :len(s)] = torch.tensor(types[b])
        net = self.model.network
        hidden = net(ids, mask, tt) if types is not None else net(ids, mask)
        return hidden, mask

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mode = self.model.pooling.mode
        if mode == "cls":
            return hidden[:, 0]
        if mode == "last":
            last = mask.sum(dim=1) - 1
            return hidden[torch.arange(hidden.shape[0]), last]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(dim=1) / m.sum(dim=1)

    def pool_ids(self, seqs: list[list[int]]) -> torch.Tensor:
        """(N, dim) float32 pooled vectors of prepared inputs, in input order, not yet normalized."""
        if self.kind != "embed":
            raise ValidationError("input", "this model is a reranker; it scores query-document pairs, not embeddings")
        out = torch.empty(len(seqs), self.model.dim)
        for batch in self._batches([len(s) for s in seqs]):
            hidden, mask = self._hidden([seqs[i] for i in batch])
            out[batch] = self._pool(hidden, mask)
        return out

    def check_dimensions(self, dimensions: int | None) -> None:
        dim = self.model.dim
        if dimensions is not None and not 1 <= dimensions <= dim:
            raise ValidationError("dimensions", f"must be between 1 and the model's {dim} dimensions, not {dimensions}")

    def finish(self, pooled: torch.Tensor, dimensions: int | None = None) -> torch.Tensor:
        """Pooled vectors cut to `dimensions` (Matryoshka) and normalized when the model normalizes."""
        self.check_dimensions(dimensions)
        out = pooled[:, :dimensions] if dimensions is not None else pooled
        return F.normalize(out, p=2, dim=-1) if self.model.pooling.normalize else out

    def embed_ids(self, seqs: list[list[int]], dimensions: int | None = None) -> torch.Tensor:
        """(N, dim or dimensions) float32 embeddings of prepared inputs, in input order."""
        self.check_dimensions(dimensions)
        return self.finish(self.pool_ids(seqs), dimensions)

    def embed(self, inputs: Input | list[Input], truncate: bool = False, dimensions: int | None = None) -> list[list[float]]:
        """One vector per input (a string or a token-id list is one input)."""
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        return self.embed_ids(self.prepare(list(inputs), truncate), dimensions).tolist()

    def score_pairs(self, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
        """Relevance of each prepared pair from the classifier's logits, through the model's
        activation: sigmoid or identity of the first logit, the first of their softmax, or the
        first minus the second (log-odds)."""
        if self.kind != "rerank":
            raise ValidationError("model", "this model makes embeddings; reranking needs a cross-encoder "
                                           "(e.g. a BGE reranker)")
        scores = torch.empty(len(pairs))
        activation = self.model.pooling.activation
        for batch in self._batches([len(p[0]) for p in pairs]):
            hidden, mask = self._hidden([pairs[i][0] for i in batch], [pairs[i][1] for i in batch])
            logits = self.model.network.score(hidden, mask)  # (B, num_labels)
            if activation == "softmax":
                scores[batch] = torch.softmax(logits, dim=-1)[:, 0]
            elif activation == "log_odds":
                scores[batch] = logits[:, 0] - logits[:, 1]
            else:
                scores[batch] = logits[:, 0]
        if activation == "sigmoid":
            scores = torch.sigmoid(scores)
        return scores.tolist()

    def rerank(self, query: str, documents: list[str], truncate: bool = True) -> list[float]:
        return self.score_pairs(self.prepare_pairs(query, documents, truncate))
