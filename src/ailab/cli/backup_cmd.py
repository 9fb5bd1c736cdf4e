"""`ailab backup` and `ailab restore` (docs/operations.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ailab.cli.common import ConfigOpt, DataDirOpt, load_or_exit

KEY_WARNING = (
    "warning: this archive will hold the secret store's key next to the secrets it decrypts: "
    "anyone who reads the archive reads every secret. Keep it encrypted and offline."
)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def backup(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="archive to write [<backup dir>/ailab-backup-<time>.tar.gz]"),
    ] = None,
    keep: Annotated[
        int | None,
        typer.Option(min=0, help="keep the newest N archives in that folder [backup.keep, 7]; 0: all"),
    ] = None,
    include_key: Annotated[
        bool, typer.Option("--include-key", help="also store the local secret store's key (with a warning)")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress lines")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Write one archive of the lab (databases, vector stores, uploads, config, secrets), while it runs."""
    from ailab.ops import create_backup, human

    loaded = load_or_exit(config, data_dir)
    with_key = include_key or loaded.config.backup.include_key
    if with_key:
        _say(KEY_WARNING)
    try:
        result = create_backup(
            loaded, out=out, keep=keep, include_key=with_key, progress=None if quiet else _say
        )
    except Exception as exc:  # every failure is also recorded in last.json
        typer.echo(f"error: backup failed: {exc}", err=True)
        raise typer.Exit(1) from None
    for note in result.manifest.notes if quiet else []:
        _say(f"note: {note}")
    typer.echo(
        f"backup written: {result.path} ({human(result.size)}, {len(result.manifest.members)} members, "
        f"{result.seconds:.1f} s)"
    )


def restore(
    file: Annotated[Path, typer.Argument(help="an archive written by `ailab backup`")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="verify the archive and show what would be restored")
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Verify an archive completely, then restore it into this (stopped) lab."""
    from ailab.ops import ArchiveError, DatabaseError, restore_archive

    loaded = load_or_exit(config, data_dir)
    try:
        report = restore_archive(file, loaded, dry_run=dry_run, progress=_say)
    except (ArchiveError, DatabaseError, OSError) as exc:
        typer.echo(f"error: restore refused: {exc}", err=True)
        raise typer.Exit(1) from None
    for line in report.actions:
        typer.echo(("would restore " if dry_run else "") + line)
    for note in report.notes:
        typer.echo(f"note: {note}")
    if dry_run:
        typer.echo(f"{file}: verified, every checksum matches; nothing was changed (dry run)")
        return
    if report.previous is not None:
        typer.echo(f"the replaced state is kept in {report.previous} (delete it once the lab is fine)")
    for problem in report.problems:
        typer.echo(f"not restored: {problem}", err=True)
    typer.echo(f"restored {file} into {loaded.data_dir} in {report.seconds:.1f} s")
    if report.problems:
        raise typer.Exit(1)
