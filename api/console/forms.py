"""What every console form shares: the same-origin rule, redirect-after-post, and field messages."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import parse_qsl, urlencode

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from api.access import CROSS_SITE_DETAIL, STATE_CHANGING, same_origin
from api.console.templating import root


def require_same_origin(request: Request) -> None:
    """Console form posts come from the console's own pages: another origin's post gets 403.

    With an API key, the access middleware has already refused cookie-borne posts without an Origin
    or Referer; without one there is no session to ride on, and a client that sends neither (curl)
    is let through.
    """
    if request.method in STATE_CHANGING and same_origin(request.headers) is False:
        raise HTTPException(status_code=403, detail=CROSS_SITE_DETAIL)


async def text_fields(request: Request) -> dict[str, str]:
    """A posted form's text fields (files left out)."""
    return {key: value for key, value in (await request.form()).items() if isinstance(value, str)}


def see_other(request: Request, path: str) -> RedirectResponse:
    """303 to a console path: the browser GETs the result page, so a reload never posts twice."""
    return RedirectResponse(f"{root(request)}{path}", status_code=303)


def field_errors(error: ValidationError) -> dict[str, str]:
    """The validation messages of a form's fields, by field name (the API's own wording)."""
    messages: dict[str, str] = {}
    for item in error.errors(include_url=False, include_input=False):
        field = str(item["loc"][0]) if item["loc"] else "__all__"
        messages.setdefault(field, item["msg"].removeprefix("Value error, "))
    return messages


def detail_text(error: HTTPException) -> str:
    """An API error's detail as one line of text for a page."""
    detail = error.detail
    if isinstance(detail, dict):
        return str(detail.get("message") or detail)
    if isinstance(detail, list):
        return "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail)
    return str(detail)


def kept_query(back: str, keys: Collection[str]) -> str:
    """The query string a form came from (sent back in a hidden field), rebuilt from the known keys only."""
    return urlencode([(key, value) for key, value in parse_qsl(back) if key in keys])


def choice(value: str | None, allowed: Collection[str], name: str) -> str | None:
    """A select's value: empty means any; anything else must be one of `allowed` (422 otherwise)."""
    if not value:
        return None
    if value not in allowed:
        raise HTTPException(status_code=422, detail=f"{name} must be one of {', '.join(allowed)}")
    return value
