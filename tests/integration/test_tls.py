"""TLS: certificates are verified by default; `client.insecure: true` turns that off, with a
warning recorded in the results. A self-signed certificate made with the openssl CLI."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fakeserver import FakeServer
from infbench.cli import app

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeServer]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with FakeServer(ssl_context=context) as server:
        yield server


def run(tmp_path: Path, url: str, sender: str, *extra: str) -> tuple[int, dict[str, object], str]:
    path = tmp_path / "tls.yaml"
    path.write_text(
        f"""version: 1
name: tls
target: {{kind: url, url: "{url}"}}
request: {{method: GET, path: /, timeout: 2s}}
client: {{sender: {sender}}}
workload:
  phases:
    - {{name: p, duration: 0.5s, arrival: {{process: constant, rate: 10}}}}
"""
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "-q", *extra])
    runs = list(out.glob("*/run.json"))
    data = json.loads(runs[0].read_text()) if runs else {}
    return result.exit_code, data, result.output


@pytest.mark.parametrize("sender", ["aiohttp", "httpx"])
def test_a_self_signed_certificate_is_refused_by_default(
    sender: str, https_server: FakeServer, tmp_path: Path
) -> None:
    code, data, output = run(tmp_path, https_server.url, sender)
    assert code == 0, output
    (phase,) = data["phases"]  # type: ignore[misc]
    assert phase["ok"] == 0 and phase["errors"] == {"connect": phase["completed"]}
    assert https_server.count() == 0  # no request got through the handshake
    assert not any("TLS" in w for w in data["warnings"])  # type: ignore[attr-defined]


@pytest.mark.parametrize("sender", ["aiohttp", "httpx"])
def test_insecure_turns_verification_off_and_says_so(
    sender: str, https_server: FakeServer, tmp_path: Path
) -> None:
    code, data, output = run(tmp_path, https_server.url, sender, "--set", "client.insecure=true")
    assert code == 0, output
    (phase,) = data["phases"]  # type: ignore[misc]
    assert phase["ok"] == phase["completed"] == 5
    assert any("TLS certificate verification was off" in w for w in data["warnings"])  # type: ignore[attr-defined]
    assert "TLS certificate verification was off" in output


def test_the_fast_sender_refuses_https_before_any_load(
    https_server: FakeServer, tmp_path: Path
) -> None:
    code, _, output = run(tmp_path, https_server.url, "fast")
    assert code == 2 and "client.sender: aiohttp" in " ".join(output.split())
