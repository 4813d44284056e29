"""The console's session cookie: a browser that gave INSPECT_API_KEY once on the sign-in page.

The cookie holds no data, only a timestamp signed (itsdangerous, HMAC-SHA256) with a secret derived
from the key itself: every API process that knows the key accepts it, and changing the key ends
every session at once. It is HttpOnly (page scripts cannot read it), SameSite=Strict (another site's
pages never send it) and Secure when the console is served over https. A stolen cookie stays valid
until it expires (``MAX_AGE_S``): sign-out removes it from that browser only.
"""

from __future__ import annotations

import hashlib
import hmac

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.responses import Response

COOKIE_NAME = "inspect_session"
MAX_AGE_S = 12 * 3600  # a long shift on the line, then sign in again
_PURPOSE = b"geti-inspect console session v1"


class SessionCookie:
    """Issues and checks the signed session cookie of one API key."""

    def __init__(self, key: str) -> None:
        # A derived secret: the key itself never signs anything another party might see.
        secret = hmac.new(key.encode("utf-8"), _PURPOSE, hashlib.sha256).digest()
        self._serializer = URLSafeTimedSerializer(secret, salt="console-session")

    def issue(self) -> str:
        return self._serializer.dumps({"v": 1})

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        try:
            self._serializer.loads(token, max_age=MAX_AGE_S)
        except BadSignature:  # also SignatureExpired
            return False
        return True

    def set_on(self, response: Response, secure: bool) -> None:
        response.set_cookie(COOKIE_NAME, self.issue(), max_age=MAX_AGE_S, path="/", httponly=True,
                            samesite="strict", secure=secure)


def clear_cookie(response: Response, secure: bool) -> None:
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict", secure=secure)
