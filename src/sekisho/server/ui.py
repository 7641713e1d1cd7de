"""The web UI: server-rendered Jinja2 pages with htmx for partial updates (vendored, no CDN, no
build step). Japanese labels first, English second. Every action reuses the native API's
functions, so the UI cannot do anything the API would refuse."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from sekisho.errors import SekishoError
from sekisho.models.protocol import BackendError
from sekisho.server import api
from sekisho.server.deps import AppState, audit_event, authenticate, state_of
from sekisho.server.errors import ApiError
from sekisho.server.security import SESSION_COOKIE, Caller, Permission, csrf_token, may
from sekisho.text import CITATION_RE, citation_numbers

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

# Everyday work first, then what reviewers, auditors and admins oversee.
NAV = [
    ("/chat", "質問", "Ask", "chat"),
    ("/apps", "アプリ", "Apps", "chat"),
    ("/proofread", "校正", "Proofread", "chat"),
    ("/documents", "文書", "Documents", "search"),
    ("/models", "モデル", "Models", "chat"),
    ("/quota", "利用枠", "Quota", "chat"),
    ("/reviews", "レビュー", "Review", "review"),
    ("/audit", "監査", "Audit", "audit"),
    ("/usage", "利用状況", "Usage", "audit"),
    ("/keys", "鍵", "Keys", "keys"),
]
LABELS = {"queued": "待機中 / Queued", "running": "処理中 / Running", "done": "完了 / Done", "failed": "失敗 / Failed",
          "pending": "確認待ち / Pending", "approved": "承認 / Approved", "edited": "修正承認 / Edited",
          "rejected": "却下 / Rejected"}


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("nav", NAV)
    context.setdefault("labels", LABELS)
    context.setdefault("me", None)
    # Pages put the session's CSRF token where htmx and the page scripts send it from.
    sid = request.cookies.get(SESSION_COOKIE)
    context.setdefault("csrf", csrf_token(sid) if sid else None)
    return templates.TemplateResponse(request, name, context, status_code=status_code)


class PageRefused(Exception):
    """Raised by a page's dependency with the response to send instead of the page."""

    def __init__(self, response: Response) -> None:
        self.response = response


async def page_caller(request: Request, permission: Permission | None) -> Caller:
    """The caller, or PageRefused carrying the response to send instead: the login page for no
    session (htmx follows HX-Redirect), an explained 403 for a role without the right."""
    try:
        return await authenticate(request, permission)
    except ApiError as exc:
        if exc.http_status == 401:
            # A cookie that no longer opens a session: the login page says the session ended.
            login = "/login?ended=1" if request.cookies.get(SESSION_COOKIE) else "/login"
            if request.headers.get("hx-request"):
                raise PageRefused(Response(status_code=401, headers={"HX-Redirect": login})) from None
            raise PageRefused(RedirectResponse(login, status_code=303)) from None
        heading = {403: "権限がありません / Forbidden", 429: "混み合っています / Too many requests"}.get(
            exc.http_status, "エラー / Error")
        raise PageRefused(render(request, "error.html", status_code=exc.http_status, title=heading, heading=heading,
                                 message=exc.message)) from None


def page(permission: Permission | None) -> Any:
    """The dependency every page and fragment route declares: the caller with `permission`."""

    async def dependency(request: Request) -> Caller:
        return await page_caller(request, permission)

    return Depends(dependency)


def fragment_error(request: Request, exc: SekishoError) -> HTMLResponse:
    # htmx swaps only 2xx responses by default; the error fragment is still a page element.
    return render(request, "_error.html", status_code=200, message=str(exc))


