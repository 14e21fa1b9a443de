"""JAX's persistent compilation cache: a fresh process loads what an earlier one compiled.

Every ``python -m trainer`` (one per zoo spec), ``shadow run`` and ``registry serve`` is a fresh
process that would otherwise compile the same programs again: about 1.8 s of the default
training run's 7 s on a 2-core machine. The cache holds code that JAX will run, so it is trusted
(JAX's documentation says as much): it lives beside the artefacts, is created private (0700),
and is not used when it belongs to someone else or others may write to it.
``PODIUM_JAX_CACHE_DIR`` moves it; set it to the empty string to turn it off.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "PODIUM_JAX_CACHE_DIR"
_enabled: Path | None = None


def enable_compilation_cache(default: str | Path) -> Path | None:
    """Use ``$PODIUM_JAX_CACHE_DIR`` (else ``default``) as JAX's persistent cache; return it,
    or None when the cache is off or unsafe (said once, as a warning). Call before compiling;
    the first directory a process enables is the one it keeps."""
    global _enabled
    if _enabled is not None:
        return _enabled
    value = os.environ.get(ENV)
    if value == "":
        return None
    directory = Path(value if value is not None else default).absolute()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError as exc:
        log.warning("JAX compilation cache off: cannot create %s (%s)", directory, exc.strerror)
        return None
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        log.warning("JAX compilation cache off: %s is not private to this user (others could "
                    "write code into it); make it 0700 and yours, or set %s", directory, ENV)
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    _enabled = directory
    return directory
