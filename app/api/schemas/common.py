"""Shared response shapes and reusable field checks."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field


class ErrorOut(BaseModel):
    detail: str = Field(examples=["entry 4711 not found"])


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """422: our own checks answer a sentence; FastAPI's request validation answers its list form (CONTRACT 2)."""

    detail: str | list[ValidationIssue] = Field(examples=["duration: must be at least 0"])


def _no_control_chars(value: str) -> str:
    # NUL cannot be stored by PostgreSQL; CR/LF in single-line fields would allow header injection
    if any(c in value for c in "\x00\r\n") or any(ord(c) < 32 and c != "\t" for c in value):
        raise ValueError("must not contain control characters or line breaks")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


SingleLine = Annotated[str, AfterValidator(_no_control_chars)]
Text = Annotated[str, AfterValidator(_no_nul)]
UserName = Annotated[SingleLine, Field(min_length=1, max_length=200, examples=["jdoe"])]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the error codes a route can answer."""
    text = {
        400: "Malformed request",
        401: "Missing or unknown API key, an expired or revoked user token, or a bad signature",
        403: "A user token asked for another user's data or for tenant administration",
        404: "Not found (or belongs to another tenant)",
        409: "Conflicts with the current state",
        413: "Body too large",
        422: "Validation error naming the field",
        429: "Too many requests for this tenant (TENANT_API_RATE_PER_SECOND); see Retry-After",
        503: "A dependency is unavailable",
    }
    return {c: {"model": ValidationErrorOut if c == 422 else ErrorOut, "description": text.get(c, "Error")}
            for c in codes}
