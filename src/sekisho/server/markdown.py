"""Answers rendered from Markdown to HTML that is safe to put in the page.

Answers quote documents, and documents are untrusted: a passage can hold `<script>`, an
`onerror=` attribute or a `javascript:` link that a model copies into its answer. So raw HTML in
the source is never passed through (markdown-it with html off escapes it), links are limited to
http(s) and mailto, images are not rendered at all (an image URL is a request the reader's
browser makes to wherever the document says), and the page's Content-Security-Policy allows no
inline script anyway. Citation markers [n] become links that open the cited passage.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

from sekisho.text import CITATION_RE, citation_numbers

_SAFE_SCHEMES = ("http://", "https://", "mailto:")


def _validate_link(url: str) -> bool:
    return url.strip().lower().startswith(_SAFE_SCHEMES)


def _citations(sources: dict[int, Any]):
    """A core rule splitting text tokens at citation markers into links to their passages."""

    def rule(state: Any) -> None:
        for block in state.tokens:
            if block.type != "inline" or not block.children:
                continue
            children: list[Token] = []
            for token in block.children:
                if token.type != "text" or not CITATION_RE.search(token.content):
                    children.append(token)
                    continue
                at = 0
                for match in CITATION_RE.finditer(token.content):
                    children.append(_text(token.content[at:match.start()]))
                    for n in citation_numbers(match.group(1)):
                        children.append(_cite(n, sources.get(n)))
                    at = match.end()
                children.append(_text(token.content[at:]))
            block.children = children

    return rule


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _cite(n: int, source: Any) -> Token:
    token = Token("html_inline", "", 0)
    if source is None:
        token.content = f"[{n}]"
        return token
    chunk_id = html.escape(str(source["chunk_id"] if isinstance(source, dict) else source.chunk_id), quote=True)
    title = html.escape(str(source["title"] if isinstance(source, dict) else source.title), quote=True)
    url = f"/ui/passages/{chunk_id}"
    token.content = (f'<a class="cite" href="{url}" hx-get="{url}" hx-target="#passage" '
                     f'aria-label="出典 {n} / source {n}: {title}">[{n}]</a>')
    return token


def render(text: str, sources: Sequence[Any] = ()) -> Markup:
    """`text` (Markdown, untrusted) as safe HTML, its [n] linked to `sources` (numbered from 1;
    dicts with chunk_id and title, or objects with those attributes)."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).disable("image")
    md.validateLink = _validate_link
    md.core.ruler.push("citations", _citations({n: s for n, s in enumerate(sources, 1)}))
    return Markup(md.render(text))
