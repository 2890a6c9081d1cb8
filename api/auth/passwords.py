"""Password hashing (argon2id) and the password policy.

Parameters sit at OWASP's recommended minimum for argon2id (19 MiB, 2 passes,
1 lane); a stored hash made with other parameters is upgraded at the next login.
The policy is NIST 800-63B's: 12-128 characters of anything, no composition
rules, no truncation, and not one of the 30,000 most common passwords (the list
zxcvbn ships).
"""

from __future__ import annotations

import functools
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
MAX_LENGTH = 128

hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def _normalise(password: str) -> str:
    # NFKC so the same password typed on different keyboards hashes the same.
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    return hasher.hash(_normalise(password))


def verify_password(stored_hash: str, password: str) -> bool:
    """Check a password in constant time against its argon2 hash."""
    try:
        return hasher.verify(stored_hash, _normalise(password))
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return hasher.check_needs_rehash(stored_hash)


@functools.cache
def dummy_hash() -> str:
    """A hash to verify against when the account does not exist, so timing reveals nothing."""
    return hasher.hash("not-a-real-password-but-costs-the-same")


@functools.cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(password: str) -> str | None:
    """Say what is wrong with a new password, or None when it is acceptable."""
    length = len(_normalise(password))
    if length < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if length > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    if password.lower() in _common_passwords() or len(set(password)) < 3:
        return "This password is too common; choose one that is harder to guess."
    return None
