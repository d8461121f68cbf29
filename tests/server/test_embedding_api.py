"""Embeddings and reranking on a real server: the official `openai` and `ollama` clients and plain
HTTP, against sentence-transformers on the same weights."""
from __future__ import annotations

import concurrent.futures

import httpx
import openai
import pytest
import torch
from server_harness import serve_in_thread

TEXTS = ["hello world", "The quick brown fox jumps over the lazy dog, again and again.", "a fox", "numbers 12345!"]
LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 12)
QUERY = "what does the fox do"


@pytest.fixture(scope="module")
def embed_server(empty_store):
    from corral.server.app import create_app
    from corral.server.store_source import StoreModelSource

    url, stop = serve_in_thread(create_app([], source=StoreModelSource(empty_store),
                                           engine_kwargs={"max_model_len": 256, "kv_cache_memory": 8 << 20}))
    yield url
    stop()


@pytest.fixture(scope="module")
def paths(embedding_models):
    return {"bert": str(embedding_models.gguf("bert")), "qwen3": str(embedding_models.st("qwen3")),
            "reranker": str(embedding_models.cross_encoder("xlm-roberta"))}


def reference(embedding_models, arch, texts):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(embedding_models.st(arch)), device="cpu").encode(texts, convert_to_tensor=True)


def min_cosine(a, b) -> float:
    a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    return torch.nn.functional.cosine_similarity(a, b, dim=-1).min().item()


def test_openai_client_floats_base64_token_ids_and_dimensions(embed_server, paths, embedding_models):
    client = openai.OpenAI(base_url=embed_server + "/v1", api_key="unused", max_retries=0)
    expected = reference(embedding_models, "bert", TEXTS)
    as_floats = client.embeddings.create(model=paths["bert"], input=TEXTS, encoding_format="float")
    assert [d.index for d in as_floats.data] == [0, 1, 2, 3] and as_floats.model == paths["bert"]
    assert min_cosine([d.embedding for d in as_floats.data], expected) >= 0.9999
    assert as_floats.usage.prompt_tokens == as_floats.usage.total_tokens > len(TEXTS)
    as_base64 = client.embeddings.create(model=paths["bert"], input=TEXTS)  # the client asks for base64 and decodes it
    assert torch.equal(torch.tensor([d.embedding for d in as_base64.data]),
                       torch.tensor([d.embedding for d in as_floats.data]))  # float32 both ways
    raw = httpx.post(embed_server + "/v1/embeddings", json={"model": paths["bert"], "input": "a", "encoding_format": "base64"}).json()
    assert isinstance(raw["data"][0]["embedding"], str)

    ids = httpx.post(embed_server + "/tokenize", json={"model": paths["bert"], "prompt": TEXTS[1]}).json()["tokens"]
    by_ids = client.embeddings.create(model=paths["bert"], input=[ids, ids[:3]], encoding_format="float")
    assert by_ids.data[0].embedding == pytest.approx(as_floats.data[1].embedding, abs=1e-6)
    short = client.embeddings.create(model=paths["bert"], input=TEXTS[:2], dimensions=16, encoding_format="float")
    cut = torch.nn.functional.normalize(torch.tensor([d.embedding for d in as_floats.data[:2]])[:, :16], dim=-1)
    assert torch.allclose(torch.tensor([d.embedding for d in short.data]), cut, atol=1e-6)


def test_ollama_client_embed_truncates_by_default(embed_server, paths, embedding_models):
    import ollama

    client = ollama.Client(host=embed_server)
    reply = client.embed(model=paths["qwen3"], input=[LONG, *TEXTS], keep_alive="1m", options={"temperature": 0})
    assert reply.model == paths["qwen3"] and len(reply.embeddings) == 5 and reply.prompt_eval_count > 64
    assert min_cosine(reply.embeddings, reference(embedding_models, "qwen3", [LONG, *TEXTS])) >= 0.9999
    with pytest.raises(ollama.ResponseError) as info:
        client.embed(model=paths["qwen3"], input=LONG, truncate=False)
    assert info.value.status_code == 400 and "at most 64" in info.value.error
    legacy = client.embeddings(model=paths["qwen3"], prompt=TEXTS[0])
    assert legacy.embedding == pytest.approx(reply.embeddings[1], abs=1e-6)


