"""Hybrid retrieval, Japanese first: Sudachi-tokenised BM25 (SQLite FTS5) + dense embeddings,
fused by reciprocal rank."""

from sekisho.retrieval.embed import Embedder, EmbedderError, load_embedder
from sekisho.retrieval.highlight import highlight, matched_spans
from sekisho.retrieval.kb import MODES, Candidates, Fusion, KnowledgeBase, fuse, open_knowledge_base
from sekisho.retrieval.tokenize import Analyzer, tokenize

__all__ = [
    "MODES", "Analyzer", "Candidates", "Embedder", "EmbedderError", "Fusion", "KnowledgeBase", "fuse",
    "highlight", "load_embedder", "matched_spans", "open_knowledge_base", "tokenize",
]
