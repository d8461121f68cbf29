"""Qwen3-Reranker (a Qwen3 causal LM scoring P("yes")) from an HF folder and from llama.cpp's
GGUF conversion, against the model card's formula run by transformers on the same weights; the same
model packaged as sentence-transformers CrossEncoders (LogitScore, and a seq-cls conversion) against
CrossEncoder; how a folder is recognized as one."""
from __future__ import annotations

import json

import pytest

from corral.engine.embedder import Embedder
from corral.engine.embedding_loader import load_embedding_model
from corral.engine.model_kind import RERANK, model_kind
from corral.errors import ContextLengthError, ModelFileError
from corral.models.qwen3_reranker import is_qwen3_reranker

QUERY = "what does the fox do"
DOCS = ["The quick brown fox jumps over the lazy dog, again and again.", "hello world", "a",
        "yes or no? {query} stays as written <|im_end|>"]
LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 40)


@pytest.mark.parametrize("tied", [True, False])
def test_scores_match_the_model_card_from_folder_and_gguf(embedding_models, tied):
    from fixtures.qwen3_reranker import model_card_scores

    folder = embedding_models.qwen3_reranker(tied)
    expected = model_card_scores(folder, QUERY, DOCS + [LONG])
    for path in (folder, embedding_models.qwen3_reranker(tied, gguf=True)):
        assert model_kind(path) == RERANK
        embedder = Embedder(load_embedding_model(path))
        assert embedder.kind == "rerank"
        assert embedder.rerank(QUERY, DOCS + [LONG]) == pytest.approx(expected, abs=1e-4)  # batched, one cut
        assert [embedder.rerank(QUERY, [d])[0] for d in DOCS] == pytest.approx(expected[:-1], abs=1e-4)
        with pytest.raises(ContextLengthError, match="document 1"):
            embedder.rerank(QUERY, [DOCS[0], LONG], truncate=False)


def test_a_sentence_transformers_causal_cross_encoder_matches_cross_encoder(embedding_models):
    """sentence-transformers 6's LogitScore CrossEncoder of the same model: the pair through the chat
    template's query/document roles, sigmoid(logit(yes) - logit(no)); a long document cut as it cuts."""
    from sentence_transformers import CrossEncoder

    from fixtures.qwen3_reranker import MAX_POSITIONS, model_card_scores

    folder = embedding_models.causal_cross_encoder()
    assert model_kind(folder) == RERANK
    embedder = Embedder(load_embedding_model(folder))
    expected = CrossEncoder(str(folder), device="cpu", max_length=MAX_POSITIONS).predict(
        [(QUERY, d) for d in DOCS + [LONG]]).tolist()
    assert embedder.rerank(QUERY, DOCS + [LONG]) == pytest.approx(expected, abs=1e-4)
    assert expected[:-1] == pytest.approx(model_card_scores(folder, QUERY, DOCS), abs=1e-4)  # one model, two packagings


def test_folder_and_gguf_build_the_same_prompt_tokens(embedding_models):
    folder = Embedder(load_embedding_model(embedding_models.qwen3_reranker()))
    gguf = Embedder(load_embedding_model(embedding_models.qwen3_reranker(gguf=True)))
    assert folder.prepare_pairs(QUERY, DOCS) == gguf.prepare_pairs(QUERY, DOCS)


def test_a_store_folder_is_a_reranker_by_the_name_it_was_pulled_as(embedding_models, tmp_path):
    import shutil

    hashed = shutil.copytree(embedding_models.qwen3_reranker(), tmp_path / "5be0c1d2")
    assert model_kind(hashed) == "generate" and model_kind(hashed, "Qwen/Qwen3-Reranker-0.6B") == RERANK
    named = Embedder(load_embedding_model(hashed, "hf.co/Qwen/Qwen3-Reranker-0.6B:latest"))
    reference = Embedder(load_embedding_model(embedding_models.qwen3_reranker()))
    assert named.kind == "rerank" and named.rerank(QUERY, DOCS) == reference.rerank(QUERY, DOCS)


