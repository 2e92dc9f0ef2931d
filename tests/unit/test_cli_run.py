"""``redis-audiences run`` refuses bad flags in one line, before starting."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from redis_audiences.cli import main


@pytest.mark.parametrize(("args", "fragment"), [
    (["--metrics-port", "99999"], "'99999' is not a port"),
    (["--metrics-port", "http"], "'http' is not a port"),
    (["--liveness", "notaurl"], "'notaurl' is not a liveness URL"),
    (["--liveness", "http://0.0.0.0/healthz"], "is not a liveness URL"),
    (["-n", "bad_namespace!"], "'bad_namespace!' is not a namespace name"),
    (["-n", "Marketing"], "'Marketing' is not a namespace name"),
])  # fmt: skip
def test_run_refuses_a_bad_flag_naming_its_value(
    args: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", *args])

    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert fragment in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("flag", "value", "what"), [
    ("--metrics-port", "{port}", "metrics"),
    ("--liveness", "http://0.0.0.0:{port}/healthz", "liveness"),
])  # fmt: skip
def test_run_says_in_one_line_that_a_port_is_taken(
    flag: str,
    value: str,
    what: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    (tmp_path / "kubeconfig").write_text("{}")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]

        code = main(["run", flag, value.format(port=port)])

    assert code == 2
    assert capsys.readouterr().err == (
        f"redis-audiences: cannot serve {what} on port {port}: Address already in use.\n"
    )


def test_run_without_kubernetes_credentials_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))

    code = main(["run"])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("redis-audiences: no Kubernetes credentials: not in a cluster")
    assert err.count("\n") == 1
