"""The serving node's heap: glibc's malloc set for a long-running server of large messages.

Left to itself, glibc raises its mmap threshold each time a large block is freed (up to 32 MB),
so the bulk feed's arrays of a few MB each come from the heap afterwards and stay there,
fragmented, when freed; and it gives threads arenas of their own, up to eight per core. With the
threshold fixed every large block goes back to the system when it is freed, and two arenas serve
the node's few busy threads. `bench/scale.py` measures the node's peak RSS with both.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_MMAP_THRESHOLD = -3  # mallopt's parameters, from glibc's malloc.h
M_ARENA_MAX = -8
SETTINGS = {  # parameter, value, and the environment variable an operator may set it by instead
    M_MMAP_THRESHOLD: (128 * 1024, "MALLOC_MMAP_THRESHOLD_"),  # glibc's starting value, held
    M_ARENA_MAX: (2, "MALLOC_ARENA_MAX"),
}


def tune_malloc() -> list[str]:
    """On glibc, hold the mmap threshold and cap the arenas, each unless the environment already
    sets it; elsewhere nothing. Returns the environment variables' names of those it set."""
    if platform.libc_ver()[0] != "glibc":
        return []
    libc = ctypes.CDLL(None)  # the process's own C library
    done = []
    for parameter, (value, variable) in SETTINGS.items():
        if variable not in os.environ and libc.mallopt(parameter, value) == 1:
            done.append(variable)
    return done
