"""Embeddings and rerank scores against sentence-transformers on the same weights: BERT,
XLM-RoBERTa (CLS pooling, bge-m3's layout) and Qwen3 (last token) as sentence-transformers folders
and as llama.cpp-style GGUF files; rerankers against CrossEncoder."""
from __future__ import annotations

import pytest
import torch

from corral.engine.embedder import Embedder
from corral.engine.embedding_loader import load_embedding_model
from corral.errors import ContextLengthError, ValidationError

TEXTS = ["hello world", "The quick brown fox jumps over the lazy dog, again and again and again.", "a",
         "Tokens, punctuation; and numbers 12345!", "ｆｕｌｌ  width ① and   spaces"]
LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 12)
QUERY = "what does the fox do"


def cosine(a, b) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(torch.as_tensor(a, dtype=torch.float32),
                                                 torch.as_tensor(b, dtype=torch.float32), dim=-1)


_st_cache: dict = {}


def st_model(path):
    from sentence_transformers import SentenceTransformer

    if str(path) not in _st_cache:
        _st_cache[str(path)] = SentenceTransformer(str(path), device="cpu")
    return _st_cache[str(path)]


@pytest.fixture(scope="module")
def embedders(embedding_models):
    cache = {}

    def get(arch, fmt):
        if (arch, fmt) not in cache:
            path = embedding_models.st(arch) if fmt == "st" else embedding_models.gguf(arch)
            cache[arch, fmt] = Embedder(load_embedding_model(path))
        return cache[arch, fmt]

    return get


@pytest.mark.parametrize("fmt", ["st", "gguf"])
@pytest.mark.parametrize("arch", ["bert", "xlm-roberta", "qwen3"])
def test_vectors_match_sentence_transformers_single_and_batched(embedders, embedding_models, arch, fmt):
    embedder = embedders(arch, fmt)
    reference = st_model(embedding_models.st(arch)).encode(TEXTS, convert_to_tensor=True)
    batched = torch.tensor(embedder.embed(TEXTS))
    assert batched.shape == reference.shape
    assert cosine(batched, reference).min() >= 0.9999
    single = torch.tensor([embedder.embed(t)[0] for t in TEXTS])
    assert cosine(single, reference).min() >= 0.9999
    assert torch.allclose(batched.norm(dim=-1), torch.ones(len(TEXTS)), atol=1e-5)  # Normalize module / GGUF


@pytest.mark.parametrize("fmt", ["st", "gguf"])
def test_qwen3_vectors_match_transformers_last_token(embedders, embedding_models, fmt):
    """The decoder embedder against transformers' Qwen3Model itself: the last token's final hidden
    state (the tokenizer appends <|endoftext|>), L2-normalized; inputs of mixed lengths, padded left."""
    import transformers

    folder = embedding_models.hf("qwen3")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), padding_side="left")
    model = transformers.Qwen3Model.from_pretrained(str(folder), dtype=torch.float32).eval()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        last = model(**batch).last_hidden_state[:, -1]
    expected = torch.nn.functional.normalize(last, dim=-1)
    assert cosine(embedders("qwen3", fmt).embed(TEXTS), expected).min() >= 0.9999


@pytest.mark.parametrize("arch", ["bert", "qwen3"])
def test_too_long_input_is_an_error_unless_truncated(embedders, embedding_models, arch):
    embedder = embedders(arch, "st")
    with pytest.raises(ContextLengthError, match="at most 64"):
        embedder.embed([TEXTS[0], LONG])
    reference = st_model(embedding_models.st(arch)).encode([LONG, TEXTS[0]], convert_to_tensor=True)
    assert cosine(embedder.embed([LONG, TEXTS[0]], truncate=True), reference).min() >= 0.9999


def test_token_ids_dimensions_and_bad_inputs(embedders):
    embedder = embedders("bert", "gguf")
    ids = embedder.prepare([TEXTS[1]])[0]
    assert embedder.embed(ids) == embedder.embed(TEXTS[1])
    full = torch.tensor(embedder.embed(TEXTS[:2]))
    short = torch.tensor(embedder.embed(TEXTS[:2], dimensions=16))
    assert short.shape == (2, 16)
    assert torch.allclose(short, torch.nn.functional.normalize(full[:, :16], dim=-1), atol=1e-6)
    with pytest.raises(ValidationError, match="dimensions"):
        embedder.embed(TEXTS[0], dimensions=65)
    with pytest.raises(ValidationError, match="vocabulary"):
        embedder.embed([[1, 2, 10**6]])
    with pytest.raises(ValidationError, match="reranker|cross-encoder"):
        embedder.rerank(QUERY, TEXTS)