def test_concurrent_requests_share_forwards_and_match_single_ones(embed_server, paths):
    def one(text):
        return httpx.post(embed_server + "/api/embed", json={"model": paths["bert"], "input": text}, timeout=60).json()

    alone = [one(t)["embeddings"][0] for t in TEXTS]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        together = list(pool.map(one, TEXTS * 4))
    for i, reply in enumerate(together):
        assert reply["embeddings"][0] == pytest.approx(alone[i % len(TEXTS)], abs=1e-6)


def test_rerank_routes_match_cross_encoder(embed_server, paths):
    from sentence_transformers import CrossEncoder

    expected = CrossEncoder(paths["reranker"], device="cpu").predict([(QUERY, d) for d in TEXTS]).tolist()
    for route in ("/v1/rerank", "/rerank"):
        reply = httpx.post(embed_server + route, json={"model": paths["reranker"], "query": QUERY, "documents": TEXTS,
                                                       "top_n": 3, "return_documents": True}, timeout=60).json()
        order = sorted(range(len(TEXTS)), key=lambda i: -expected[i])[:3]
        assert [r["index"] for r in reply["results"]] == order
        assert [r["relevance_score"] for r in reply["results"]] == pytest.approx([expected[i] for i in order], abs=1e-5)
        assert [r["document"]["text"] for r in reply["results"]] == [TEXTS[i] for i in order]
    objects = httpx.post(embed_server + "/v1/rerank", json={"model": paths["reranker"], "query": QUERY,
                                                           "documents": [{"text": t} for t in TEXTS]}).json()
    assert len(objects["results"]) == len(TEXTS) and "document" not in objects["results"][0]


def test_qwen3_reranker_routes_match_the_model_card(embed_server, embedding_models):
    from fixtures.qwen3_reranker import model_card_scores

    expected = model_card_scores(embedding_models.qwen3_reranker(), QUERY, TEXTS)
    order = sorted(range(len(TEXTS)), key=lambda i: -expected[i])
    for route, path in (("/v1/rerank", embedding_models.qwen3_reranker(gguf=True)),
                        ("/rerank", embedding_models.qwen3_reranker())):
        reply = httpx.post(embed_server + route, json={"model": str(path), "query": QUERY, "documents": TEXTS},
                           timeout=60).json()
        assert [r["index"] for r in reply["results"]] == order
        assert [r["relevance_score"] for r in reply["results"]] == pytest.approx([expected[i] for i in order], abs=1e-4)
        assert reply["usage"]["prompt_tokens"] > 40 * len(TEXTS)  # the model card's prompt around each pair

    def one(doc):  # concurrent requests are scored together, each as it would be alone
        body = {"model": str(embedding_models.qwen3_reranker()), "query": QUERY, "documents": [doc, TEXTS[0]]}
        return [r["relevance_score"] for r in sorted(httpx.post(embed_server + "/rerank", json=body, timeout=60)
                                                      .json()["results"], key=lambda r: r["index"])]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        together = list(pool.map(one, TEXTS * 3))
    for i, scores in enumerate(together):
        assert scores == pytest.approx([expected[i % len(TEXTS)], expected[0]], abs=1e-4)


