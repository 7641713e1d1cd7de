"""Hybrid retrieval, Japanese first: Sudachi-tokenised BM25 (the store's) + dense embeddings (bundled,
or an embedding server's), fused by reciprocal rank."""

from sekisho.retrieval.embed import Embedder, EmbedderError, HttpEmbedder, load_embedder, open_embedder
from sekisho.retrieval.highlight import highlight, matched_spans
from sekisho.retrieval.kb import MODES, Candidates, Fusion, KnowledgeBase, fuse, open_knowledge_base
from sekisho.retrieval.tokenize import Analyzer, tokenize

__all__ = [
    "MODES", "Analyzer", "Candidates", "Embedder", "EmbedderError", "Fusion", "HttpEmbedder", "KnowledgeBase", "fuse",
    "highlight", "load_embedder", "matched_spans", "open_embedder", "open_knowledge_base", "tokenize",
]