def test_llm_rerank_orders_by_the_model_card_scores(embedding_models):
    from corral import LLM
    from corral.errors import ModelKindError
    from fixtures.qwen3_reranker import model_card_scores

    folder = embedding_models.qwen3_reranker()
    expected = model_card_scores(folder, QUERY, DOCS)
    ranked = LLM(str(folder)).rerank(QUERY, DOCS, top_n=3)
    assert [r["index"] for r in ranked] == sorted(range(len(DOCS)), key=lambda i: -expected[i])[:3]
    assert [r["relevance_score"] for r in ranked] == pytest.approx(sorted(expected, reverse=True)[:3], abs=1e-4)
    with pytest.raises(ModelKindError, match="reranking"):
        LLM(str(folder)).embed("hello")


def _folder(tmp_path, name: str, config: dict, readme: str | None = None):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"],
                                                    **config}))
    if readme is not None:
        (folder / "README.md").write_text(readme)
    return folder


def test_recognized_by_name_model_card_or_vllm_marker_only(tmp_path):
    assert is_qwen3_reranker(_folder(tmp_path, "Qwen3-Reranker-0.6B", {}), {"model_type": "qwen3"})
    by_path = {"model_type": "qwen3", "_name_or_path": "Qwen/Qwen3-Reranker-4B"}
    assert is_qwen3_reranker(_folder(tmp_path, "blob1", by_path), by_path)
    assert is_qwen3_reranker(_folder(tmp_path, "blob2", {}, "---\nlicense: apache-2.0\n---\n# Qwen3-Reranker-8B\n"),
                             {"model_type": "qwen3"})
    hashed = _folder(tmp_path, "3f2a9c", {})  # a store folder: the name it was pulled by tells
    assert model_kind(hashed) == "generate" and model_kind(hashed, "hf.co/Qwen/Qwen3-Reranker-0.6B:latest") == RERANK
    marked = {"model_type": "qwen3", "architectures": ["Qwen3ForSequenceClassification"],
              "classifier_from_token": ["no", "yes"], "is_original_qwen3_reranker": True}
    assert model_kind(_folder(tmp_path, "blob3", marked)) == RERANK
    assert model_kind(_folder(tmp_path, "Qwen3-0.6B", {}, "# Qwen3-0.6B\nA reranker it is not.")) == "generate"
    assert not is_qwen3_reranker(tmp_path / "Qwen3-Reranker-0.6B", {"model_type": "llama"})


def test_a_rank_gguf_without_the_yes_no_rows_is_a_file_error(embedding_models, tmp_path):
    from fixtures.qwen3_reranker import write_qwen3_reranker_gguf

    broken = write_qwen3_reranker_gguf(embedding_models.qwen3_reranker(tied=False), tmp_path / "no-head.gguf",
                                       with_head=False)
    with pytest.raises(ModelFileError, match="cls.output.weight"):
        load_embedding_model(broken)


@pytest.mark.parametrize("chat_template", [True, False])
def test_a_sequence_classification_conversion_matches_cross_encoder(embedding_models, tmp_path, chat_template):
    """Qwen3ForSequenceClassification (a one-label `score` head, yes - no): the last token through it,
    on the chat template's query/document rendering when it has one, else on the plain pair."""
    from sentence_transformers import CrossEncoder

    from fixtures.qwen3_reranker import model_card_scores, save_seq_cls_cross_encoder

    source = embedding_models.qwen3_reranker(tied=False)
    folder = save_seq_cls_cross_encoder(source, tmp_path / "seq-cls", chat_template)
    assert model_kind(folder) == RERANK
    expected = CrossEncoder(str(folder), device="cpu").predict([(QUERY, d) for d in DOCS]).tolist()
    assert Embedder(load_embedding_model(folder)).rerank(QUERY, DOCS) == pytest.approx(expected, abs=1e-4)
    card = model_card_scores(source, QUERY, DOCS)
    if chat_template:  # the same scores as the original model's, on the same prompt
        assert expected == pytest.approx(card, abs=1e-4)
    else:  # named as a Qwen3-Reranker conversion: its model card's prompt, as its users are told
        import shutil

        named = shutil.copytree(folder, tmp_path / "Qwen3-Reranker-0.6B-seq-cls")
        assert Embedder(load_embedding_model(named)).rerank(QUERY, DOCS) == pytest.approx(card, abs=1e-4)
