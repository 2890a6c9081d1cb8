"""Configuration: development runs on defaults; production refuses weak or missing secrets."""

from __future__ import annotations

import subprocess
import sys

import pytest

from api.config import Config, ConfigError
from tests.services import ROOT

STRONG = "k" * 48
PRODUCTION = {
    "MODELGATE_ENV": "production",
    "SECRET_KEY": STRONG,
    "JWT_SECRET_KEY": "j" * 48,
    "DATABASE_URL": "postgresql+psycopg://u@db/modelgate",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "MAIL_SERVER": "smtp.example.org",
}


def test_development_defaults_need_nothing():
    config = Config({})
    config.validate()
    assert config.SQLALCHEMY_DATABASE_URI.startswith("sqlite:///")
    assert config.REDIS_URL is None
    assert len(config.SECRET_KEY) >= 32 and config.SECRET_KEY != config.JWT_SECRET_KEY


def test_production_with_strong_settings_is_accepted():
    Config(PRODUCTION).validate()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY is missing"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY is too weak"),
        ({"JWT_SECRET_KEY": ""}, "JWT_SECRET_KEY is missing"),
        ({"JWT_SECRET_KEY": "changeme"}, "JWT_SECRET_KEY is too weak"),
        ({"JWT_SECRET_KEY": STRONG}, "JWT_SECRET_KEY must differ"),
        ({"DATABASE_URL": ""}, "DATABASE_URL is missing"),
        ({"REDIS_URL": ""}, "REDIS_URL is missing"),
        ({"MAIL_SERVER": ""}, "MAIL_SERVER is missing"),
    ],
)
def test_production_refuses_weak_settings_and_names_them(change, named):
    with pytest.raises(ConfigError, match=named):
        Config({**PRODUCTION, **change}).validate()


def test_bad_integer_names_the_variable():
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        Config({"TRUSTED_PROXIES": "one"})


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        [sys.executable, "-m", "flask", "--app", "wsgi", "routes"],
    ],
    ids=["gunicorn", "flask-cli"],
)
def test_production_start_with_weak_secret_exits_at_once_naming_it(command, tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "MODELGATE_ENV": "production",
        "SECRET_KEY": "tooshort",
        "JWT_SECRET_KEY": "j" * 48,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "GUNICORN_BIND": "127.0.0.1:0",
    }
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "SECRET_KEY is too weak" in result.stderr
    assert "Traceback" not in result.stderr
