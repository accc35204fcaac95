"""The curl examples and the Python client examples of README.md and docs/api.md, run as written.

Each `curl` command in a `sh` block is parsed (shlex; its method, path, headers and body) and sent through
the shared in-process app; `$JOB` is the id of the last job an example answered with. Every example must
answer 2xx. The `# ...` lines right below a command are its documented output, checked against the
answer: an optional status code, then either a JSON value or the names of Server-Sent Events. In the JSON,
`...` stands for what is left out (`{...}`, `[x, ...]`, `{"a": 1, ...}`, `"id": ...`), and a number is
checked to the digits it shows (`58.357...`: those digits, the rest cut off; `0.0040`: rounded to them).
The Python blocks that use `service.client.Client` run against a real uvicorn serving the same app."""

from __future__ import annotations

import io
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import numpy as np
import pytest

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", ROOT / "docs" / "api.md"]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", flags=re.S | re.M)


def blocks(page: Path, language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(page.read_text()) if lang == language]


@dataclass
class Example:
    command: str
    output: list[str]  # the documented output lines, without their '# '


def examples(page: Path) -> list[Example]:
    """Each curl command of the page's sh blocks (continuation lines joined), with the comment lines below it."""
    found: list[Example] = []
    for block in blocks(page, "sh"):
        lines = iter(block.replace("\\\n", " ").splitlines())
        current = None
        for line in lines:
            stripped = line.strip()
            if stripped.startswith("curl "):
                while not _closed(stripped):  # a quoted argument goes on over the next line
                    stripped += "\n" + next(lines)
                current = Example(stripped, [])
                found.append(current)
            elif current is not None and stripped.startswith("#"):
                current.output.append(stripped[1:].strip())
            else:
                current = None
    return found


def _closed(command: str) -> bool:
    try:
        shlex.split(command, comments=True)
    except ValueError:
        return False
    return True


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: str | None
    out: str | None


def parse_curl(command: str, job: str | None) -> Request:
    words = shlex.split(command, comments=True)
    assert words[0] == "curl", command
    headers: dict[str, str] = {}
    method = body = out = url = None
    i = 1
    while i < len(words):
        word = words[i]
        if word in ("-s", "-N", "-sN", "-sS"):
            pass
        elif word == "-X":
            i += 1
            method = words[i]
        elif word == "-H":
            i += 1
            name, value = words[i].split(":", 1)
            headers[name.strip().lower()] = value.strip()
        elif word in ("-d", "--data-binary"):
            i += 1
            body = words[i]
        elif word == "-o":
            i += 1
            out = words[i]
        elif word.startswith("-"):
            raise AssertionError(f"curl option {word!r} is not understood by this test: {command}")
        else:
            assert url is None, f"two URLs in {command}"
            url = word
        i += 1
    assert url is not None, command
    if "$JOB" in url:
        assert job is not None, f"{command}: no job id yet for $JOB"
        url = url.replace("$JOB", job)
    parts = urlsplit(url if "://" in url else f"http://{url}")
    assert parts.hostname in ("localhost", "127.0.0.1") and parts.port == 8000, url
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return Request(method or ("POST" if body is not None else "GET"), path, headers, body, out)


# The documented output: JSON with `...` for what is left out.

ANY = object()  # `...` as a value


@dataclass
class Number:
    value: float
    decimals: int
    exact: bool  # an integer written without a point: equal
    truncated: bool  # written as `1.0120...`


@dataclass
class Pattern:
    items: dict[str, Any] | list[Any]
    open: bool  # a `...` member or element: more may follow


TOKEN = re.compile(r'\s*(\.\.\.|[{}\[\],:]|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?:\.\.\.)?'
                   r'|true|false|null)')


def parse_pattern(text: str) -> Any:
    tokens, position = [], 0
    while position < len(text.rstrip()):
        match = TOKEN.match(text, position)
        assert match, f"cannot read the documented output at {text[position:]!r}"
        tokens.append(match.group(1))
        position = match.end()
    value, rest = _value(tokens)
    assert not rest, f"documented output has more after its value: {rest}"
    return value


