"""``python -m trainer --config-file RESOLVED.json --out DIR``: train one model, seal its bundle.

Prints exactly one JSON line on stdout (the result, or ``{"status": "error", "message"}``);
everything else (our logs, JAX, Orbax, W&B) goes to stderr. Exit codes: 0 success, 1 training
failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError

from trainer import jsonsafe

EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors answer in JSON too
        self.print_usage(sys.stderr)
        _emit({"status": "error", "message": f"bad usage: {message}"})
        raise SystemExit(EXIT_BAD_CONFIG)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m trainer",
        description="Train one model from a resolved config and write its sealed artefact "
        "bundle. Prints one JSON line on stdout; logs go to stderr.",
    )
    parser.add_argument(
        "--config-file", required=True, type=Path, help="resolved config JSON {train, run}"
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="bundle directory to create (must not exist or be empty)",
    )
    parser.add_argument("--debug", action="store_true", help="log at DEBUG, show tracebacks")
    return parser


_result_stream = sys.stdout


def _emit(payload: dict) -> None:
    """The one result line, strict JSON: a metric that does not exist (NaN) is null."""
    _result_stream.write(jsonsafe.dumps(payload, default=str) + "\n")
    _result_stream.flush()


def _stdout_to_stderr() -> None:
    """Send everything written to stdout (ours, libraries', child processes') to stderr."""
    global _result_stream
    sys.stdout.flush()
    _result_stream = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr


def format_validation_error(error: ValidationError) -> str:
    """``train.forward_days: Input should be greater than or equal to 1; ...``"""
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "config"
        parts.append(f"{where}: {item['msg']}")
    return "invalid config: " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = _parser().parse_args(argv)
    _stdout_to_stderr()
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from trainer.config import ResolvedConfig

    try:
        raw = json.loads(args.config_file.read_text(encoding="utf-8"))
        config = ResolvedConfig.model_validate(raw)
    except OSError as exc:
        _emit({"status": "error", "message": f"cannot read --config-file: {exc}"})
        return EXIT_BAD_CONFIG
    except json.JSONDecodeError as exc:
        _emit({"status": "error", "message": f"{args.config_file} is not JSON: {exc}"})
        return EXIT_BAD_CONFIG
    except ValidationError as exc:
        _emit({"status": "error", "message": format_validation_error(exc)})
        return EXIT_BAD_CONFIG

    from trainer.compilation_cache import enable_compilation_cache

    enable_compilation_cache(Path(config.run.datasets_root).absolute().parent / "cache" / "jax")
    from trainer.bundle import BundleError
    from trainer.train import train_and_evaluate
    from trainer.window import WindowError

    try:
        result = train_and_evaluate(config, args.out, started=started)
    except (BundleError, WindowError) as exc:
        _emit({"status": "error", "message": str(exc)})
        return EXIT_BAD_CONFIG
    except Exception as exc:  # a failure: one actionable line on stdout, the trace on stderr
        logging.getLogger("trainer").exception("training failed")
        _emit({"status": "error", "message": f"training failed: {type(exc).__name__}: {exc}"})
        return EXIT_FAILED
    _emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
