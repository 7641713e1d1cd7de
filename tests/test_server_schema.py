"""Property-based checks from the server's own OpenAPI document: whatever Schemathesis generates
(valid and invalid requests, as an admin who may call everything), the server never answers
with a 5xx, every JSON refusal keeps the documented error shape, and the responses agree with
the spec: documented status codes and media types (a 401 is JSON on every route), response
bodies matching their schemas, valid requests accepted (the spec states the rules the server
enforces: 400 for what breaks them, never an undocumented 422), 405 naming every method."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from sekisho.identity import Role
from sekisho.ingest import ingest_bytes
from sekisho.retrieval import open_knowledge_base
from sekisho.server.app import create_app
from server_fixtures.support import CITY, make_settings

# Schemathesis parametrizes at collection time, so the app is built at import, in a folder of its own.
_FOLDER = Path(tempfile.mkdtemp(prefix="sekisho-schema-"))
atexit.register(shutil.rmtree, _FOLDER, ignore_errors=True)
_APP = create_app(make_settings(_FOLDER, extra_toml='[apps]\nfolder = "apps"\n'))
_, _SECRET = _APP.state.sekisho.keys.create(Role.ADMIN, "schemathesis")
with open_knowledge_base(_APP.state.sekisho.settings) as _kb:  # search and ask exercise a real index
    ingest_bytes(_kb, "toshokan.txt", (CITY / "toshokan.txt").read_bytes())

schema = schemathesis.openapi.from_asgi("/openapi.json", _APP)


# Rules no schema can state, so a generated request may break them whatever the spec says, and
# the "valid data is accepted" check is left out there: an uploaded file must be what its name
# says (a PDF that parses, an app file that is an app); a usage period must not end before it
# starts, nor name a dimension twice.
_BEYOND_SCHEMA = {("POST", "/api/documents"), ("POST", "/api/proofread"), ("POST", "/api/apps"), ("GET", "/api/usage")}


# Not checked: that schema-violating requests are refused. This test adds the key to every request,
# so a case "without the required Authorization header" arrives with it; and unknown query
# parameters are ignored, as HTTP servers do.
_NOT_CHECKED = [negative_data_rejection]


@schema.parametrize()
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_as_documented(case):
    excluded = _NOT_CHECKED + ([positive_data_acceptance] if (case.method.upper(), case.path) in _BEYOND_SCHEMA else [])
    response = case.call_and_validate(headers={"Authorization": f"Bearer {_SECRET}"},
                                      additional_checks=[not_a_server_error], excluded_checks=excluded)
    content_type = (response.headers.get("content-type") or [""])[0]
    if response.status_code >= 400 and content_type.startswith("application/json"):
        body = response.json()
        assert set(body) == {"error"} and {"message", "type", "param", "code"} == set(body["error"])
