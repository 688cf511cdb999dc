"""Verdict rows record the day of the case they were given for (SQLite): migration 0008."""

from __future__ import annotations

from pathlib import Path

from storage_support import check_verdict_case_day_migration


def test_migration_0008_gives_stored_verdicts_their_case_day_and_downgrades(
    tmp_path: Path,
) -> None:
    check_verdict_case_day_migration(f"sqlite:///{tmp_path / 'old.db'}")
