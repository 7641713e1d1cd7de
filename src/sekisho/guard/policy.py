"""The governance policy: for each backend locality and role, what happens to each kind of finding,
and which outputs wait for a reviewer.

A policy is a TOML file (settings.guard.policy); without one, DEFAULT_POLICY_TOML applies (the
same text is written down in samples/policy.toml as the starting point for an organisation's own).
A misspelt entity name would silently disable a block, so every key is checked and an invalid
file is one error naming the file and the key. An organisation's own identifiers (社員番号 ...) are
[[recognizers]] tables: `Policy.registry` is the shipped recognisers plus those, and the action
tables accept their entities.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sekisho.errors import SekishoError
from sekisho.guard.errors import GuardError
from sekisho.guard.recognizers import PatternRecognizer
from sekisho.guard.registry import RecognizerRegistry, default_registry
from sekisho.identity import Role


class Action(StrEnum):
    ALLOW = "allow"  # send as written
    MASK = "mask"  # replace by a reversible placeholder (<マイナンバー_1>), restored in the answer
    BLOCK = "block"  # refuse the request, naming the kind of data, never the value
    ROUTE_LOCAL = "route_local"  # send to the configured local backend instead
    REVIEW = "review"  # send as written, but hold the output for a reviewer


# When findings ask for different actions, the strictest wins.
STRICTNESS = {Action.ALLOW: 0, Action.REVIEW: 1, Action.MASK: 2, Action.ROUTE_LOCAL: 3, Action.BLOCK: 4}


BUILT_IN = "built-in"


class PolicyError(SekishoError):
    """The policy file is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class ReviewRules:
    purposes: tuple[str, ...] = ("external",)  # outputs marked for these uses wait for a reviewer
    unsupported_claims: bool = True  # answers whose faithfulness check finds unsupported sentences
    uncited: bool = True  # answers from the documents that cite none of them
    min_faithfulness: float = 0.5  # ... or whose answer-level support score is below this
    copyright: bool = True  # outputs similar to a registered work
    roles: tuple[str, ...] = ()  # every output of these roles waits (e.g. a trainee role)

    def answer_reasons(self, report: Any, *, not_found: bool) -> tuple[str, ...]:
        """Why this faithfulness report (sekisho.answer.FaithfulnessReport) sends the answer to a
        reviewer (nothing: it does not). "Not in the documents" is an honest answer and never waits."""
        if not_found:
            return ()
        reasons = []
        if self.uncited and report.uncited:
            reasons.append("uncited")
        if self.unsupported_claims and (bool(report.unsupported) or bool(report.invalid_citations)
                                        or report.score < self.min_faithfulness):
            reasons.append("unsupported_claims")
        return tuple(reasons)


@dataclass(frozen=True)
class Actions:
    default: Action
    entities: dict[str, Action] = field(default_factory=dict)

    def get(self, entity: str) -> Action:
        return self.entities.get(entity, self.default)


@dataclass(frozen=True)
class RolePolicy:
    generate: bool = True  # may this role send requests to a model at all
    external: dict[str, Action] = field(default_factory=dict)  # overrides for external backends
    local: dict[str, Action] = field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    source: str  # file path, or BUILT_IN
    external: Actions
    local: Actions
    roles: dict[str, RolePolicy] = field(default_factory=dict)
    route_local_backend: str = ""  # where ROUTE_LOCAL sends a request
    review: ReviewRules = field(default_factory=ReviewRules)
    copyright_threshold: float = 0.5  # output similarity to a registered work that counts as a flag
    # The shipped recognisers plus the file's [[recognizers]]: scan with policy.registry.scan(...).
    # Shared by whoever holds the policy: add to a registry.copy(), not to this one.
    registry: RecognizerRegistry = field(default_factory=default_registry, compare=False, repr=False)

    def action_for(self, entity: str, *, local: bool, role: Role | str) -> Action:
        override = self.roles.get(str(role))
        if override is not None:
            table = override.local if local else override.external
            if entity in table:
                return table[entity]
        return (self.local if local else self.external).get(entity)

    def may_generate(self, role: Role | str) -> bool:
        override = self.roles.get(str(role))
        return override.generate if override is not None else True


