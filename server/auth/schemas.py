"""Request bodies of the auth routes."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from server.api.body import RequestModel
from server.auth.passwords import MAX_PASSWORD_BYTES

# Deliberately simple: one @, a dot in the domain, no spaces. Delivery proves the rest.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def _email(value: str) -> str:
    value = value.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValueError("not a valid email address")
    return value


def _password(value: str) -> str:
    if len(value.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError("password must be at most 72 bytes (bcrypt's limit)")
    return value


Email = Annotated[str, AfterValidator(_email)]
Password = Annotated[str, Field(min_length=8), AfterValidator(_password)]


class RegisterBody(RequestModel):
    email: Email
    password: Password
    name: Annotated[str, Field(max_length=100)] = ""


class LoginBody(RequestModel):
    email: Annotated[str, Field(max_length=254), AfterValidator(lambda v: v.strip().lower())]
    password: Annotated[str, Field(max_length=1024)]
