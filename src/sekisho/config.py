"""Configuration: one TOML file plus SEKISHO_* environment overrides.

Lookup order for the file: the --config option, $SEKISHO_CONFIG, ./sekisho.toml; a missing default
file means built-in defaults. Environment overrides use SEKISHO_<SECTION>__<KEY>, e.g.
SEKISHO_STORE__PATH=/data/kb.db, and win over the file; a nested section takes one more `__` per
level (SEKISHO_AUTH__OIDC__CLIENT_SECRET).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sekisho.errors import SekishoError


class ConfigError(SekishoError):
    """The configuration file or an override is invalid; the message names what and where."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreConfig(_Section):
    path: str = "sekisho.db"
    # postgresql://user@host/db: documents, audit log, reviews, keys and ingest jobs in one
    # PostgreSQL (with pgvector) that several servers share, instead of `path` and the audit file.
    # Password and TLS from the environment (PGPASSWORD, PGSSLMODE...), or in the URL.
    url: str = ""
    # With `url`: the folder, local to each server host, where a server keeps its tantivy index of
    # the database's chunks (relative to this file; "" for none: PostgreSQL's own BM25 answers
    # every search, several times slower at 100k chunks). Derived data: delete it and it is
    # rebuilt, PostgreSQL answering meanwhile. The SQLite store keeps its own beside the file.
    lexical_index: str = "sekisho.lexical"
    # With `url`: where accepted uploads wait for ingestion (relative to this file). Servers on
    # several hosts share it (a network folder): any server may ingest what another accepted.
    # The SQLite store keeps its uploads beside the file.
    uploads: str = "sekisho.uploads"

    @model_validator(mode="after")
    def _postgresql_url(self) -> StoreConfig:
        if self.url and not self.url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"url: {self.url.split('@')[-1]!r} is not a postgresql:// URL")
        return self


class EmbeddingServerConfig(_Section):
    """An OpenAI-compatible /v1/embeddings endpoint (text-embeddings-inference, vLLM, Ollama,
    Infinity...), usually on a GPU: `[retrieval] embedder = "openai"` with this table."""

    base_url: str  # e.g. http://gpu-host:8080/v1
    model: str  # sent as "model"; recorded in the store as "openai:<model>"
    dim: int = Field(gt=0)  # what the model returns; a mismatch is refused, not stored
    api_key_env: str = ""  # name of the environment variable holding the key (never the key)
    batch: int = Field(default=64, ge=1)  # texts per request
    concurrency: int = Field(default=4, ge=1)  # requests in flight at once
    timeout_s: float = Field(default=60.0, gt=0)
    # Models trained with instructions need them sent (e5: "query: " and "passage: ").
    query_prefix: str = ""
    passage_prefix: str = ""


class RetrievalConfig(_Section):
    # A bundled embedder ("e5-small", "use-m3"), or "openai" for [retrieval.embedding_server].
    embedder: str = "e5-small"
    embedding_server: EmbeddingServerConfig | None = None
    chunk_chars: int = 400
    chunk_overlap: int = 80
    top_k: int = 5
    # Passages scoring under this share of the best one are not given to the model
    # (answer.confident_hits; 0 gives it all top_k). 0.5 keeps JSQuAD at ~1.1 passages per
    # question, the operating point the answer benchmarks chose (docs/benchmarks.md, ## Answers).
    min_relative_score: float = Field(default=0.5, ge=0.0, le=1.0)
    # When even the best hit's re-scorer probability is under this, the documents are taken not to
    # answer the question: no passage reaches the model, which answers 資料に記載がありません.
    # At 0.02, 97% of questions about other things got that answer over the sample corpus, and 1%
    # of JSQuAD questions over their own paragraphs did (e5-small; use-m3 alike), most of them
    # with a wrong best passage anyway (docs/benchmarks.md, ## Answers). 0 turns the gate off; it
    # never applies to plain fusion scores, which are not probabilities.
    min_score: float = Field(default=0.02, ge=0.0, le=1.0)
    # The re-scorer's weights were fitted on JSQuAD (Wikipedia; retrieval/rescorers.toml). For a
    # corpus unlike it, false ranks by fusion alone (and min_score then does not apply).
    rescore: bool = True
    # Query embeddings kept for repeated questions (0: none).
    query_cache: int = Field(default=1024, ge=0)

    @model_validator(mode="after")
    def _server_for_openai(self) -> RetrievalConfig:
        if self.embedder == "openai" and self.embedding_server is None:
            raise ValueError('embedder = "openai" needs a [retrieval.embedding_server] table (base_url, model, dim)')
        return self

    @property
    def embedder_name(self) -> str:
        """What the store records as the embedder of its vectors."""
        return f"openai:{self.embedding_server.model}" if self.embedder == "openai" else self.embedder


