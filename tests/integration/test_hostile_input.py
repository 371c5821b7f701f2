"""Hostile input through the CLI: path traversal, bad trace files, damaged result directories
and secrets. Every case ends with exit 2 and a message naming the file (or key) and reason, or
with nothing secret anywhere infbench writes."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fakeserver import FakeServer
from infbench.cli import app

runner = CliRunner()
GOLDEN = Path(__file__).parents[1] / "golden"
PREFORK = str(Path(__file__).parents[1] / "servers" / "prefork.py")


def flat(output: str) -> str:
    return output.replace("\n", "")  # rich wraps long paths mid-word


def scenario_text(url: str = "http://127.0.0.1:9", name: str = "hostile", extra: str = "") -> str:
    return f"""version: 1
name: {name}
target: {{kind: url, url: "{url}"}}
{extra}
workload:
  phases: [{{name: p, duration: 0.3s, arrival: {{process: constant, rate: 10}}}}]
"""


# --- names and paths -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../escape", "a/b", "/abs", "..", ".hidden", "x" * 65, "a b"])
def test_a_scenario_name_cannot_leave_the_results_root(tmp_path: Path, name: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(scenario_text(name=json.dumps(name)))
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "name:" in result.output
    result = runner.invoke(app, ["run", str(tmp_path / "s.yaml"), "--set", f"name={name}"])
    assert result.exit_code == 2
    assert not (tmp_path / "escape").exists() and not (tmp_path / "out").exists()


def test_the_run_directory_is_always_a_child_of_out(tmp_path: Path) -> None:
    with FakeServer() as server:
        path = tmp_path / "s.yaml"
        path.write_text(scenario_text(server.url, name="child"))
        out = tmp_path / "deep" / ".." / "out"
        result = runner.invoke(app, ["run", str(path), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "out").iterdir()
    assert run_dir.name.endswith("-child") and run_dir.parent.resolve() == out.resolve()


@pytest.mark.parametrize(
    "request_text",
    [
        "request: {dataset: {path: ../../etc/passwd, format: text}}",
        "request: {dataset: {path: data/../../secret.jsonl}}",
    ],
)
def test_a_dataset_path_cannot_climb_out_of_the_scenario_folder(
    tmp_path: Path, request_text: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(scenario_text(extra=request_text))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "request.dataset.path" in result.output and "absolute path" in flat(result.output)


def test_a_trace_path_cannot_climb_out_but_an_absolute_one_may(tmp_path: Path) -> None:
    trace = tmp_path / "elsewhere" / "t.csv"
    trace.parent.mkdir()
    trace.write_text("timestamp\n0\n0.1\n0.2\n")
    folder = tmp_path / "scenarios"
    folder.mkdir()
    for where, code in (("../elsewhere/t.csv", 2), (str(trace), 0)):
        path = folder / "s.yaml"
        path.write_text(
            f"""version: 1
name: trace
target: {{kind: url, url: "http://127.0.0.1:9"}}
workload:
  phases: [{{name: p, arrival: {{process: trace, path: "{where}"}}}}]
"""
        )
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == code, result.output


# --- trace files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("timestamp\n1\n3\n2\n", "trace.csv:4: timestamp '2' is earlier than 3.0"),
        ("timestamp\n-1\n2\n", "trace.csv:2: timestamp '-1' is negative"),
        ("timestamp\n1\nnan\n", "trace.csv:3: timestamp 'nan' is not finite"),
        ("timestamp\n1\ninf\n", "trace.csv:3: timestamp 'inf' is not finite"),
        ("timestamp\n1\nabc\n", "trace.csv:3: timestamp 'abc' is not a number"),
    ],
    ids=["unsorted", "negative", "nan", "infinite", "not-a-number"],
)
def test_bad_trace_timestamps_exit_2_with_the_line(
    tmp_path: Path, content: str, problem: str
) -> None:
    (tmp_path / "trace.csv").write_text(content)
    path = tmp_path / "s.yaml"
    path.write_text(
        """version: 1