DEFAULT_POLICY_TOML = """\
# sekisho governance policy (the built-in default; copy and adapt, then set guard.policy).
# Actions: allow | mask | block | route_local | review
#   mask         reversible placeholder such as <マイナンバー_1>; restored in the answer for the
#                same user only; the audit log keeps the masked text
#   block        the request is refused with a message naming the kind of data (never the value)
#   route_local  the request goes to `route_local_backend` instead of the external model
#   review       sent as written, the output waits for a reviewer

route_local_backend = "extractive"
copyright_threshold = 0.5   # output similarity to a registered work that is flagged

# Backends not declared `local = true`: data leaves the organisation.
[external]
default = "mask"            # a kind of data added later is masked until someone decides
# Specific personal information (番号法 19条) may not be provided to a third party at all.
MY_NUMBER = "block"
# Card numbers: PCI DSS forbids sending a PAN to an uncontracted processor.
CREDIT_CARD = "block"
BANK_ACCOUNT = "mask"
PASSPORT = "mask"
DRIVERS_LICENSE = "mask"
DATE_OF_BIRTH = "mask"
PERSON = "mask"
PHONE_NUMBER = "mask"
EMAIL_ADDRESS = "mask"
ADDRESS = "mask"
POSTAL_CODE = "mask"
# 法人番号 is published by the National Tax Agency (法人番号公表サイト) and identifies a company,
# not a person: masking it would only break questions about companies.
CORPORATE_NUMBER = "allow"
# 社外秘・極秘・取扱注意: the document itself must stay on premises, not just its identifiers.
CONFIDENTIAL = "route_local"
# Asking for an imitation of a named author's or work's style.
COPYRIGHT_STYLE = "block"

# Backends on the organisation's premises: mostly allowed, always audited.
[local]
default = "allow"
# A local model still has no legal use for a My Number or a card number (番号法 purpose limits);
# it answers as well from the placeholder, and the user sees the value restored.
MY_NUMBER = "mask"
CREDIT_CARD = "mask"
COPYRIGHT_STYLE = "review"

# An organisation's own identifiers: one [[recognizers]] table each, then actions for its entity
# in [external] / [local] like any other entity (until then those tables' defaults apply).
# The pattern is a Python regular expression matched on the normalised text (NFKC: full-width
# letters and every kind of digit are ASCII); '...' quotes keep backslashes as written.
#   [[recognizers]]
#   entity = "EMPLOYEE_ID"        # a new entity (capitals, digits, _), or a known one to add a pattern
#   label = "社員番号"             # a new entity's Japanese label: findings, placeholders <社員番号_1>
#   pattern = '(?<![0-9A-Za-z])S[0-9]{6}(?![0-9])'
#   context = ["社員番号", "職員番号"]  # optional: a word just before raises the score to 0.95
#   requires_context = false      # true: report the pattern only next to a context word
#   score = 0.6                   # confidence without context; below 0.5 it is not reported
#   name = "employee_id"          # optional, unique (default: policy_<entity>_<n>)
# and, e.g., EMPLOYEE_ID = "mask" under [external].

# Per-role overrides: [roles.<admin|reviewer|user|auditor>] with generate = true|false and
# [roles.<role>.external] / [roles.<role>.local] tables of entity = action.
[roles.auditor]
generate = false            # auditors read and verify the record; they do not generate

[review]
purposes = ["external"]     # outputs marked for external use (press releases, letters to citizens)
unsupported_claims = true   # answers with sentences the sources do not support
uncited = true              # answers from the documents that cite none of them (a document may have told
                            # the model to drop its citations: such an answer cannot be checked)
min_faithfulness = 0.5
copyright = true            # outputs similar to a registered work
roles = []
"""

