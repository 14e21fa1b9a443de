"""``registry gc``: list (by default) or remove what the retention rules let go."""

from __future__ import annotations

from typing import Annotated

import typer

from registry.console import ConfigOption, JsonOption, console, get_config, print_json


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover


def gc(
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run/--apply", help="List what would go (the default), or remove it.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Remove failed and abandoned uploads and runs, bundles of versions retired longer than
    retention.retired_days, and objects of unknown versions; never a champion, the version a
    rollback would restore, or a version still shadowed. A dry run unless --apply.
    Exit codes: 0 done, 1 the store or the database failed, 2 bad configuration."""
    from registry.db import opened_engine
    from registry.retention import apply_gc, plan_gc

    settings = get_config(config)
    with opened_engine(settings.database) as engine:
        plan = plan_gc(settings, engine)
        freed = 0 if dry_run else apply_gc(settings, engine, plan)
    if as_json:
        print_json({"dry_run": dry_run, "bytes": plan.size, "freed": freed,
                    "items": [{"kind": i.kind, "location": i.location, "size": i.size,
                               "version_id": i.version_id} for i in plan.items],
                    "kept": plan.kept})
        return
    verb = "would remove" if dry_run else "removed"
    for item in plan.items:
        console.print(f"{verb} {item.kind:<8} {item.location} ({_size(item.size)})")
    for version_id, why in plan.kept.items():
        console.print(f"kept     retired  {version_id}: {why}")
    total = plan.size if dry_run else freed
    console.print(f"{verb} {len(plan.items)} item(s), {_size(total)}"
                  + (" (dry run: --apply removes them)" if dry_run and plan.items else ""))
