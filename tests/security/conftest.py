"""Fixtures for the security findings: accounts with tokens, and a limited app on real Redis."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from tests.auth.conftest import (
    mail_settings,
    mailbox,  # noqa: F401 - a fixture, shared
)
from tests.tokens.conftest import Account, make_account


@pytest.fixture
def limited_app(make_app, redis_url, redis_db) -> Callable[..., Flask]:
    """Build an app whose limits live in the real Redis; keyword arguments override settings."""

    def build(**settings) -> Flask:
        return make_app(REDIS_URL=redis_url, RATELIMIT_STORAGE_URI=redis_url, **settings)

    return build


@pytest.fixture
def account(app) -> Account:
    return make_account(app)


@pytest.fixture
def mail_app(make_app, mailbox, redis_url, redis_db) -> Callable[..., Flask]:  # noqa: F811
    """Build an app with real SMTP (aiosmtpd) and real Redis; keyword arguments override."""

    def build(**settings) -> Flask:
        return make_app(**{**mail_settings(mailbox, redis_url), **settings})

    return build
