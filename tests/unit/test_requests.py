"""RequestFactory: templates, body encoding, datasets, order, and the errors users meet."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from infbench.errors import InputError
from infbench.scenario.request import Dataset, Request
from infbench.wire import PreparedRequest
from infbench.workload.requests import RequestFactory, encode_path


def factory(tmp_path: Path, seed: int = 7, **request: Any) -> RequestFactory:
    return RequestFactory.from_scenario(Request(**request), tmp_path, seed)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def rows_file(tmp_path: Path) -> Path:
    rows = [{"text": f"review {i}", "n": i, "ok": i % 2 == 0, "tags": ["a", i]} for i in range(5)]
    return write_jsonl(tmp_path / "rows.jsonl", rows)


# --- bodies and headers ---------------------------------------------------------------------


def test_without_dataset_every_request_is_the_same_object(tmp_path: Path) -> None:
    f = factory(tmp_path, method="GET", path="/healthz")
    assert len(f) == 1
    assert f.request(0) is f.request(12345)
    assert f.request(0) == PreparedRequest("GET", "/healthz", (), None)


def test_dict_body_is_compact_json_with_content_type(tmp_path: Path) -> None:
    f = factory(tmp_path, body={"text": "héllo", "k": [1, 2]})
    request = f.request(0)
    assert request.body == '{"text":"héllo","k":[1,2]}'.encode()
    assert ("Content-Type", "application/json") in request.headers


@pytest.mark.parametrize("body", [[1, 2], 3, 2.5, True, False])
def test_json_scalars_and_lists(tmp_path: Path, body: Any) -> None:
    request = factory(tmp_path, body=body).request(0)
    assert request.body is not None and json.loads(request.body) == body
    assert dict(request.headers)["Content-Type"] == "application/json"


def test_string_body_is_utf8_text(tmp_path: Path) -> None:
    request = factory(tmp_path, body="ça va").request(0)
    assert request.body == "ça va".encode()
    assert dict(request.headers)["Content-Type"] == "text/plain; charset=utf-8"


def test_none_body_has_no_content_type(tmp_path: Path) -> None:
    request = factory(tmp_path, method="GET").request(0)
    assert request.body is None and request.headers == ()


def test_user_content_type_wins_whatever_its_case(tmp_path: Path) -> None:
    request = factory(
        tmp_path, body={"a": 1}, headers={"content-type": "application/x-ndjson"}
    ).request(0)
    assert request.headers == (("content-type", "application/x-ndjson"),)


def test_headers_keep_order_and_come_before_content_type(tmp_path: Path) -> None:
    request = factory(tmp_path, body="x", headers={"X-A": "1", "Authorization": "Bearer t"})
    assert [name for name, _ in request.request(0).headers] == [
        "X-A",
        "Authorization",
        "Content-Type",
    ]


# --- templates --------------------------------------------------------------------------------


def test_whole_placeholder_keeps_the_json_type(tmp_path: Path, rows_file: Path) -> None:
    f = factory(
        tmp_path,
        body={"n": "{{n}}", "ok": "{{ ok }}", "tags": "{{tags}}", "nested": [{"t": "{{text}}"}]},
        dataset={"path": rows_file.name, "order": "sequential"},
    )
    assert json.loads(f.request(1).body or b"") == {
        "n": 1,
        "ok": False,
        "tags": ["a", 1],
        "nested": [{"t": "review 1"}],
    }


def test_placeholder_inside_text_interpolates_json_notation(
    tmp_path: Path, rows_file: Path
) -> None:
    f = factory(
        tmp_path,
        body={"prompt": "#{{n}} ok={{ok}}: {{text}}"},
        dataset={"path": rows_file.name, "order": "sequential"},
    )
    assert json.loads(f.request(2).body or b"") == {"prompt": "#2 ok=true: review 2"}


def test_whole_string_body_takes_the_row_type(tmp_path: Path, rows_file: Path) -> None:
    text = factory(
        tmp_path, body="{{text}}", dataset={"path": rows_file.name, "order": "sequential"}
    )
    assert text.request(0).body == b"review 0"
    assert dict(text.request(0).headers)["Content-Type"].startswith("text/plain")
    number = factory(
        tmp_path, body="{{n}}", dataset={"path": rows_file.name, "order": "sequential"}
    )
    assert number.request(3).body == b"3"
    assert dict(number.request(3).headers)["Content-Type"] == "application/json"


def test_path_and_header_placeholders(tmp_path: Path, rows_file: Path) -> None:
    f = factory(
        tmp_path,
        method="GET",
        path="/items/{{n}}?q={{text}}",
        headers={"X-Row": "{{n}}"},
        dataset={"path": rows_file.name, "order": "sequential"},
    )
    request = f.request(4)
    assert request.path == "/items/4?q=review%204"
    assert request.headers == (("X-Row", "4"),)


def test_path_values_cannot_inject_query_syntax(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "q.jsonl", [{"q": "a&b=c?d/é"}])
    f = factory(tmp_path, method="GET", path="/s?q={{q}}", dataset={"path": "q.jsonl"})
    assert f.request(0).path == "/s?q=a%26b%3Dc%3Fd/%C3%A9"


def test_encode_path_leaves_escapes_and_reserved_alone() -> None:
    assert encode_path("/a b/c%20d?x=1&y=[2]") == "/a%20b/c%20d?x=1&y=[2]"


# --- datasets --------------------------------------------------------------------------------


def test_csv_dataset(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text('text,label\nhello,1\n"a, b",0\n', encoding="utf-8")
    f = factory(tmp_path, body={"t": "{{text}}", "l": "{{label}}"}, dataset={"path": "d.csv"})
    bodies = {f.request(i).body for i in range(50)}
    assert bodies == {b'{"t":"hello","l":"1"}', b'{"t":"a, b","l":"0"}'}


def test_text_dataset_lines_become_text_field(tmp_path: Path) -> None:
    (tmp_path / "d.txt").write_text("first line\n\nsecond line\r\n", encoding="utf-8")
    f = factory(
        tmp_path, body={"text": "{{text}}"}, dataset={"path": "d.txt", "order": "sequential"}
    )
    assert len(f) == 2
    assert [f.request(i).body for i in range(2)] == [
        b'{"text":"first line"}',
        b'{"text":"second line"}',
    ]


def test_explicit_format_and_gzip(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "rows.data.gz", "wt", encoding="utf-8") as stream:
        stream.write('{"text": "zipped"}\n')
    f = factory(tmp_path, body="{{text}}", dataset={"path": "rows.data.gz", "format": "jsonl"})
    assert f.request(0).body == b"zipped"
    with gzip.open(tmp_path / "rows.ndjson.gz", "wt", encoding="utf-8") as stream:
        stream.write('{"text": "auto"}\n')
    assert (
        factory(tmp_path, body="{{text}}", dataset={"path": "rows.ndjson.gz"}).request(0).body
        == b"auto"
    )


def test_limit_keeps_the_first_rows(tmp_path: Path, rows_file: Path) -> None:
    f = factory(tmp_path, body="{{text}}", dataset={"path": rows_file.name, "limit": 2})
    assert len(f) == 2
    assert {f.request(i).body for i in range(100)} == {b"review 0", b"review 1"}


def test_absolute_dataset_path(tmp_path: Path, rows_file: Path) -> None:
    f = RequestFactory.from_scenario(
        Request(body="{{text}}", dataset=Dataset(path=str(rows_file))), Path("/nonexistent"), 1
    )
    assert len(f) == 5


# --- order ------------------------------------------------------------------------------------


def test_sequential_cycles_in_file_order(tmp_path: Path, rows_file: Path) -> None:
    f = factory(tmp_path, body="{{n}}", dataset={"path": rows_file.name, "order": "sequential"})
    assert [f.request(i).body for i in range(12)] == [str(i % 5).encode() for i in range(12)]


def test_random_is_reproducible_and_covers_rows(tmp_path: Path, rows_file: Path) -> None:
    dataset = {"path": rows_file.name, "order": "random"}
    a = factory(tmp_path, seed=3, body="{{n}}", dataset=dataset)
    b = factory(tmp_path, seed=3, body="{{n}}", dataset=dataset)
    c = factory(tmp_path, seed=4, body="{{n}}", dataset=dataset)
    seqs = range(20_000)
    picks = [a.request(i).body for i in seqs]
    assert picks == [b.request(i).body for i in seqs]
    assert picks != [c.request(i).body for i in seqs]
    counts = Counter(picks)
    assert set(counts) == {str(i).encode() for i in range(5)}
    assert all(3600 < n < 4400 for n in counts.values())  # uniform: 4000 each expected
    assert picks[:10] != [str(i % 5).encode() for i in range(10)]


def test_random_pick_depends_only_on_seq(tmp_path: Path, rows_file: Path) -> None:
    dataset = {"path": rows_file.name}
    forward = factory(tmp_path, body="{{n}}", dataset=dataset)
    expected = [forward.request(i).body for i in range(30_000)]
    jumping = factory(tmp_path, body="{{n}}", dataset=dataset)
    for seq in (29_999, 5, 17_000, 8191, 8192, 0):
        assert jumping.request(seq).body == expected[seq]


def test_requests_are_shared_not_rebuilt(tmp_path: Path, rows_file: Path) -> None:
    f = factory(tmp_path, body="{{n}}", dataset={"path": rows_file.name})
    assert len({id(f.request(i)) for i in range(1000)}) == 5


# --- errors -----------------------------------------------------------------------------------


def test_missing_field_names_field_file_and_available(tmp_path: Path, rows_file: Path) -> None:
    with pytest.raises(InputError) as info:
        factory(tmp_path, body={"t": "{{txt}}"}, dataset={"path": rows_file.name})
    message = str(info.value)
    assert "{{txt}}" in message and "'txt'" in message
    assert str(rows_file) in message
    assert "available fields: text, n, ok, tags" in message
    assert "request.body" in message


def test_missing_field_in_path_says_path(tmp_path: Path, rows_file: Path) -> None:
    with pytest.raises(InputError, match=r"request\.path .*\{\{id\}\}"):
        factory(tmp_path, path="/x/{{id}}", dataset={"path": rows_file.name})


def test_placeholder_without_dataset(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no dataset"):
        factory(tmp_path, headers={"X": "{{user}}"})


def test_missing_dataset_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="dataset not found") as info:
        factory(tmp_path, body="{{text}}", dataset={"path": "nope.jsonl"})
    assert str(tmp_path / "nope.jsonl") in str(info.value)


def test_unknown_suffix_asks_for_format(tmp_path: Path) -> None:
    (tmp_path / "d.parquet").write_text("x")
    with pytest.raises(InputError, match=r"request\.dataset\.format"):
        factory(tmp_path, dataset={"path": "d.parquet"})


def test_bad_jsonl_line_is_located(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(InputError, match=r"d\.jsonl:2: not valid JSON"):
        factory(tmp_path, dataset={"path": "d.jsonl"})
    (tmp_path / "e.jsonl").write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"e\.jsonl:2: .*JSON object, got list"):
        factory(tmp_path, dataset={"path": "e.jsonl"})


def test_empty_dataset(tmp_path: Path) -> None:
    (tmp_path / "d.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(InputError, match="no rows"):
        factory(tmp_path, dataset={"path": "d.txt"})


def test_openai_chat_body_is_built_from_the_template(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text('{"text": "hi there"}\n{"text": "bye", "max_tokens": 7}\n')
    request = Request.model_validate(
        {
            "api": "openai-chat",
            "model": "m",
            "prompt": "say: {{text}}",
            "max_tokens": {"mean": 50, "sd": 10, "min": 40, "max": 60},
            "params": {"temperature": 0},
            "dataset": {"path": "p.jsonl", "order": "sequential"},
        }
    )
    assert request.path == "/v1/chat/completions"
    factory = RequestFactory.from_scenario(request, tmp_path, seed=1)
    first, second = (json.loads(factory.request(i).body or b"") for i in range(2))
    assert first["messages"] == [{"role": "user", "content": "say: hi there"}]
    assert first["stream"] is True and first["stream_options"] == {"include_usage": True}
    assert first["temperature"] == 0 and 40 <= first["max_tokens"] <= 60
    assert second["max_tokens"] == 7  # the row's own length wins
    again = RequestFactory.from_scenario(request, tmp_path, seed=1)
    assert json.loads(again.request(0).body or b"")["max_tokens"] == first["max_tokens"]


def test_openai_keys_need_their_api() -> None:
    with pytest.raises(ValueError, match="set `api: openai-chat`"):
        Request.model_validate({"model": "m", "prompt": "x"})
    with pytest.raises(ValueError, match="needs `model`"):
        Request.model_validate({"api": "openai-completions", "prompt": "x"})
    with pytest.raises(ValueError, match="builds the body itself"):
        Request.model_validate({"api": "openai-chat", "model": "m", "prompt": "x", "body": {}})
