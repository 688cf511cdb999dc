"""API-key check for mutating and admin routes (constant-time comparison)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader

API_KEY_HEADER = "X-API-Key"
_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


def key_matches(given: str, expected: str) -> bool:
    """Compare keys in constant time so timing does not leak how much of a guess was right."""
    return hmac.compare_digest(given.encode(), expected.encode())


def require_api_key(
    request: Request, given: Annotated[str | None, Depends(_api_key_header)]
) -> None:
    """401 when the key is missing, 403 when it is wrong."""
    if given is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"missing {API_KEY_HEADER} header",
            headers={"WWW-Authenticate": API_KEY_HEADER},
        )
    if not key_matches(given, request.app.state.settings.serving.api_key.get_secret_value()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"invalid {API_KEY_HEADER}")


ApiKeyDep = Depends(require_api_key)
