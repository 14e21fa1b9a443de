"""What the three CLIs share: the ``--config`` option, rich output, and errors without tracebacks.

Exit codes (docs/architecture.md): 0 success; 1 the operation failed or was refused; 2 bad usage or
configuration. A user error prints one line on stderr; ``--debug`` (or ``PODIUM_DEBUG=1``)
shows the traceback of an unexpected failure.
"""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.exceptions import TyperException

from registry.errors import PodiumError

if TYPE_CHECKING:
    from registry.config import PodiumConfig

LogLevel = Literal["debug", "info", "warning", "error"]

# Piped output (CI logs, files) gets wide tables instead of rich's 80-column default.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Configuration file (default: $PODIUM_CONFIG, "
                 "./podium.yaml, ./sample.yaml).", show_default=False, metavar="PATH"),
]
JsonOption = Annotated[bool, typer.Option(
    "--json", help="Print JSON on stdout (for scripts and CI) instead of a table.")]
TrackOption = Annotated[str | None, typer.Option(
    "--track", metavar="TRACK", help="Only this track.", show_default=False)]
# The commands that go through the REST API
UrlOption = Annotated[str, typer.Option("--url", envvar="PODIUM_URL", metavar="URL",
                                        help="The registry's URL ($PODIUM_URL).")]
TokenOption = Annotated[str | None, typer.Option("--token", envvar="PODIUM_TOKEN",
                                                 metavar="TOKEN",
                                                 help="A bearer token ($PODIUM_TOKEN).",
                                                 show_default=False)]


def _show_version(value: bool) -> None:
    if value:
        from importlib import metadata

        print(f"podium {metadata.version('podium')}")
        raise typer.Exit(0)


VersionOption = Annotated[bool, typer.Option(
    "--version", callback=_show_version, is_eager=True, help="Show the version and exit.")]
# ``run`` takes --debug off the command line wherever it stands; declared only to be listed.
DebugOption = Annotated[bool, typer.Option(
    "--debug", help="On an unexpected failure, show the traceback (also PODIUM_DEBUG=1).")]


def new_app(help_text: str, *, completion: bool = False) -> typer.Typer:
    """A CLI (``completion``: with --install-completion / --show-completion, for the top
    level of each command)."""
    return typer.Typer(help=help_text, no_args_is_help=True, add_completion=completion,
                       pretty_exceptions_enable=False, rich_markup_mode=None,
                       context_settings={"help_option_names": ["-h", "--help"]})


def get_config(path: Path | None) -> PodiumConfig:
    """The configuration, loaded when a command reads it: the schema (pydantic, SQLAlchemy's
    URL parser) is not imported for ``--help`` or the commands that go through the REST API."""
    from registry.config import load_config

    return load_config(path)


def safe_text(value: Any) -> Text:
    """``value`` as inert text: never read as rich markup, control characters shown escaped.

    Audit reasons, token names, error messages and ids come from users; printed raw, ``[/x]``
    breaks rich's markup parser and ESC/OSC sequences, CR or LF reach the operator's terminal.
    """
    raw = "" if value is None else str(value)
    return Text("".join(_visible(ch) for ch in raw))


def _visible(ch: str) -> str:
    if unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}:
        code = ord(ch)
        return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
    return ch


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A table whose title and cells are shown as inert text (see ``safe_text``)."""
    out = Table(title=None if title is None else safe_text(title), title_justify="left",
                header_style="bold")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*(safe_text(cell) for cell in row))
    return out


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout, whatever the terminal's width."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def check_track(track: str | None, known: Sequence[str]) -> None:
    """A usage error (exit 2) for a track the registry does not know."""
    if track is not None and track not in known:
        listed = ", ".join(known) if known else "none yet"
        raise typer.BadParameter(f"no track named {track!r} (tracks: {listed})",
                                 param_hint="'--track'")


def fail(message: str, *, exit_code: int = 1) -> typer.Exit:
    err_console.print(f"error: {message}", markup=False, soft_wrap=True)
    return typer.Exit(exit_code)


def run(app: typer.Typer, argv: Sequence[str] | None = None) -> int:
    """Run a CLI; map every failure to one stderr line and a meaningful exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("PODIUM_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    try:
        # Without standalone mode, typer hands back the code of a raised typer.Exit.
        result = app(args=args, standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except TyperException as exc:  # usage errors (exit 2), bad parameters
        exc.show(file=sys.stderr)
        return exc.exit_code
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except PodiumError as exc:
        err_console.print(f"error: {exc.detail}", markup=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as exc:
        if debug:
            raise
        err_console.print(f"internal error: {type(exc).__name__}: {exc} "
                          "(rerun with --debug for the traceback)", markup=False,
                          soft_wrap=True)
        return 1
    return result if isinstance(result, int) else 0