name: trace
target: {kind: url, url: "http://127.0.0.1:9"}
workload:
  phases: [{name: p, duration: 5s, arrival: {process: trace, path: trace.csv}}]
"""
    )
    for command in (["validate", str(path)], ["run", str(path), "--out", str(tmp_path / "o")]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert problem in flat(result.output)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


# --- damaged result directories ------------------------------------------------------------------


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda d: (d / name).write_bytes(data)


def _edit_run(**changes: object) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        data = json.loads((d / "run.json").read_text())
        data.update(changes)
        (d / "run.json").write_text(json.dumps(data))

    return edit


def _replace_with_dir(name: str) -> Callable[[Path], None]:
    def replace(d: Path) -> None:
        (d / name).unlink()
        (d / name).mkdir()

    return replace


COMPARE_DAMAGE: dict[str, Any] = {
    "run.json empty": (_write("run.json", b""), "run.json"),
    "run.json binary": (_write("run.json", os.urandom(64) + b"\xff"), "run.json"),
    "run.json a list": (_write("run.json", b"[1, 2]"), "run.json"),
    "run.json a directory": (_replace_with_dir("run.json"), "run.json"),
    "phases not a list": (_edit_run(phases="x"), "phases"),
    "phase without latency": (_edit_run(phases=[{"name": "steady"}]), "run.json"),
    "latency.hlog binary": (_write("latency.hlog", b"\x00\xff" * 100), "latency.hlog"),
    "latency.hlog bad payload": (
        _write("latency.hlog", b"Tag=steady/latency,0.000,1.000,1.0,!!notbase64!!\n"),
        "latency.hlog",
    ),
    "latency.hlog missing": (lambda d: (d / "latency.hlog").unlink(), "latency.hlog"),
}


def cases(damage: dict[str, Any]) -> list[Any]:
    """pytest params named by the dict's keys, keeping any marks."""
    out = []
    for key, value in damage.items():
        if hasattr(value, "marks"):  # already a pytest.param (a namedtuple itself)
            out.append(pytest.param(*value.values, marks=value.marks, id=key))
        else:
            out.append(pytest.param(*value, id=key))
    return out