class BackendConfig(_Section):
    kind: str  # "extractive" | "llama.cpp" | "openai"
    model: str = ""  # GGUF path for llama.cpp, model id for openai
    base_url: str = ""  # openai-compatible endpoint
    api_key_env: str = ""  # name of the environment variable holding the key (never the key)
    local: bool | None = None  # override: is this backend on the organisation's premises?
    context_tokens: int = 4096
    timeout_s: float = 120.0
    # At most this many passages reach this model (None: all that retrieval keeps). A 0.5B model
    # given a second passage lost 0.18-0.37 F1 on JSQuAD questions it answered from one
    # (docs/benchmarks.md, ## Answers); small models are best given 1.
    max_passages: int | None = Field(default=None, ge=1)
    # "each": every candidate passage is read in a request of its own and the answer the model and
    # the retriever jointly believe in is kept (answer/reading.py). Qwen2.5-Coder-1.5B on JSQuAD:
    # open-domain F1 0.057 below reading comprehension reading together (120 questions), 0.008
    # below reading apart (300 held-out ones; docs/benchmarks-history.md, ## Answers, session 8), for 1.7x
    # the generations plus a scoring pass per reading and one more when the answers differ.
    # Needs a backend that can score a reply: llama.cpp.
    read_passages: Literal["together", "each"] = "together"
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _reading_needs_scores(self) -> BackendConfig:
        if self.read_passages == "each" and self.kind != "llama.cpp":
            raise ValueError(f'read_passages = "each" needs a backend that scores replies (llama.cpp), not {self.kind!r}')
        return self


def _default_backends() -> dict[str, BackendConfig]:
    return {"extractive": BackendConfig(kind="extractive", local=True)}


class ModelsConfig(_Section):
    default: str = "extractive"
    backends: dict[str, BackendConfig] = Field(default_factory=_default_backends)
    # Watts one busy core draws, for the energy estimate of a call where RAPL cannot be read
    # (models/energy.py); every such figure is labelled an estimate. 5 W: a server core at load.
    watts_per_core: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _default_stays_there(self) -> ModelsConfig:
        # A file that adds its own backends but keeps the default "extractive" still has it:
        # adding a model must not take away the answerer every example and the quick start use.
        # (A file that names another default has chosen its backends itself.)
        builtin = _default_backends()
        if self.default in builtin:
            self.backends.setdefault(self.default, builtin[self.default])
        return self


class GuardConfig(_Section):
    policy: str = ""  # path to a policy TOML; empty means the built-in default policy
    copyright_registry: str = ""  # path to the organisation's registry of protected works
    # The most time scanning one request may take: past it the request is refused (413) rather
    # than holding a worker. A 4 MB request of phone numbers scans in about 4.4 s on 2 cores.
    scan_budget_s: float = Field(default=15.0, gt=0)