def test_each_kind_refuses_the_others_work_with_a_400(embed_server, paths, tiny_model_path):
    chat = httpx.post(embed_server + "/v1/chat/completions", json={"model": paths["bert"], "messages": [
        {"role": "user", "content": "hi"}]}, timeout=60)
    assert chat.status_code == 400 and "embedding model" in chat.json()["error"]["message"]
    generate = httpx.post(embed_server + "/api/generate", json={"model": paths["reranker"], "prompt": "hi"}, timeout=60)
    assert generate.status_code == 400 and "reranking" in generate.json()["error"]
    embed = httpx.post(embed_server + "/v1/embeddings", json={"model": tiny_model_path, "input": "hi"}, timeout=120)
    assert embed.status_code == 400 and "text-generation model" in embed.json()["error"]["message"]
    rerank = httpx.post(embed_server + "/v1/rerank", json={"model": paths["bert"], "query": "q", "documents": ["d"]})
    assert rerank.status_code == 400 and "embedding model" in rerank.json()["error"]["message"]
    by_generator = httpx.post(embed_server + "/v1/rerank", json={"model": tiny_model_path, "query": "q",
                                                                 "documents": ["d"]}, timeout=120)
    assert by_generator.status_code == 400
    assert "text-generation model" in by_generator.json()["error"]["message"]
    assert "classifier_from_token" in by_generator.json()["error"]["message"]  # how to mark a Qwen3-Reranker
    too_long = httpx.post(embed_server + "/v1/embeddings", json={"model": paths["bert"], "input": [TEXTS[0], LONG]})
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "context_length_exceeded"
    show = httpx.post(embed_server + "/api/show", json={"model": paths["bert"]}).json()
    assert show["capabilities"] == ["embedding"] and show["model_info"]["general.architecture"] == "bert"


def _random_value(rng, depth=0):
    kinds = ["none", "bool", "int", "float", "text", "ids"] + (["list", "dict"] if depth < 2 else [])
    kind = rng.choice(kinds)
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([-1, 0, 1, 3, 64, 65, 10**9, rng.randint(-5, 500)])
    if kind == "float":
        return rng.uniform(-1e3, 1e3)
    if kind == "text":
        return "".join(rng.choice("ab \n\u00e9\u4e16<|>[]{}\"0") for _ in range(rng.randint(0, 12)))
    if kind == "ids":
        return [rng.randint(-2, 500) for _ in range(rng.randint(0, 5))]
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["text", "role", "content", "x"]): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def test_fuzzed_bodies_never_cause_a_server_error(embed_server, paths):
    """Seeded random request bodies on every new route: answers are 2xx or 4xx, never 5xx."""
    import random

    rng = random.Random(19)

    def text():
        return _random_value(rng) if rng.random() < 0.2 else rng.choice(["", "a", LONG, TEXTS[1], "\u4e16 <s> [CLS]"])

    def texts():
        return _random_value(rng) if rng.random() < 0.2 else [text() for _ in range(rng.randint(0, 3))]

    required = {
        "/v1/embeddings": lambda: {"input": rng.choice([text, texts, lambda: _random_value(rng, 1)])()},
        "/api/embed": lambda: {"input": rng.choice([text, texts])(), "truncate": rng.random() < 0.5},
        "/api/embeddings": lambda: {"prompt": text()},
        "/v1/rerank": lambda: {"query": text(), "documents": texts()},
        "/tokenize": lambda: {rng.choice(["prompt", "content", "messages"]): text()},
        "/detokenize": lambda: {"tokens": _random_value(rng, 2) if rng.random() < 0.2 else
                                [rng.randint(-1, 420) for _ in range(rng.randint(0, 6))]},
    }
    optional = ["encoding_format", "dimensions", "top_n", "with_pieces", "add_special_tokens", "return_documents"]
    statuses = set()
    for _ in range(60):
        route = rng.choice(sorted(required))
        body = {"model": rng.choice([*paths.values(), "no-such-model"]), **required[route]()}
        body.update({f: _random_value(rng) for f in rng.sample(optional, rng.randint(0, 3))})
        reply = httpx.post(embed_server + route, json=body, timeout=60)
        assert reply.status_code < 500, (route, body, reply.text)
        statuses.add(reply.status_code)
    assert 200 in statuses and 400 in statuses