@pytest.mark.parametrize(("hurt", "named"), cases(COMPARE_DAMAGE))
def test_compare_names_the_damaged_file(
    tmp_path: Path, hurt: Callable[[Path], None], named: str
) -> None:
    cand = tmp_path / "cand"
    shutil.copytree(GOLDEN / "cand", cand)
    hurt(cand)
    result = runner.invoke(app, ["compare", str(GOLDEN / "base"), str(cand)])
    assert result.exit_code == 2, result.output
    message = flat(result.output)
    assert message.startswith("error:") and named in message and str(cand.name) in message


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("real")
    with FakeServer(status=(200, 200, 503)) as server:
        path = folder / "s.yaml"
        path.write_text(scenario_text(server.url, name="real"))
        result = runner.invoke(app, ["run", str(path), "--out", str(folder / "out"), "-q"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (folder / "out").iterdir()
    return run_dir


def _gzip_of(text: bytes) -> bytes:
    return gzip.compress(text)


REPORT_DAMAGE: dict[str, Any] = {
    "run.json missing": (lambda d: (d / "run.json").unlink(), "run.json"),
    "run.json binary": (_write("run.json", b"\xff\x00garbage"), "run.json"),
    "timings not an object": (_edit_run(timings=3), "run.json"),
    "phases not a list": (_edit_run(phases={"a": 1}), "run.json"),
    "requests.csv.gz not gzip": (_write("requests.csv.gz", b"not gzip at all"), "requests.csv.gz"),
    "requests.csv.gz wrong columns": (
        _write("requests.csv.gz", _gzip_of(b"a,b\n1,2\n")),
        "requests.csv.gz",
    ),
    "requests.csv.gz bad numbers": (
        _write(
            "requests.csv.gz",
            _gzip_of(
                b"seq,phase,intended_ns,sent_ns,first_byte_ns,done_ns,status,error,bytes_out,"
                b"bytes_in\n1,p,x,1,1,zz,200,,0,0\n"
            ),
        ),
        "requests.csv.gz",
    ),
    "timeseries.csv binary": (_write("timeseries.csv", b"\xff\xfe\x00\x01"), "timeseries.csv"),
    "latency.hlog binary": (_write("latency.hlog", b"\x00\xff" * 100), "latency.hlog"),
    "latency.hlog a directory": (_replace_with_dir("latency.hlog"), "latency.hlog"),
}


@pytest.mark.parametrize(("hurt", "named"), cases(REPORT_DAMAGE))
def test_report_names_the_damaged_file(
    real_run: Path, tmp_path: Path, hurt: Callable[[Path], None], named: str
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(real_run, copy)
    hurt(copy)
    result = runner.invoke(app, ["report", str(copy)])
    assert result.exit_code == 2, (result.output, result.exception)
    message = flat(result.output)
    assert message.startswith("error:") and named in message


# --- secrets -------------------------------------------------------------------------------

TOKEN = "tok-3f9c1e-SECRET-from-env"
LITERAL = "lit-88aa-SECRET-on-the-command-line"
ARGV_KEY = "argv-77bb-SECRET-api-key"


def test_no_secret_reaches_any_file_or_the_console(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text(
        f"""version: 1
name: secret
target:
  kind: command
  command: ["{sys.executable}", "{PREFORK}", "{{port}}", "0", "--api-key", "{ARGV_KEY}"]
  url: "http://127.0.0.1:{{port}}"
  env: {{HF_TOKEN: "${{API_TOKEN}}", OTHER_TOKEN: "{LITERAL}"}}
request:
  method: GET
  path: /
  headers: {{Authorization: "Bearer ${{API_TOKEN}}"}}
workload:
  phases: [{{name: p, duration: 0.5s, arrival: {{process: constant, rate: 10}}}}]
"""
    )
    env = {"API_TOKEN": TOKEN}
    args = ["run", str(path), "--out", str(tmp_path / "out"), "--json"]
    args += ["--set", f"request.headers.X-Api-Key={LITERAL}"]
    monkeypatch.setattr(sys, "argv", ["infbench", *args])  # what run.json's `command` records
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "out").iterdir()
    texts = {"console": result.output}
    for file in run_dir.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            texts[file.name] = (gzip.decompress(data) if file.suffix == ".gz" else data).decode(
                "utf-8", "replace"
            )
    assert {"run.json", "server.log", "report.html", "requests.csv.gz"} <= set(texts)
    for secret in (TOKEN, LITERAL, ARGV_KEY):
        leaks = [name for name, text in texts.items() if secret in text]
        assert not leaks, f"{secret} found in {leaks}"
    run = json.loads((run_dir / "run.json").read_text())
    assert "<redacted>" in " ".join(run["command"])
    assert run["scenario"]["request"]["headers"]["Authorization"] == "Bearer ${API_TOKEN}"
    assert "<redacted>" in run["target"]["command"]


@pytest.mark.parametrize(
    "request_text",
    [
        'request: {timeout: "${API_TOKEN}"}',
        'request: {method: "${API_TOKEN}"}',
        "request: {headers: {Authorization: 12345678}}",
    ],
)
def test_a_validation_error_never_echoes_a_secret(tmp_path: Path, request_text: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(scenario_text(extra=request_text))
    result = runner.invoke(app, ["validate", str(path)], env={"API_TOKEN": TOKEN})
    assert result.exit_code == 2, result.output
    assert TOKEN not in result.output and "12345678" not in result.output
    assert "not shown" in flat(result.output)