_ACTIONS = ", ".join(a.value for a in Action)
_TOP_KEYS = {"route_local_backend", "copyright_threshold", "external", "local", "roles", "review", "recognizers"}
_RECOGNIZER_KEYS = ("entity", "label", "pattern", "context", "requires_context", "score", "name")
_REVIEW_KEYS = {"purposes", "unsupported_claims", "uncited", "min_faithfulness", "copyright", "roles"}
_ROLE_KEYS = {"generate", "external", "local"}


def _fail(source: str, key: str, problem: str) -> PolicyError:
    return PolicyError(f"{source}: {key}: {problem}")


def _action(source: str, key: str, value: Any) -> Action:
    try:
        return Action(value)
    except ValueError:
        raise _fail(source, key, f"{value!r} is not an action (use one of: {_ACTIONS})") from None


def _entity_table(source: str, prefix: str, table: Any, known: Any, *,
                  with_default: bool) -> tuple[Action | None, dict[str, Action]]:
    if not isinstance(table, dict):
        raise _fail(source, prefix, "must be a table of entity = action")
    default = None
    entities: dict[str, Action] = {}
    for name, value in table.items():
        key = f"{prefix}.{name}"
        if name == "default" and with_default:
            default = _action(source, key, value)
        elif name in known:
            entities[name] = _action(source, key, value)
        else:
            raise _fail(source, key, f"unknown entity (known: {', '.join(known)})")
    return default, entities


def _recognizers(source: str, specs: Any) -> RecognizerRegistry:
    """The shipped recognisers plus the file's [[recognizers]] tables."""
    registry = default_registry()
    _typed(source, "recognizers", specs, list, "an array of tables ([[recognizers]])")
    for n, spec in enumerate(specs):
        where = f"recognizers[{n}]"
        _typed(source, where, spec, dict, "a table")
        for key in spec:
            if key not in _RECOGNIZER_KEYS:
                raise _fail(source, f"{where}.{key}", f"unknown setting (known: {', '.join(_RECOGNIZER_KEYS)})")
        for key in ("entity", "pattern"):
            if key not in spec:
                raise _fail(source, f"{where}.{key}", "missing")
        entity = _typed(source, f"{where}.entity", spec["entity"], str, "an entity name such as EMPLOYEE_ID")
        label = _typed(source, f"{where}.label", spec.get("label"), (str, type(None)), "a Japanese label")
        pattern_text = _typed(source, f"{where}.pattern", spec["pattern"], str, "a regular expression")
        try:
            pattern = re.compile(pattern_text)
        except re.error as exc:
            raise _fail(source, f"{where}.pattern", f"not a valid regular expression: {exc}") from None
        if pattern.fullmatch(""):
            raise _fail(source, f"{where}.pattern", "matches the empty string")
        context = _typed(source, f"{where}.context", spec.get("context", []), list, "a list of words")
        if not all(isinstance(w, str) and w.strip() for w in context):
            raise _fail(source, f"{where}.context", "must be a list of non-empty words")
        requires = _typed(source, f"{where}.requires_context", spec.get("requires_context", False), bool,
                          "true or false")
        if requires and not context:
            raise _fail(source, f"{where}.requires_context", "needs context words")
        score = float(_typed(source, f"{where}.score", spec.get("score", 0.6), (int, float),
                             "a number between 0 and 1"))
        if not 0.0 < score <= 1.0:
            raise _fail(source, f"{where}.score", "must be a number above 0, at most 1")
        name = _typed(source, f"{where}.name", spec.get("name", f"policy_{entity.lower()}_{n + 1}"), str, "a name")
        recognizer = PatternRecognizer(entity=entity, name=name, pattern=pattern_text, base_score=score,
                                       context=tuple(context), context_score=max(score, 0.95),
                                       requires_context=requires)
        try:
            registry.add(recognizer, label=label)
        except GuardError as exc:
            key = "label" if "label" in str(exc) else "name" if "registered" in str(exc) else "entity"
            raise _fail(source, f"{where}.{key}", str(exc)) from None
    return registry


