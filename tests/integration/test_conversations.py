"""Conversations end to end (DESIGN §5c): sessions of turns against a fake chat server that
records every request, and trace replay with lengths.

What is checked is exact (the bodies, the order, the intended times) or a lower bound that
the design guarantees (a turn is never sent before its predecessor's end plus the think
time), never a tight timing.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chatserver import ChatServer, Exchange
from infbench.cli import app

runner = CliRunner(env={"COLUMNS": "100"})
TRACES = Path(__file__).parents[2] / "scenarios" / "llm" / "traces"
CHATS = [
    {"conversations": [{"from": "human", "value": "alpha one"}, {"from": "gpt", "value": "rec a1"},
                       {"from": "human", "value": "alpha two"}, {"from": "gpt", "value": "rec a2"},
                       {"from": "human", "value": "alpha three"}]},
    {"conversations": [{"from": "human", "value": "beta one"}, {"from": "gpt", "value": "rec b1"},
                       {"from": "human", "value": "beta two"}, {"from": "gpt", "value": "rec b2"}]},
]  # fmt: skip
THINK_S = 0.2


def run(
    tmp_path: Path, url: str, request: str, workload: str, client: str = "{connections: 8}"
) -> dict[str, Any]:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "chats.json").write_text(json.dumps(CHATS, indent=1))
    path = tmp_path / "chat.yaml"
    path.write_text(
        f"version: 1\nname: chat\ntarget: {{kind: url, url: '{url}'}}\n"
        f"request: {request}\nclient: {client}\nworkload: {workload}\n"
    )
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(path), "--out", str(out), "-q"])
    assert result.exit_code in (0, 4), result.output
    (run_dir,) = list(out.iterdir())
    data: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    with gzip.open(run_dir / "requests.csv.gz", "rt") as rows:
        data["_rows"] = list(csv.DictReader(rows))
    data["_output"] = result.output
    data["_report"] = (run_dir / "report.html").read_text()
    return data


def chat_request(history: str = "generated") -> str:
    return (
        "{api: openai-chat, model: m, max_tokens: 8, timeout: 5s, conversations: "
        f"{{path: chats.json, history: {history}, think: {THINK_S}s, order: sequential, "
        "session_header: X-Session-ID}}"
    )


WORKLOAD = "{seed: 3, phases: [{name: chat, duration: 3s, arrival: {process: constant, rate: 2}}]}"


def by_session(exchanges: list[Exchange]) -> dict[str, list[Exchange]]:
    sessions: dict[str, list[Exchange]] = defaultdict(list)
    for exchange in exchanges:
        sessions[exchange.headers["x-session-id"]].append(exchange)
    return sessions


def user_turns(session: int) -> list[str]:
    messages = CHATS[session % 2]["conversations"]
    return [m["value"] for m in messages if m["from"] == "human"]


@pytest.mark.parametrize("history", ["generated", "recorded"])
def test_turn_k_carries_the_k_minus_1_earlier_answers(tmp_path: Path, history: str) -> None:
    with ChatServer() as server:
        data = run(tmp_path, server.url, chat_request(history), WORKLOAD)
    sessions = by_session(server.exchanges)
    assert len(sessions) == 6  # 3 s at 2 sessions a second
    for name, exchanges in sessions.items():
        session = int(name.removeprefix("session-"))
        users = user_turns(session)
        recorded = [m["value"] for m in CHATS[session % 2]["conversations"] if m["from"] == "gpt"]
        for k, exchange in enumerate(exchanges):
            answers = [e.answer for e in exchanges[:k]] if history == "generated" else recorded
            expected = []
            for i in range(k):
                expected += [{"role": "user", "content": users[i]},
                             {"role": "assistant", "content": answers[i]}]  # fmt: skip
            expected.append({"role": "user", "content": users[k]})
            assert exchange.body["messages"] == expected, (name, k)
            assert exchange.body["max_tokens"] == 8 and exchange.body["stream"] is True
    figures = data["phases"][0]
    assert figures["sessions"]["started"] == 6
    assert figures["sessions"]["turns"] == len(server.exchanges)
    assert [t["turn"] for t in figures["turns"]][:2] == [1, 2]
    assert figures["turns"][0]["requests"] == 6


def test_a_turn_waits_for_its_predecessor_plus_the_think_time(tmp_path: Path) -> None:
    with ChatServer() as server:
        data = run(tmp_path, server.url, chat_request(), WORKLOAD)
    rows = {int(r["seq"]): r for r in data["_rows"]}
    later = [seq for seq in rows if seq >> 48]
    assert later  # some sessions had second turns
    for seq in later:
        before = rows[seq - (1 << 48)]
        intended, sent = int(rows[seq]["intended_ns"]), int(rows[seq]["sent_ns"])
        assert intended == int(before["done_ns"]) + int(THINK_S * 1e9)
        assert sent >= intended


def test_sessions_past_the_phase_end_are_counted_cut(tmp_path: Path) -> None:
    workload = (
        "{seed: 3, phases: [{name: chat, duration: 1s, arrival: {process: constant, rate: 4}}]}"
    )
    request = chat_request().replace(f"think: {THINK_S}s", "think: 2s")
    with ChatServer() as server:
        data = run(tmp_path, server.url, request, workload)
    sessions = data["phases"][0]["sessions"]
    assert sessions == {"started": 4, "completed": 0, "cut": 4, "failed": 0, "turns": 4}
    assert len(server.exchanges) == 4
    assert "turn" in data["_output"].lower()
    report = data["_report"]  # report.html holds the same sessions and TTFT by turn
    assert "<h3>TTFT by turn" in report and "<h3>sessions" in report
    assert "<td>4</td><td>0</td><td>4</td>" in report.split("<h3>sessions", 1)[1]


def test_trace_replay_sends_each_rows_lengths_at_its_time(tmp_path: Path) -> None:
    request = "{api: openai-completions, model: m, timeout: 5s, prompts: {from_trace: {}}}"
    workload = (
        "{seed: 3, phases: [{name: replay, arrival: {process: trace, "
        f"path: '{TRACES / 'sample.mooncake.jsonl'}', format: mooncake, window: 2s}}}}]}}"
    )
    with ChatServer() as server:
        data = run(tmp_path, server.url, request, workload)
    trace = [
        json.loads(line) for line in (TRACES / "sample.mooncake.jsonl").read_text().splitlines()
    ]
    due = [row for row in trace if row["timestamp"] < 2000]
    bodies = [e.body for e in server.exchanges]  # answers may come out of order
    lengths = sorted((len(b["prompt"].split()), b["max_tokens"]) for b in bodies)
    assert lengths == sorted((r["input_length"], r["output_length"]) for r in due)
    rows = sorted(data["_rows"], key=lambda r: int(r["seq"]))
    for row, record in zip(rows, due, strict=True):
        assert int(row["intended_ns"]) - int(rows[0]["intended_ns"]) == record["timestamp"] * 10**6
        assert int(row["sent_ns"]) - int(row["intended_ns"]) < 500_000_000  # the send lag, bounded


def test_compare_of_two_chat_runs_gives_per_turn_ttft_verdicts(tmp_path: Path) -> None:
    dirs = []
    for name, ttft_s in (("base", 0.02), ("cand", 0.08)):
        with ChatServer(ttft_s=ttft_s) as server:
            busy = WORKLOAD.replace("rate: 2", "rate: 10")  # 30 sessions: p50 is testable
            run(tmp_path / name, server.url, chat_request(), busy)
        (run_dir,) = list((tmp_path / name / "out").iterdir())
        dirs.append(str(run_dir))
    result = runner.invoke(app, ["compare", *dirs, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["metric"]: r for r in json.loads(result.output)["rows"]}
    first = rows["ttft_p50_turn1"]
    assert first["base"] < first["candidate"] and first["change"] > 1.0  # 20 ms -> 80 ms
    assert first["method"] == "bootstrap" and first["verdict"] == "worse"
    assert "ttft_p50_turn2" in rows


def _first_turns(exchanges: list[Exchange]) -> list[tuple[str, str]]:
    """(session id, first question) of every session, in session order."""
    firsts = {
        e.headers["x-session-id"]: e.body["messages"][0]["content"]
        for e in exchanges
        if len(e.body["messages"]) == 1
    }
    return sorted(firsts.items(), key=lambda item: int(item[0].removeprefix("session-")))


def test_same_file_and_seed_start_the_same_sessions_with_one_or_two_processes(
    tmp_path: Path,
) -> None:
    request = chat_request().replace("order: sequential", "order: random")
    workload = WORKLOAD.replace("seed: 3", "seed: 9")
    runs = []
    for name, client in (("one", "{connections: 8}"), ("two", "{connections: 8, processes: 2}")):
        with ChatServer() as server:
            data = run(tmp_path / name, server.url, request, workload, client)
        assert data["generator"]["processes"] == (2 if name == "two" else 1)
        runs.append((_first_turns(server.exchanges), data["phases"][0]["sessions"]))
    (one, sessions_one), (two, sessions_two) = runs
    assert len(one) == 6 and one == two  # the same sessions open with the same questions
    assert sessions_one["started"] == sessions_two["started"] == 6
    assert sessions_two["turns"] >= 6


def test_a_sweep_of_session_rates_runs_each_level(tmp_path: Path) -> None:
    with ChatServer() as server:
        run(tmp_path, server.url, chat_request(), WORKLOAD)  # writes chat.yaml and chats.json
        out = tmp_path / "sweep"
        args = ["sweep", str(tmp_path / "chat.yaml"), "--rates", "1,3", "--duration", "2s"]
        result = runner.invoke(app, [*args, "--out", str(out)])
        assert result.exit_code == 0, result.output
    (sweep_dir,) = list(out.iterdir())
    levels = json.loads((sweep_dir / "sweep.json").read_text())["levels"]
    assert [level["rate"] for level in levels] == [1.0, 3.0]