@pytest.mark.parametrize("arch,fmt", [("bert", "st"), ("xlm-roberta", "st"), ("xlm-roberta", "gguf")])
def test_rerank_scores_match_cross_encoder(embedding_models, arch, fmt):
    from sentence_transformers import CrossEncoder

    folder = embedding_models.cross_encoder(arch)
    embedder = Embedder(load_embedding_model(folder if fmt == "st" else embedding_models.gguf(arch, classifier=True)))
    assert embedder.kind == "rerank"
    expected = CrossEncoder(str(folder), device="cpu").predict([(QUERY, d) for d in TEXTS])
    assert embedder.rerank(QUERY, TEXTS) == pytest.approx(expected.tolist(), abs=1e-5)
    with pytest.raises(ValidationError, match="embeddings"):
        embedder.embed(TEXTS[0])


def test_llm_offline_api_embeds_reranks_and_names_the_wrong_kind(embedding_models, tiny_models):
    from corral import LLM
    from corral.errors import ModelKindError

    embedder = LLM(str(embedding_models.st("qwen3")))
    reference = st_model(embedding_models.st("qwen3")).encode(TEXTS, convert_to_tensor=True)
    assert cosine(embedder.embed(TEXTS), reference).min() >= 0.9999
    with pytest.raises(ModelKindError, match="embedding model"):
        embedder.generate("hello")
    with pytest.raises(ModelKindError, match="not a reranking"):
        embedder.rerank(QUERY, TEXTS)
    reranker = LLM(str(embedding_models.cross_encoder("xlm-roberta")))
    ranked = reranker.rerank(QUERY, TEXTS, top_n=2)
    scores = Embedder(load_embedding_model(embedding_models.cross_encoder("xlm-roberta"))).rerank(QUERY, TEXTS)
    assert [r["index"] for r in ranked] == sorted(range(len(TEXTS)), key=lambda i: -scores[i])[:2]
    generator = LLM(str(tiny_models("qwen2", "hf")), max_model_len=64, kv_cache_memory=4 << 20)
    with pytest.raises(ModelKindError, match="text-generation model"):
        generator.embed("hello")


def test_nomic_bert_gguf_matches_the_documented_math(embedding_models, tmp_path):
    import transformers

    from fixtures.nomic_bert import nomic_reference, random_nomic_weights, write_nomic_gguf

    wordpiece = embedding_models.hf("bert")
    weights = random_nomic_weights(transformers.AutoTokenizer.from_pretrained(str(wordpiece)).vocab_size)
    embedder = Embedder(load_embedding_model(write_nomic_gguf(weights, wordpiece, tmp_path / "nomic.gguf")))
    ids = embedder.prepare(TEXTS)
    expected = torch.stack([nomic_reference(weights, s) for s in ids])
    assert cosine(embedder.embed(TEXTS), expected).min() >= 0.9999
    assert cosine([embedder.embed(t)[0] for t in TEXTS], expected).min() >= 0.9999


def test_nomic_bert_sentence_transformers_folder_matches_the_documented_math(embedding_models, tmp_path):
    """sentence-transformers cannot load nomic-bert without its remote code, so the reference is the
    architecture's math (fixtures.nomic_bert); the GGUF of the same weights must agree too."""
    import transformers

    from fixtures.nomic_bert import nomic_reference, random_nomic_weights, write_nomic_gguf, write_nomic_st

    wordpiece = embedding_models.hf("bert")
    weights = random_nomic_weights(transformers.AutoTokenizer.from_pretrained(str(wordpiece)).vocab_size, seed=11)
    folder = Embedder(load_embedding_model(write_nomic_st(weights, wordpiece, tmp_path / "nomic-st")))
    assert folder.max_len == 64 and folder.model.pooling.normalize
    expected = torch.stack([nomic_reference(weights, s) for s in folder.prepare(TEXTS)])
    assert cosine(folder.embed(TEXTS), expected).min() >= 0.9999
    assert cosine([folder.embed(t)[0] for t in TEXTS], expected).min() >= 0.9999
    gguf = Embedder(load_embedding_model(write_nomic_gguf(weights, wordpiece, tmp_path / "nomic.gguf")))
    assert folder.prepare(TEXTS) == gguf.prepare(TEXTS)
    assert cosine(gguf.embed(TEXTS), folder.embed(TEXTS)).min() >= 0.9999


def test_rerank_truncates_long_documents_like_cross_encoder(embedding_models):
    from sentence_transformers import CrossEncoder

    folder = embedding_models.cross_encoder("xlm-roberta")
    embedder = Embedder(load_embedding_model(folder))
    expected = CrossEncoder(str(folder), device="cpu", max_length=64).predict([(QUERY, LONG), (QUERY, TEXTS[0])])
    assert embedder.rerank(QUERY, [LONG, TEXTS[0]]) == pytest.approx(expected.tolist(), abs=1e-5)
    with pytest.raises(ContextLengthError, match="document 0"):
        embedder.rerank(QUERY, [LONG], truncate=False)