def _typed(source: str, key: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise _fail(source, key, f"must be {what}")
    return value


def parse_policy(text: str, source: str = BUILT_IN) -> Policy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from None
    for key in data:
        if key not in _TOP_KEYS:
            raise _fail(source, key, f"unknown setting (known: {', '.join(sorted(_TOP_KEYS))})")
    registry = _recognizers(source, data.get("recognizers", []))
    known = registry.labels
    tables = {}
    for where in ("external", "local"):
        default, entities = _entity_table(source, where, data.get(where, {}), known, with_default=True)
        fallback = Action.MASK if where == "external" else Action.ALLOW
        tables[where] = Actions(default or fallback, entities)
    roles: dict[str, RolePolicy] = {}
    role_tables = _typed(source, "roles", data.get("roles", {}), dict, "a table of roles")
    for role, spec in role_tables.items():
        prefix = f"roles.{role}"
        if role not in {r.value for r in Role}:
            raise _fail(source, prefix, f"unknown role (known: {', '.join(r.value for r in Role)})")
        _typed(source, prefix, spec, dict, "a table")
        for key in spec:
            if key not in _ROLE_KEYS:
                raise _fail(source, f"{prefix}.{key}", "unknown setting (known: generate, external, local)")
        roles[role] = RolePolicy(
            generate=_typed(source, f"{prefix}.generate", spec.get("generate", True), bool, "true or false"),
            external=_entity_table(source, f"{prefix}.external", spec.get("external", {}), known,
                                   with_default=False)[1],
            local=_entity_table(source, f"{prefix}.local", spec.get("local", {}), known, with_default=False)[1],
        )
    review_spec = _typed(source, "review", data.get("review", {}), dict, "a table")
    for key in review_spec:
        if key not in _REVIEW_KEYS:
            raise _fail(source, f"review.{key}", f"unknown setting (known: {', '.join(sorted(_REVIEW_KEYS))})")
    defaults = ReviewRules()
    purposes = _typed(source, "review.purposes", review_spec.get("purposes", list(defaults.purposes)), list,
                      "a list of purposes")
    review_roles = _typed(source, "review.roles", review_spec.get("roles", []), list, "a list of roles")
    for role in review_roles:
        if role not in {r.value for r in Role}:
            raise _fail(source, "review.roles", f"unknown role {role!r}")
    review = ReviewRules(
        purposes=tuple(str(p) for p in purposes),
        unsupported_claims=_typed(source, "review.unsupported_claims",
                                  review_spec.get("unsupported_claims", defaults.unsupported_claims), bool,
                                  "true or false"),
        uncited=_typed(source, "review.uncited", review_spec.get("uncited", defaults.uncited), bool, "true or false"),
        min_faithfulness=float(_typed(source, "review.min_faithfulness",
                                      review_spec.get("min_faithfulness", defaults.min_faithfulness), (int, float),
                                      "a number between 0 and 1")),
        copyright=_typed(source, "review.copyright", review_spec.get("copyright", defaults.copyright), bool,
                         "true or false"),
        roles=tuple(review_roles),
    )
    threshold = float(_typed(source, "copyright_threshold", data.get("copyright_threshold", 0.5), (int, float),
                             "a number between 0 and 1"))
    for key, value in (("copyright_threshold", threshold), ("review.min_faithfulness", review.min_faithfulness)):
        if not 0.0 <= value <= 1.0:
            raise _fail(source, key, "must be a number between 0 and 1")
    route = _typed(source, "route_local_backend", data.get("route_local_backend", ""), str, "a backend name")
    return Policy(source=source, external=tables["external"], local=tables["local"], roles=roles,
                  route_local_backend=route, review=review, copyright_threshold=threshold, registry=registry)


def load_policy(path: str | Path | None = None) -> Policy:
    """The policy in `path`, or the built-in default when no path is given."""
    if not path:
        return parse_policy(DEFAULT_POLICY_TOML)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{path}: policy file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc}") from None
    return parse_policy(text, str(path))


def policy_from_settings(settings: Any) -> Policy:
    from sekisho.config import resolve_path

    value = settings.guard.policy
    return load_policy(resolve_path(settings, value) if value else None)
