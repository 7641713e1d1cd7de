"""`embedder = "openai"`: an OpenAI-compatible embedding server (here scripts/embedding_server.py
serving the bundled e5-small on loopback) gives the vectors the bundled embedder gives, batched and
concurrently; the store records the model and its dimension; a server that is down or answers
another dimension is one line naming it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from conftest import free_port
from sekisho.config import EmbeddingServerConfig, load_settings
from sekisho.ingest import ingest_paths
from sekisho.retrieval import EmbedderError, HttpEmbedder, load_embedder, open_knowledge_base

REPO = Path(__file__).resolve().parents[1]
SERVER = REPO / "scripts" / "embedding_server.py"


@pytest.fixture(scope="module")
def embedding_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("embed") / "server.log"
    # A small per-request delay stands in for a remote GPU's round trip, so concurrency shows.
    server = subprocess.Popen([sys.executable, str(SERVER), "--port", str(port), "--delay", "0.2"],
                              stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/stats").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.3)
    yield url
    server.terminate()
    server.wait(30)


def e5_over_http(url: str, **options) -> EmbeddingServerConfig:
    return EmbeddingServerConfig(base_url=f"{url}/v1", model="e5-small", dim=384, query_prefix="query: ",
                                 passage_prefix="passage: ", **options)


def test_vectors_over_http_equal_the_bundled_embedders_in_order_and_concurrently(embedding_server):
    texts = [f"住民票の写しは{n}番の窓口で請求できます。" for n in range(10)]
    remote = HttpEmbedder(e5_over_http(embedding_server, batch=2, concurrency=3))
    local = load_embedder("e5-small")
    np.testing.assert_allclose(remote.embed_passages(texts), local.embed_passages(texts), atol=1e-5)
    np.testing.assert_allclose(remote.embed_queries(["手数料は？"]), local.embed_queries(["手数料は？"]), atol=1e-5)
    assert httpx.get(embedding_server + "/stats").json()["max_in_flight"] == 3  # five batches, three at once


def test_a_knowledge_base_on_the_embedding_server_records_its_model(embedding_server, database_target, tmp_path):
    config = tmp_path / "sekisho.toml"
    store = f'url = "{database_target}"' if str(database_target).startswith("postgresql") else 'path = "kb.db"'
    config.write_text(f'[store]\n{store}\n[retrieval]\nembedder = "openai"\n[retrieval.embedding_server]\n'
                      f'base_url = "{embedding_server}/v1"\nmodel = "e5-small"\ndim = 384\n'
                      'query_prefix = "query: "\npassage_prefix = "passage: "\n', encoding="utf-8")
    with open_knowledge_base(load_settings(config)) as kb:
        ingest_paths(kb, [REPO / "samples" / "city" / "juminhyo.md"])
        assert (kb.store.get_meta("embedder"), kb.store.get_meta("embedder_dim")) == ("openai:e5-small", "384")
        [hit] = kb.search("住民票の写しの手数料", k=1, mode="dense")
        assert "300円" in hit.chunk.text


def test_a_server_that_is_down_or_answers_another_dimension_is_one_line(embedding_server):
    down = HttpEmbedder(EmbeddingServerConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", dim=384))
    with pytest.raises(EmbedderError, match=r"127\.0\.0\.1:\d+/v1 \(model m\): the embedding server cannot be reached"):
        down.embed_passages(["x"])
    wrong = HttpEmbedder(e5_over_http(embedding_server).model_copy(update={"dim": 768}))
    with pytest.raises(EmbedderError, match="1 vectors of 384 dimensions for 1 texts; embedding_server.dim says 768"):
        wrong.embed_queries(["x"])
