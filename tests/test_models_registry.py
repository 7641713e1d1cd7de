"""Choosing a backend by name, and the configuration mistakes a user can make doing it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from conftest import free_port
from sekisho.cli import app
from sekisho.config import BackendConfig, Settings, load_settings
from sekisho.models import (
    BACKEND_KINDS,
    BackendError,
    ChatRequest,
    Completion,
    ModelInfo,
    backend_names,
    open_backend,
    register_backend,
)


def settings_with(**backends: BackendConfig) -> Settings:
    settings = Settings()
    settings.models.backends = dict(backends)
    settings.models.default = next(iter(backends))
    return settings


def test_unknown_backend_name_lists_the_configured_ones():
    settings = settings_with(
        local_llm=BackendConfig(kind="openai", base_url="http://127.0.0.1:1/v1", model="m"),
        vendor=BackendConfig(kind="openai", base_url="https://api.example.com/v1", model="m"),
    )
    with pytest.raises(BackendError) as caught:
        open_backend(settings, "gpt")
    message = str(caught.value)
    assert "'gpt'" in message and "local_llm" in message and "vendor" in message
    assert "\n" not in message


def test_unknown_kind_names_the_known_kinds():
    settings = settings_with(odd=BackendConfig(kind="tgi", model="m"))
    with pytest.raises(BackendError, match="unknown kind 'tgi'.*llama.cpp.*openai"):
        open_backend(settings, "odd")


def test_default_backend_is_listed_first_and_opened_without_a_name():
    settings = settings_with(
        a=BackendConfig(kind="openai", base_url="http://127.0.0.1:1/v1", model="ma"),
        b=BackendConfig(kind="openai", base_url="http://127.0.0.1:1/v1", model="mb"),
    )
    settings.models.default = "b"
    assert backend_names(settings) == ["b", "a"]
    assert open_backend(settings).info().model == "mb"


def test_adding_a_backend_keeps_the_default_extractive_answerer(tmp_path):
    # The README's example adds a backend and keeps the default: the quick start must still answer.
    config = tmp_path / "sekisho.toml"
    config.write_text('[models.backends.qwen-slots]\nkind = "openai"\nbase_url = "http://127.0.0.1:8081/v1"\n'
                      'model = "qwen"\nlocal = true\n', encoding="utf-8")
    settings = load_settings(config, environ={})
    assert backend_names(settings) == ["extractive", "qwen-slots"]
    assert open_backend(settings).info().kind == "extractive"
    # A file naming another default has chosen its backends: nothing is added behind its back.
    config.write_text('[models]\ndefault = "vendor"\n[models.backends.vendor]\nkind = "openai"\n'
                      'base_url = "http://127.0.0.1:8081/v1"\nmodel = "m"\n', encoding="utf-8")
    assert backend_names(load_settings(config, environ={})) == ["vendor"]


def test_kind_specific_settings_are_required():
    settings = settings_with(
        gguf=BackendConfig(kind="llama.cpp"),
        http=BackendConfig(kind="openai", model="m"),
    )
    with pytest.raises(BackendError, match="'gguf'.*needs model"):
        open_backend(settings, "gguf")
    with pytest.raises(BackendError, match="'http'.*needs base_url"):
        open_backend(settings, "http")
    settings.models.backends["http"].base_url = "localhost:8000/v1"
    with pytest.raises(BackendError, match="'http': base_url 'localhost:8000/v1' must start with http"):
        open_backend(settings, "http")


def test_llamacpp_model_path_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "sekisho.toml").write_text(
        '[models.backends.q]\nkind = "llama.cpp"\nmodel = "weights/q.gguf"\n', encoding="utf-8"
    )
    settings = load_settings(tmp_path / "sekisho.toml")
    backend = open_backend(settings, "q")
    assert backend.info().extra["path"] == str(tmp_path / "weights" / "q.gguf")
    with pytest.raises(BackendError, match="GGUF file not found: .*weights/q.gguf"):
        backend.check()


class EchoBackend:
    """A plugin as a third party would write one: one class, one registration."""

    def __init__(self, name: str):
        self.name = name

    def info(self) -> ModelInfo:
        return ModelInfo(name=self.name, kind="echo", model="echo", local=True)

    def complete(self, request: ChatRequest) -> Completion:
        text = request.messages[-1].content
        return Completion(text=text, model="echo", prompt_tokens=len(text), completion_tokens=len(text))

    def stream(self, request: ChatRequest) -> Iterator[str]:
        yield from request.messages[-1].content

    def count_tokens(self, text: str) -> int:
        return len(text)

    def check(self) -> None:
        pass


def test_a_registered_kind_is_usable_from_configuration():
    register_backend("echo", lambda name, config, settings: EchoBackend(name))
    try:
        settings = settings_with(mirror=BackendConfig(kind="echo"))
        backend = open_backend(settings, "mirror")
        assert backend.info().name == "mirror"
    finally:
        del BACKEND_KINDS["echo"]


def test_models_command_reports_each_backend_with_a_reason(tmp_path):
    closed = free_port()
    (tmp_path / "sekisho.toml").write_text(
        "[models]\ndefault = \"onprem\"\n"
        f"[models.backends.onprem]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{closed}/v1\"\n"
        "model = \"qwen\"\nlocal = true\noptions = { max_retries = 0 }\n"
        "[models.backends.missing]\nkind = \"llama.cpp\"\nmodel = \"nowhere.gguf\"\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["--config", str(tmp_path / "sekisho.toml"), "models", "--json"])
    assert result.exit_code == 1
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["onprem"]["default"] and rows["onprem"]["local"] is True
    assert rows["onprem"]["ok"] is False and f"cannot reach http://127.0.0.1:{closed}/v1" in rows["onprem"]["status"]
    assert rows["missing"]["ok"] is False and "GGUF file not found" in rows["missing"]["status"]

    table = CliRunner().invoke(app, ["--config", str(tmp_path / "sekisho.toml"), "models", "--no-check"])
    assert table.exit_code == 0
    assert "onprem" in table.stdout and "構内 local" in table.stdout and "未確認" in table.stdout
