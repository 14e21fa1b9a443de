"""CLI tables show users' strings as inert text: no rich markup, no terminal control."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from sqlalchemy import Engine

from registry import store
from registry.console import safe_text, table
from registry.db import write_session
from tests.registry.test_cli import cli

HOSTILE = "cleanup [/oops] [link=https://evil.example]x[/link] \x1b]0;pwned\x07\x1b[31m\r\nFAKE"


def _render(*cells: object) -> str:
    out = io.StringIO()
    Console(file=out, width=400, color_system=None).print(table("t", ["a"] * len(cells), [cells]))
    return out.getvalue()


def test_safe_text_escapes_control_characters_and_keeps_markup_literal() -> None:
    text = safe_text("a\x1b[31mb\r\n\x00\u202ec[/x]")
    assert text.plain == "a\\x1b[31mb\\x0d\\x0a\\x00\\u202ec[/x]"
    assert text.spans == []
    assert safe_text(None).plain == ""


def test_a_table_renders_hostile_cells_and_titles_verbatim_and_inert() -> None:
    rendered = _render(HOSTILE, 3, None)
    assert "[/oops]" in rendered and "[link=https://evil.example]x[/link]" in rendered
    assert not any(ch in rendered for ch in "\x1b\x07\r")
    assert "\\x1b]0;pwned\\x07" in rendered
    out = io.StringIO()
    Console(file=out, width=200).print(table("[/bad] title", ["a wide enough column"], [["b"]]))
    assert "[/bad] title" in out.getvalue()


def test_registry_audit_lists_a_hostile_reason(db_url: str, engine: Engine, tmp_path: Path,
                                               artefacts_root: Path,
                                               register: Callable[..., str]) -> None:
    version_id = register()
    with write_session(engine) as session:
        store.retire_version(session, version_id=version_id, actor="bot", reason=HOSTILE)
    (tmp_path / "podium.yaml").write_text("artefacts_root: artefacts\n")
    result = cli("audit", cwd=tmp_path, env={"PODIUM_DATABASE_URL": db_url})
    assert result.returncode == 0, result.stderr
    assert "[/oops]" in result.stdout and "pwned" in result.stdout
    assert not any(ch in result.stdout for ch in "\x1b\x07\r")
    assert "FAKE" in result.stdout and "\nFAKE" not in result.stdout
