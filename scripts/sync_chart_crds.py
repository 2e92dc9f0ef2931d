"""Copy the generated CRDs from crds/ into the Helm chart.

Helm reads no file outside a chart, so the chart carries copies under
``files/crds/`` that its CRD template loads. tests/chart fails when the
copies and crds/ differ; this script is the fix. It copies and deletes only:
the CRDs themselves come from ``redis-audiences crds``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "crds"
TARGET = ROOT / "charts" / "redis-audiences" / "files" / "crds"


def sync(source: Path = SOURCE, target: Path = TARGET) -> list[str]:
    """Make ``target`` hold exactly the CRDs of ``source``; list the changes."""
    target.mkdir(parents=True, exist_ok=True)
    wanted = {path.name: path for path in source.glob("*.yaml")}
    changes = []

    for stale in sorted({p.name for p in target.glob("*.yaml")} - set(wanted)):
        (target / stale).unlink()
        changes.append(f"removed {stale}")

    for name, path in sorted(wanted.items()):
        copy = target / name
        if not copy.exists() or copy.read_bytes() != path.read_bytes():
            shutil.copyfile(path, copy)
            changes.append(f"copied {name}")
    return changes


def main() -> int:
    for change in sync():
        print(change)
    return 0


if __name__ == "__main__":
    sys.exit(main())
