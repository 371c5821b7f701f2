"""Secrets out of stored command lines and URLs."""

from __future__ import annotations

import pytest

from infbench.scenario.secrets import REDACTED, looks_secret, redact_argv, redact_url


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--set", "request.headers.Authorization=Bearer x"],
         ["--set", f"request.headers.Authorization={REDACTED}"]),
        (["--set=target.env.HF_TOKEN=abc"], [f"--set=target.env.HF_TOKEN={REDACTED}"]),
        (["--set", "workload.phases[0].arrival.rate=100"],
         ["--set", "workload.phases[0].arrival.rate=100"]),
        (["--api-key", "sk-1", "--port", "3000"], ["--api-key", REDACTED, "--port", "3000"]),
        (["--token=abc", "--password", "p"], [f"--token={REDACTED}", "--password", REDACTED]),
        (["env", "OPENAI_API_KEY=sk-2", "PATH=/bin"],
         ["env", f"OPENAI_API_KEY={REDACTED}", "PATH=/bin"]),
        (["--url", "http://user:pw@127.0.0.1:3000/x"],
         ["--url", f"http://user:{REDACTED}@127.0.0.1:3000/x"]),
        (["--set", "target.url=http://u:pw@h:1"], ["--set", f"target.url=http://u:{REDACTED}@h:1"]),
        (["serve", "model", "--set"], ["serve", "model", "--set"]),
    ],
)  # fmt: skip
def test_redact_argv(argv: list[str], expected: list[str]) -> None:
    assert redact_argv(argv) == expected


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("request.headers.Authorization", True),
        ("request.headers.x-api-key", True),
        ("request.headers.Cookie", True),
        ("target.env.HF_TOKEN", True),
        ("target.env.DB_PASSWORD", True),
        ("--client-secret", True),
        ("workload.seed", False),
        ("request.headers.Content-Type", False),
        ("target.env.MODEL_PATH", False),
    ],
)
def test_looks_secret(key: str, secret: bool) -> None:
    assert looks_secret(key) is secret


def test_urls_without_password_are_unchanged() -> None:
    assert redact_url("http://127.0.0.1:3000/x") == "http://127.0.0.1:3000/x"
    assert redact_url("http://user@h/") == "http://user@h/"
    assert redact_url("not a url @ all") == "not a url @ all"
    assert redact_url("http://[bad") == "http://[bad"
