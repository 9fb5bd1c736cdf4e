"""Storage checks: free space where the lab writes (data dir, temp dir), and the last backup."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ailab.ops.backup import read_last
from ailab.ops.doctor.base import Outcome, check, fail, passed, warn, worst
from ailab.ops.doctor.context import DoctorContext, ago
from ailab.ops.doctor.cron import CronError, cron_period

GIB = 1 << 30


def existing(path: Path) -> Path:
    """The path, or its nearest existing parent (a data dir that does not exist yet)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _size(n: float) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def disk_outcome(ctx: DoctorContext, label: str, path: Path) -> Outcome:
    st = os.statvfs(existing(path))
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize  # what an unprivileged writer can still use
    ratio = free / total if total else 0.0
    t = ctx.thresholds
    saw = f"{label} {path.absolute()}: {_size(free)} free of {_size(total)} ({ratio:.0%})"
    if ratio < t.disk_fail_ratio or free < t.disk_min_free_bytes:
        return fail(saw)
    if ratio < t.disk_warn_ratio:
        return warn(saw)
    return passed(saw)


@check("disk", "Enough free space for the data dir and the temp dir", "disk-nearly-full")
def disk_check(ctx: DoctorContext) -> Outcome:
    places = {"data dir": ctx.data_dir, "temp dir": ctx.temp_dir()}
    seen: dict[int, str] = {}
    outcomes: list[Outcome] = []
    for label, path in places.items():
        dev = os.stat(existing(path)).st_dev
        if dev in seen:
            outcomes.append(passed(f"{label} {path}: same filesystem as the {seen[dev]}"))
            continue
        seen[dev] = label
        outcomes.append(disk_outcome(ctx, label, path))
    return worst(
        outcomes,
        "; ".join(o.saw for o in outcomes),
        "free space (old backups, `docker system prune`, logs), or point TMPDIR / --data-dir at a "
        "larger filesystem",
    )


# -- backups --------------------------------------------------------------------------------------------


def parse_when(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@check("backups", "The last backup succeeded and is recent", "backups-failing")
def backups_check(ctx: DoctorContext) -> Outcome:
    schedule = ctx.config.backup.schedule
    period = timedelta(seconds=ctx.thresholds.default_backup_period_s)
    plan = "no backup.schedule set (expecting one a week)"
    if schedule:
        try:
            period = cron_period(schedule)
            plan = f"schedule {schedule!r}"
        except CronError as exc:
            return fail(f"backup.schedule {schedule!r} is not a cron expression: {exc}")
    last = read_last(ctx.loaded)
    if last is None:
        return warn(f"no backup has ever run; {plan}", "run `ailab backup` now, and set backup.schedule")
    finished = parse_when(last.get("finished_at"))
    when = f"at {finished:%Y-%m-%d %H:%M} UTC" if finished else "at an unknown time"
    if not last.get("ok"):
        return fail(
            f"the last backup {when} failed: {last.get('error') or 'no error recorded'}",
            "fix the cause named above (space, permissions, a component that did not dump), then "
            "`ailab backup`",
        )
    if finished is None:
        return warn("the last backup record has no finish time", "run `ailab backup`")
    age = ctx.clock() - finished.timestamp()
    where = f" → {last.get('path')}" if last.get("path") else ""
    if age > 2 * period.total_seconds():
        return warn(
            f"the last good backup is {ago(age)} old ({when}{where}); {plan}",
            "backup.schedule runs inside `ailab up`: is the lab running, and what does its log say? "
            "Then `ailab backup`",
        )
    archive = last.get("path")
    if isinstance(archive, str) and archive and "://" not in archive and not Path(archive).exists():
        return warn(f"the last backup {when} succeeded but {archive} is gone", "run `ailab backup`")
    return passed(f"last backup {when} ({ago(age)} ago){where}; {plan}")


CHECKS = [disk_check, backups_check]
