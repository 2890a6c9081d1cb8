"""glibc's malloc in a long-running worker: a password hash's memory goes back to the system.

Every login and sign-up hashes a password with argon2id over 19 MiB (OWASP's setting,
`api/auth/passwords.py`). glibc maps a block that large with mmap only until the first
one is freed: its dynamic threshold then rises to that size (up to 32 MiB), and later
blocks come from the calling thread's arena, which keeps them once freed. So each of a
worker's 8 threads that ever hashed a password holds 19 MiB more, and the worker's RSS
climbs in 19 MiB steps for as long as logins happen to land on a new thread (up to
152 MiB a worker), which is neither a leak nor a steady state.

A fixed mmap threshold below that size maps every such block and unmaps it when freed
(about 11 ms more per hash, for the page faults). Fixing it also stops glibc adjusting
the trim threshold, so that is set where the dynamic rule would take it: twice the
mmap threshold. An operator's own `MALLOC_MMAP_THRESHOLD_` wins; other C libraries
are left as they are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

MMAP_THRESHOLD = 16 * 1024 * 1024  # below argon2's 19 MiB, above what a call's tensors take
_M_TRIM_THRESHOLD = -1  # mallopt's parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3


def return_large_blocks(threshold: int = MMAP_THRESHOLD) -> bool:
    """Map every block of `threshold` bytes or more on its own; True if glibc took it.

    Call it in gunicorn's master before the workers fork: they inherit the setting.
    """
    if platform.libc_ver()[0] != "glibc" or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    return bool(
        libc.mallopt(_M_MMAP_THRESHOLD, threshold)
        and libc.mallopt(_M_TRIM_THRESHOLD, 2 * threshold)
    )
