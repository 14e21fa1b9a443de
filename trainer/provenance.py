"""Where a model came from: code version, git commit and the software environment."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import jax

from trainer import TRAINER_CODE_VERSION


def git_commit() -> str | None:
    """The commit of the checkout the trainer runs from (``-dirty`` if modified), or None."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = "-dirty" if status.returncode == 0 and status.stdout.strip() else ""
    return commit.stdout.strip() + dirty


def code_version() -> dict:
    return {"trainer_code_version": TRAINER_CODE_VERSION, "git_commit": git_commit()}


def device_used() -> str:
    devices = jax.devices()
    return f"{devices[0].platform}:{len(devices)}"


def environment() -> dict:
    import flax
    import optax
    import orbax.checkpoint

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "orbax_checkpoint": getattr(orbax.checkpoint, "__version__", None),
        "numpy": __import__("numpy").__version__,
        "devices": [str(device) for device in jax.devices()],
        "backend": jax.default_backend(),
    }
