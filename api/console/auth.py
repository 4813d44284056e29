"""Sign-in and sign-out: the console asks for INSPECT_API_KEY once and keeps a signed session cookie."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import HTMLResponse

from api.access import SIGN_IN_PATH, key_matches
from api.console.forms import require_same_origin, see_other
from api.console.templating import render
from api.session_cookie import SessionCookie, clear_cookie

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_same_origin)])

HOME = "/ui/"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path only (never another site, never a scheme-relative URL)."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return HOME


def _form(request: Request, target: str | None, errors: dict[str, str], status_code: int = 200) -> Response:
    return render(request, "sign_in.html", {"next": safe_next(target), "errors": errors, "signing_in": True},
                  status_code=status_code)


def _https(request: Request) -> bool:
    return request.url.scheme == "https"


@router.get(SIGN_IN_PATH, response_class=HTMLResponse)
def sign_in_page(request: Request, next: str | None = None) -> Response:  # noqa: A002 - the query parameter's name
    if request.app.state.settings.api_key is None:
        return see_other(request, safe_next(next))  # nothing to sign in to
    return _form(request, next, {})


@router.post(SIGN_IN_PATH, response_class=HTMLResponse)
def sign_in(request: Request, key: Annotated[str, Form()] = "",
            next: Annotated[str, Form()] = HOME) -> Response:  # noqa: A002
    api_key = request.app.state.settings.api_key
    if api_key is None:
        return see_other(request, safe_next(next))
    if not key.strip():
        return _form(request, next, {"key": "enter the API key"}, 422)
    if not key_matches([key.strip()], api_key.get_secret_value().encode("utf-8")):
        return _form(request, next, {"key": "wrong API key"}, 401)
    response = see_other(request, safe_next(next))
    SessionCookie(api_key.get_secret_value()).set_on(response, secure=_https(request))
    return response


@router.post("/ui/sign-out")
def sign_out(request: Request) -> Response:
    response = see_other(request, SIGN_IN_PATH)
    clear_cookie(response, secure=_https(request))
    return response
