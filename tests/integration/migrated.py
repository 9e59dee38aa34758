"""A service's database as an older release left it, for tests of what a migration does to
data already there."""

from __future__ import annotations

import shutil
from pathlib import Path

from shared.runtime.migrations import RUNTIME_MIGRATIONS


def migrations_before(
    component: str, folder: Path, version: str, *, scratch: Path
) -> list[tuple[str, Path]]:
    """What `migrate` takes to bring a database to just below `component`'s `version`
    ("0008"): the runtime's migrations, and copies of the component's earlier ones."""
    before = scratch / component
    before.mkdir()
    for migration in sorted(folder.glob("*.sql")):
        if migration.name < version:
            shutil.copy(migration, before / migration.name)
    return [("runtime", RUNTIME_MIGRATIONS), (component, before)]