def _value(tokens: list[str]) -> tuple[Any, list[str]]:
    token, rest = tokens[0], tokens[1:]
    if token == "...":
        return ANY, rest
    if token in ("{", "["):
        close, items, is_open = ("}" if token == "{" else "]"), ({} if token == "{" else []), False
        while rest[0] != close:
            if rest[0] == "...":
                is_open, rest = True, rest[1:]
                assert token == "{" or rest[0] == close, "in a list, '...' stands for the items after those shown"
            elif token == "{":
                key = json.loads(rest[0])
                assert rest[1] == ":", rest
                items[key], rest = _value(rest[2:])
            else:
                item, rest = _value(rest)
                items.append(item)
            if rest[0] == ",":
                rest = rest[1:]
        return Pattern(items, is_open), rest[1:]
    if token[0] == '"' or token in ("true", "false", "null"):
        return json.loads(token), rest
    truncated = token.endswith("...")
    digits = token.removesuffix("...")
    mantissa = re.split("[eE]", digits)[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(re.split("[eE]", digits)[1]) if re.search("[eE]", digits) else 0
    exact = "." not in digits and not re.search("[eE]", digits) and not truncated
    return Number(float(digits), decimals - exponent, exact, truncated), rest


def matches(pattern: Any, actual: Any, where: str = "") -> None:
    if pattern is ANY:
        return
    if isinstance(pattern, Number):
        assert isinstance(actual, (int, float)) and not isinstance(actual, bool), f"{where}: {actual!r}"
        unit = 10.0 ** -pattern.decimals
        if pattern.exact:
            assert actual == pattern.value, f"{where}: documented {pattern.value}, answered {actual}"
        elif pattern.truncated:
            cut = abs(actual) - abs(pattern.value)  # what the documented digits leave out
            assert (actual >= 0) == (pattern.value >= 0) and 0 <= cut < unit * (1 - 1e-9), \
                f"{where}: documented {pattern.value}..., answered {actual}"
        else:
            assert abs(actual - pattern.value) <= 0.5 * unit * (1 + 1e-9), \
                f"{where}: documented {pattern.value}, answered {actual}"
        return
    if isinstance(pattern, Pattern) and isinstance(pattern.items, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        if not pattern.open:
            assert set(actual) == set(pattern.items), f"{where}: documented keys {sorted(pattern.items)}, " \
                                                      f"answered {sorted(actual)}"
        for key, item in pattern.items.items():
            assert key in actual, f"{where}: no {key!r} in the answer"
            matches(item, actual[key], f"{where}.{key}")
        return
    if isinstance(pattern, Pattern):
        assert isinstance(actual, list), f"{where}: {actual!r} is not a list"
        assert len(actual) >= len(pattern.items) if pattern.open else len(actual) == len(pattern.items), \
            f"{where}: documented {len(pattern.items)} items{' or more' if pattern.open else ''}, " \
            f"answered {len(actual)}"
        for i, item in enumerate(pattern.items):
            matches(item, actual[i], f"{where}[{i}]")
        return
    assert actual == pattern, f"{where}: documented {pattern!r}, answered {actual!r}"


def check_output(example: Example, response) -> None:
    text = " ".join(example.output).strip()
    status = re.match(r"(\d{3})\b\s*", text)
    if status:
        assert response.status_code == int(status.group(1)), (example.command, response.status_code, response.text)
        text = text[status.end():]
    if not text:
        return
    if text.startswith("event:"):
        documented = re.findall(r"event: ?(\S+)", text)
        answered = re.findall(r"^event: ?(\S+)", response.text, flags=re.M)
        assert answered[-len(documented):] == documented, (example.command, response.text)
        return
    matches(parse_pattern(text), response.json(), "$")


@pytest.mark.anyio
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
async def test_curl_examples_answer_as_documented(api, page, tmp_path):
    found = examples(page)
    assert found, f"{page.name}: no curl examples"
    job = None
    for example in found:
        request = parse_curl(example.command, job)
        if request.path.endswith(":cancel"):
            await _past_its_first_chunk(api, job)
        response = await api.request(request.method, request.path, headers=request.headers,
                                     content=request.body, timeout=120)
        assert 200 <= response.status_code < 300, (example.command, response.status_code, response.text)
        check_output(example, response)
        if request.out is not None:
            data = response.content
            if request.out.endswith((".npy", ".npz")):
                np.load(io.BytesIO(data))  # a real array file
            (tmp_path / Path(request.out).name).write_bytes(data)
        if response.headers.get("content-type", "").startswith("application/json"):
            answer = response.json()
            if isinstance(answer, dict) and isinstance(answer.get("id"), str):
                job = answer["id"]


async def _past_its_first_chunk(api, job: str) -> None:
    """Wait until a training job has reported progress: the engine polls for cancellation between chunks, and
    the first one includes its compilation, longer than these tests' grace (3 s) before the worker is restarted."""
    for _ in range(600):
        status = (await api.get(f"/v1/jobs/{job}")).json()
        if status["progress"] > 0 or status["status"] not in ("queued", "running"):
            return
        await anyio.sleep(0.1)


def client_blocks() -> list[tuple[str, str]]:
    return [(page.name, block) for page in PAGES for block in blocks(page, "python") if "Client(" in block]


@pytest.mark.parametrize(("page", "block"), client_blocks(), ids=[p for p, _ in client_blocks()])
def test_client_examples_run(server, page, block, capsys):
    assert '"http://127.0.0.1:8000"' in block, "the example names the default address"
    namespace: dict = {}
    exec(compile(block.replace('"http://127.0.0.1:8000"', repr(server)), page, "exec"), namespace)
    assert capsys.readouterr().out  # it printed what it says it prints
