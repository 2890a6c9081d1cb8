"""The token format: `mg_` + 40 random base62 characters + a 6-character CRC32 checksum.

As with GitHub's tokens, the checksum lets us (and secret scanners) refuse a
mistyped or made-up token without any lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import zlib

ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
PREFIX = "mg_"
RANDOM_LENGTH, CHECKSUM_LENGTH = 40, 6
SHAPE = re.compile(rf"{PREFIX}[0-9A-Za-z]{{{RANDOM_LENGTH + CHECKSUM_LENGTH}}}")


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def _checksum(random_part: str) -> str:
    return _base62(zlib.crc32(random_part.encode()), CHECKSUM_LENGTH)


def generate_token() -> str:
    random_part = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return PREFIX + random_part + _checksum(random_part)


def looks_like_api_token(value: str) -> bool:
    return value.startswith(PREFIX)


def has_valid_checksum(token: str) -> bool:
    """True when `token` has the right shape and checksum (no lookup needed)."""
    if not SHAPE.fullmatch(token):
        return False
    body = token[len(PREFIX) :]
    return hmac.compare_digest(_checksum(body[:RANDOM_LENGTH]), body[RANDOM_LENGTH:])


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
