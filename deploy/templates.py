"""`@@NAME@@` placeholders in the shipped nginx and systemd files, filled from settings."""

from __future__ import annotations

import re
from pathlib import Path

PLACEHOLDER = re.compile(r"@@([A-Z_]+)@@")
SYSTEMD = Path(__file__).resolve().parent / "systemd"


def fill(text: str, settings: dict[str, str]) -> str:
    """Replace each `@@NAME@@`; a name without a value is an error, never an empty string."""

    def one(match: re.Match[str]) -> str:
        if match.group(1) not in settings:
            raise KeyError(f"template setting {match.group(1)} has no value")
        return settings[match.group(1)]

    return PLACEHOLDER.sub(one, text)


def service_unit(
    root: str, user: str, name: str = "modelgate.service", env_file: str = "/etc/modelgate/env"
) -> str:
    """A unit (gunicorn's, or the batch worker's) for a deploy root run as `user`."""
    settings = {"ROOT": root, "USER": user, "ENV_FILE": env_file}
    return fill((SYSTEMD / name).read_text(), settings)