class AuditConfig(_Section):
    path: str = "sekisho-audit.db"
    # None: with the store (in its PostgreSQL when `[store] url` is set, else the file at `path`);
    # "": the file at `path` whatever the store; a postgresql:// URL: there.
    url: str | None = None
    key_path: str = "sekisho-signing.key"  # Ed25519 key for checkpoints and provenance
    checkpoint_every: int = 100


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 8765
    max_upload_mb: int = 50
    rate_limit_per_minute: int = 120
    # Requests without a valid key, per client address (key guessing, floods of refusals).
    unauthenticated_per_minute: int = Field(default=60, ge=1)
    # Governed requests one worker process runs at once; more are refused with 503 + Retry-After.
    max_in_flight: int = Field(default=256, ge=1)
    # Threads per worker for the checks around model calls (scanning, retrieval, the faithfulness
    # check, the audit append); model calls to remote servers wait without a thread.
    threads: int = Field(default=32, ge=1)
    workers: int = Field(default=1, ge=1)  # processes (`sekisho serve --workers N`)
    # One JSON object per line (for a log collector), or plain text for a terminal.
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (the
    # client address is what per-address rate limits and audit records use). Empty: none.
    forwarded_allow_ips: str = ""
    # A stopping server (SIGTERM, Ctrl-C) takes no new work and gives what is in flight this long:
    # requests still open are then closed, and a file still being ingested is put back in the
    # queue, ingested again at the next start (or by another worker).
    shutdown_grace_s: float = Field(default=10.0, ge=0)


class ProofreadConfig(_Section):
    dictionary: str = ""  # the organisation's proofreading dictionary (TOML); see samples/proofread-dictionary.toml


class AppsConfig(_Section):
    # The organisation's own task apps, one TOML file each (see src/sekisho/apps/shipped/); an app
    # here replaces a shipped one of the same id. Empty: the shipped apps only.
    folder: str = ""


RoleName = Literal["admin", "reviewer", "user", "auditor"]  # identity.Role's values (config imports only errors)


class OidcRule(_Section):
    """One mapping rule: it applies when the ID token's `claim` (empty: `groups_claim`) equals
    `group`, or is a list holding it."""

    group: str = Field(min_length=1)
    claim: str = ""


class OidcRoleRule(OidcRule):
    role: RoleName


class OidcTagRule(OidcRule):
    tag: str = Field(min_length=1, max_length=100)


class OidcConfig(_Section):
    """Sign-in with the organisation's OpenID Connect provider (see README, "Sign-in with your
    organisation's accounts")."""

    issuer: str = Field(min_length=1)  # exactly as the provider's discovery document states it
    client_id: str = Field(min_length=1)
    # A confidential client's secret; better given as SEKISHO_AUTH__OIDC__CLIENT_SECRET than written
    # in the file. Empty: a public client (PKCE alone).
    client_secret: str = ""
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    groups_claim: str = "groups"
    # The principal is "oidc:<value of name_claim>". `sub` never changes and is never reused;
    # `preferred_username` reads better in the audit log but only where the IdP keeps it stable.
    name_claim: str = "sub"
    display_claim: str = "name"  # shown in the page header; the principal name when absent
    # The first rule whose group the user is in gives the role; every matching tag rule adds its
    # tag. No role rule matched: default_role, or, when it is unset, the sign-in is refused.
    roles: list[OidcRoleRule] = Field(default_factory=list)
    tags: list[OidcTagRule] = Field(default_factory=list)
    default_role: RoleName | None = None
    # Sign-out also ends the session at the provider (RP-initiated logout) when it offers an
    # end_session_endpoint.
    end_session: bool = True
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _asks_for_openid(self) -> OidcConfig:
        if "openid" not in self.scopes:
            raise ValueError('scopes must include "openid"')
        return self


class AuthConfig(_Section):
    # How browsers reach sekisho, e.g. "https://sekisho.example.lg.jp" behind a reverse proxy: the
    # IdP sends users back to <public_url>/auth/oidc/callback, and an https address makes every
    # cookie Secure. Empty: the address each request came to.
    public_url: str = ""
    # The login page's API-key form; programs use keys whatever this says.
    api_key_login: bool = True
    session_hours: float = Field(default=8.0, gt=0)
    oidc: OidcConfig | None = None

    @model_validator(mode="after")
    def _someone_can_sign_in(self) -> AuthConfig:
        if not self.api_key_login and self.oidc is None:
            raise ValueError("api_key_login = false leaves the web UI without a way in: configure [auth.oidc]")
        if self.public_url and not self.public_url.startswith(("https://", "http://")):
            raise ValueError(f"public_url {self.public_url!r}: an http:// or https:// address")
        return self


class QuotaLimits(_Section):
    """Limits on one principal's use (server/quotas.py); unset: unlimited. 0 allows nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # At most 2**53: kept as SQLite integers (a larger one was a 500 at POST /api/keys) and stated
    # in the API's spec as JSON numbers, which hold integers exactly only up to there.
    requests_per_minute: int | None = Field(default=None, ge=0, le=2**53)
    tokens_per_day: int | None = Field(default=None, ge=0, le=2**53)
    tokens_per_month: int | None = Field(default=None, ge=0, le=2**53)


class QuotasConfig(_Section):
    # Each member's limits, by role ([quotas.roles.user]) and by principal name
    # ([quotas.users."key:ab12cd34:alice"]); a key's own are set when it is created. The tightest
    # that applies wins. Days and months are the organisation's ([organisation] timezone).
    roles: dict[str, QuotaLimits] = Field(default_factory=dict)
    users: dict[str, QuotaLimits] = Field(default_factory=dict)


class OrganisationConfig(_Section):
    # The organisation's day: quota days and months begin, and usage figures are counted per
    # calendar day, at midnight in this zone (an IANA name), so a request at 08:30 in Tokyo is on
    # that day, not on yesterday's UTC date.
    timezone: str = "Asia/Tokyo"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Tokyo)") from None
        return value


class Settings(_Section):
    store: StoreConfig = Field(default_factory=StoreConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    apps: AppsConfig = Field(default_factory=AppsConfig)
    proofread: ProofreadConfig = Field(default_factory=ProofreadConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    quotas: QuotasConfig = Field(default_factory=QuotasConfig)
    organisation: OrganisationConfig = Field(default_factory=OrganisationConfig)
    base_dir: str = "."  # paths in the file are relative to the file's folder


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith("SEKISHO_") or "__" not in key:
            continue
        *sections, field = key[len("SEKISHO_"):].lower().split("__")
        target = overrides
        for section in sections:
            target = target.setdefault(section, {})
        target[field] = value
    return overrides


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    environ = dict(os.environ if environ is None else environ)
    explicit = path or environ.get("SEKISHO_CONFIG")
    file = Path(explicit) if explicit else Path("sekisho.toml")
    data: dict[str, Any] = {}
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        data.setdefault("base_dir", str(file.resolve().parent))
    elif explicit:
        raise ConfigError(f"{file}: configuration file not found")
    data = _merge(data, _env_overrides(environ))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{file}: {where}: {first['msg']}") from None


def read_toml(path: str | Path, what: str, error: type[SekishoError] = ConfigError) -> dict[str, Any]:
    """The TOML file an operator configured (`what` names it: "copyright registry"), or `error`
    with one line naming the file and what is wrong."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read the {what}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None


def resolve_path(settings: Settings, value: str) -> Path:
    """A path from the configuration, relative to the configuration file's folder."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else Path(settings.base_dir) / p


def lexical_index_folder(settings: Settings) -> Path | None:
    """Where this server keeps its tantivy index of a PostgreSQL store (None: SQLite, or none)."""
    if not settings.store.url or not settings.store.lexical_index:
        return None
    return resolve_path(settings, settings.store.lexical_index)


def upload_spool(settings: Settings) -> Path:
    """Where accepted uploads wait for ingestion: beside the store file, or beside the
    configuration for PostgreSQL (servers on several hosts need that folder shared)."""
    if settings.store.url:
        return resolve_path(settings, settings.store.uploads)
    store = resolve_path(settings, settings.store.path)
    return store.with_name(store.name + ".uploads")