class PageRoute(APIRoute):
    """A UI route: a refused caller gets the page PageRefused carries; an error a fragment route
    (/ui/...) raises is shown where the fragment would have gone, as one line, and a page's
    error is a page saying it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except PageRefused as refused:
                return refused.response
            except SekishoError as exc:
                if request.url.path.startswith("/ui/"):
                    return fragment_error(request, exc)
                heading = {403: "権限がありません / Forbidden", 404: "見つかりません / Not found"}.get(
                    exc.http_status, "エラー / Error")
                return render(request, "error.html", status_code=exc.http_status, title=heading, heading=heading,
                              message=str(exc))

        return handle


router = APIRouter(include_in_schema=False, route_class=PageRoute)


def _me(caller: Caller) -> dict[str, Any]:
    return api._whoami(caller).model_dump()


@router.get("/")
async def home(request: Request, caller: Caller = page(None)) -> Response:
    """Each role starts where it may work: ask, else review, else the audit log."""
    for permission, page in ((Permission.CHAT, "/chat"), (Permission.REVIEW, "/reviews"), (Permission.AUDIT, "/audit")):
        if may(caller.principal, permission):
            return RedirectResponse(page, status_code=303)
    return render(request, "error.html", status_code=403, title="権限がありません", heading="権限がありません / Forbidden",
                  message="このキーで使える画面はありません。/ This key has no pages.")


# --- chat -----------------------------------------------------------------------------------

@router.get("/chat")
async def chat_page(request: Request, c: str | None = None, caller: Caller = page(Permission.CHAT)) -> Response:
    """The conversation page: the caller's conversations in a sidebar, the one asked for (?c=)
    with its turns as they were answered; new answers stream in (static/chat.js)."""
    from sekisho.models import backend_names
    from sekisho.server.conversations_api import conversation_out

    state = state_of(request)
    store = await state.runtime.run(state.runtime.conversations)
    conversations = await state.runtime.run(store.list, caller.principal.name)
    conversation = conversation_out(await state.runtime.run(store.get, caller.principal.name, c)) if c else None
    return render(request, "chat.html", title="質問", me=_me(caller), active="/chat",
                  backends=list(backend_names(state.settings)), default_backend=state.settings.models.default,
                  conversations=conversations, conversation=conversation,
                  turns=[_turn_view(t) for t in conversation["turns"]] if conversation else [])


def _turn_view(turn: dict[str, Any]) -> dict[str, Any]:
    return {**turn, "html": Markup(turn["html"])}


@router.get("/ui/conversations/{conversation_id}/turns/{n}")
async def ui_turn(conversation_id: str, n: int, request: Request, caller: Caller = page(Permission.CHAT)) -> Response:
    """One turn as the page shows it (after its stream ended)."""
    from sekisho.server.conversations_api import conversation_out

    state = state_of(request)
    store = await state.runtime.run(state.runtime.conversations)
    turns = conversation_out(await state.runtime.run(store.get, caller.principal.name, conversation_id))["turns"]
    turn = next((t for t in turns if t["n"] == n), None)
    if turn is None:
        raise ApiError(404, f"conversation {conversation_id}: no turn {n}", code="not_found")
    return render(request, "_turn.html", turn=_turn_view(turn), last=n == turns[-1]["n"])


def cited_html(text: str, sources: list[Any]) -> Markup:
    """The answer text, escaped, with each citation marker ([1], ［１］, 【1】, [1,2]) turned into
    links that open the cited passage."""
    by_n = {s.n: s for s in sources}
    escaped = str(escape(text))

    def link(n: int) -> str:
        source = by_n.get(n)
        if source is None:
            return f"[{n}]"
        url = f"/ui/passages/{html.escape(source.chunk_id, quote=True)}"
        return (f'<a class="cite" href="{url}" hx-get="{url}" hx-target="#passage" '
                f'aria-label="出典 {n} / source {n}: {html.escape(source.title, quote=True)}">[{n}]</a>')

    return Markup(CITATION_RE.sub(lambda m: "".join(link(n) for n in citation_numbers(m.group(1))), escaped))


@router.post("/ui/ask")
async def ui_ask(request: Request, question: str = Form(..., min_length=1, max_length=4000),
                 backend: str = Form("", max_length=200), caller: Caller = page(Permission.CHAT)) -> Response:
    from sekisho.server.openai_api import resolve_model

    state = state_of(request)
    name, _ = resolve_model(state, backend or state.settings.models.default, True)
    try:
        governed = await api.ask_governed(state, caller, request, question, name, state.settings.retrieval.top_k)
        result = api.ask_response(question, governed)
    except ApiError as exc:
        if exc.code != "guard_blocked":
            raise
        return render(request, "_answer.html", question=question, status="blocked", error=exc.message)
    faithfulness = result.faithfulness
    unsupported = [s.text for s in faithfulness.sentences if not s.supported] if faithfulness else []
    return render(request, "_answer.html", question=question, status=result.status, result=result,
                  answer_html=cited_html(result.answer, result.citations), sources=result.citations,
                  unsupported=unsupported)


@router.post("/ui/reviews/{review_id}/release")
async def ui_release(review_id: api.ReviewId, request: Request, caller: Caller = page(Permission.CHAT)) -> Response:
    """The requester fetches their held answer once a reviewer has decided."""
    released = await api.release_review(review_id, request, caller)
    return render(request, "_released.html", released=released)


@router.get("/ui/passages/{chunk_id}")
async def ui_passage(chunk_id: str, request: Request, caller: Caller = page(Permission.SEARCH)) -> Response:
    found = await api.passage(chunk_id, request, caller)
    return render(request, "_passage.html", p=found)


# --- task apps ------------------------------------------------------------------------------

@router.get("/apps")
async def apps_page(request: Request, caller: Caller = page(Permission.CHAT)) -> Response:
    state = state_of(request)
    catalog = state.runtime.catalog()
    apps = await state.runtime.run(catalog.apps)
    admin = may(caller.principal, Permission.KEYS)
    return render(request, "apps.html", title="業務アプリ", me=_me(caller), active="/apps",
                  apps=[a.to_json() for a in sorted(apps.values(), key=lambda a: (not a.shipped, a.id))],
                  admin=admin, problems=catalog.problems if admin else [])


@router.get("/apps/{app_id}")
async def app_page(app_id: str, request: Request, caller: Caller = page(Permission.CHAT)) -> Response:
    from sekisho.apps import choose_backend
    from sekisho.models import backend_names

    state = state_of(request)
    spec = await state.runtime.run(state.runtime.catalog().get, app_id)
    chosen = await state.runtime.run(choose_backend, spec, None, state.settings, state.runtime.path())
    backends = [n for n in backend_names(state.settings) if spec.allows(n)]
    return render(request, "app.html", title=spec.title_ja, me=_me(caller), active="/apps", app=spec.to_json(),
                  backends=backends, chosen=chosen)


@router.post("/ui/apps")
async def ui_add_app(request: Request, file: UploadFile = File(...), caller: Caller = page(Permission.KEYS)) -> Response:
    state = state_of(request)
    text = (await file.read()).decode("utf-8", errors="replace")
    spec = await state.runtime.run(state.runtime.catalog().add, text)
    await audit_event(state, "app.add", {"principal": caller.principal.name, "app": spec.id, "version": spec.version})
    return render(request, "_notice.html", message=f"追加しました / added: {spec.title_ja} ({spec.id})")


# --- documents ------------------------------------------------------------------------------

async def _documents(state: AppState, caller: Caller) -> list[Any]:
    from sekisho.server.security import can_see

    docs = await state.runtime.run(lambda: state.runtime.kb().store.documents())
    return [api.document_out(d) for d in docs if can_see(caller.principal, d.tags)]


@router.get("/documents")
async def documents_page(request: Request, caller: Caller = page(Permission.SEARCH)) -> Response:
    documents = await _documents(state_of(request), caller)
    return render(request, "documents.html", title="文書", me=_me(caller), active="/documents",
                  documents=documents, can_upload=Permission.DOCUMENTS.value in _me(caller)["permissions"])


@router.get("/ui/documents/table")
async def documents_table(request: Request, caller: Caller = page(Permission.SEARCH)) -> Response:
    documents = await _documents(state_of(request), caller)
    return render(request, "_documents_table.html", documents=documents,
                  can_upload=Permission.DOCUMENTS.value in _me(caller)["permissions"])


@router.post("/ui/documents")
async def ui_upload(request: Request, files: list[UploadFile] = File(...), tags: str = Form(""),
                    caller: Caller = page(Permission.DOCUMENTS)) -> Response:
    job = await api.upload_documents(request, files, tags, caller)
    return render(request, "_job.html", job=job)


@router.get("/ui/jobs/{job_id}")
async def ui_job(job_id: str, request: Request, caller: Caller = page(Permission.DOCUMENTS)) -> Response:
    job = await api.get_job(job_id, request, caller)
    response = render(request, "_job.html", job=job)
    if job.status in ("done", "failed"):
        response.headers["HX-Trigger"] = "refresh-docs"
    return response


@router.post("/ui/documents/{doc_id}/delete")
async def ui_delete(doc_id: str, request: Request, caller: Caller = page(Permission.DOCUMENTS)) -> Response:
    await api.delete_document(doc_id, request, caller)
    return await documents_table(request, caller)


# --- review ---------------------------------------------------------------------------------

@router.get("/reviews")
async def reviews_page(request: Request, caller: Caller = page(Permission.REVIEW)) -> Response:
    listed = await api.list_reviews(request, "pending", 100, caller)
    return render(request, "reviews.html", title="レビュー", me=_me(caller), active="/reviews", items=listed.items)


@router.post("/ui/reviews/{review_id}/{action}")
async def ui_decide(review_id: api.ReviewId, action: str, request: Request, text: str = Form(""), note: str = Form(""),
                    reason: str = Form(""), caller: Caller = page(Permission.REVIEW)) -> Response:
    if action not in ("approve", "edit", "reject"):
        return render(request, "_error.html", status_code=404, message=f"unknown review action '{action}'")
    state = state_of(request)
    try:
        item = await api.decide(state, caller, review_id, action, text=text,
                                note=reason if action == "reject" else note)
    except SekishoError as exc:
        # The item as it now stands (decided by someone else, say), with why this decision was not taken.
        current = await api.get_review(review_id, request, caller)
        return render(request, "_review.html", item=current, error=str(exc))
    return render(request, "_review.html", item=item)


# --- audit ----------------------------------------------------------------------------------

@router.get("/audit")
async def audit_page(request: Request, kind: str | None = None, caller: Caller = page(Permission.AUDIT)) -> Response:
    listed = await api.query_audit(request, kind or None, None, None, None, 200, caller)
    entries = []
    for e in listed.entries:
        summary = json.dumps({k: v for k, v in e.record.items() if k != "principal"}, ensure_ascii=False)
        entries.append({"seq": e.seq, "ts": e.ts, "kind": e.kind, "record": e.record,
                        "summary": summary if len(summary) <= 240 else summary[:239] + "…"})
    return render(request, "audit.html", title="監査ログ", me=_me(caller), active="/audit", entries=entries, kind=kind)


@router.post("/ui/audit/verify")
async def ui_verify(request: Request, caller: Caller = page(Permission.AUDIT)) -> Response:
    result = await api.verify_audit(request, caller)
    return render(request, "_verify.html", result=result)


# --- models ---------------------------------------------------------------------------------

@router.get("/models")
async def models_page(request: Request, caller: Caller = page(Permission.CHAT)) -> Response:
    state = state_of(request)
    settings = state.settings

    def _infos() -> list[dict[str, Any]]:
        # The backends' own account of themselves (locality is the models package's rule).
        rows = []
        for name in settings.models.backends:
            try:
                info = state.runtime.path().backend(name).info()
                rows.append({"name": name, "kind": info.kind, "model": info.model, "local": info.local,
                             "default": name == settings.models.default, "error": None})
            except BackendError as exc:
                rows.append({"name": name, "kind": settings.models.backends[name].kind, "model": "",
                             "local": None, "default": name == settings.models.default, "error": str(exc)})
        return rows

    models = await state.runtime.run(_infos)
    return render(request, "models.html", title="モデル", me=_me(caller), active="/models", models=models,
                  base_url=str(request.base_url))
