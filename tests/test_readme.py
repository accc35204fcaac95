"""The README's commands are true: the set-up commands are what CI runs, the service they start is the
embedded default they describe, and every `reskernel` command in README.md and docs/ parses with the CLI's
own parser. (The curl and Python client examples run against the service in
tests/service/test_readme_curl.py; the engine tour of docs/engine.md in tests/test_docs.py.)"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import numpy as np
import pytest

from service import cli
from service.settings import Settings

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", flags=re.S | re.M)


def section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def shell_commands(text: str) -> list[list[str]]:
    """The commands of the text's sh blocks, each as argv: continuation lines and quoted arguments that go
    on over a line joined, comments dropped, `a && b` as two commands."""
    commands = []
    for language, body in BLOCK.findall(text):
        if language != "sh":
            continue
        lines, line = iter(body.replace("\\\n", " ").splitlines()), ""
        for more in lines:
            line += more
            try:
                words = shlex.split(line, comments=True)
            except ValueError:  # a quotation still open: it goes on over the next line
                line += "\n"
                continue
            line = ""
            while words:
                end = words.index("&&") if "&&" in words else len(words)
                commands.append(words[:end])
                words = words[end + 1:]
    return commands


def ci_commands() -> list[list[str]]:
    """The commands .ci/run runs after its set-up of the system, each as argv, `-q` (quiet) left out."""
    commands = []
    for line in (ROOT / ".ci" / "run").read_text().splitlines():
        if line.startswith(".venv/bin/") or line.startswith("python3 "):
            commands.append([word for word in shlex.split(line) if word != "-q"])
    return commands


def test_setup_commands_are_what_ci_runs():
    *steps, test = shell_commands(section(README.read_text(), "Set up and run; test"))
    ci = ci_commands()
    assert steps[0] == ["python3", "-m", "venv", ".venv"] == ci[0]
    assert steps[1] in ci, f"README installs with {steps[1]}, CI with {ci}"
    assert steps[1] == [".venv/bin/pip", "install", "-e", ".[test]"]
    assert test == ci[-1] == [".venv/bin/python", "-m", "pytest"], "README and CI run the same tests"
    assert [".venv/bin/ruff", "check", "."] in ci and "ruff check ." in README.read_text()
    assert [".venv/bin/mypy"] in ci and "`mypy`" in README.read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert any(r.startswith("pytest") for r in pyproject["project"]["optional-dependencies"]["test"])
    assert pyproject["project"]["scripts"]["reskernel"] == "service.cli:main"
    assert f"Python {pyproject['project']['requires-python'].replace('>=', '>= ')}" in README.read_text()
    assert steps[2] == [".venv/bin/reskernel", "serve"]


def test_serve_runs_the_embedded_defaults(monkeypatch):
    """`reskernel serve` alone: 127.0.0.1:8000, a local cluster of one worker, SQLite in ~/.local/share/reskernel."""
    seen = []
    monkeypatch.setattr(cli, "serve", seen.append)  # main() binds it when it builds the parser: parse, run nothing
    cli.main(["serve"])
    assert (seen[0].host, seen[0].port, seen[0].data_dir, seen[0].workers, seen[0].dask_address) == (
        "127.0.0.1", 8000, None, None, None)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    settings = Settings.from_env({})
    assert (settings.store_url, settings.dask_address, settings.workers) == (None, None, 1)
    assert settings.data_dir == Path.home() / ".local" / "share" / "reskernel"
    text = README.read_text()
    assert "http://127.0.0.1:8000" in text and "~/.local/share/reskernel" in text and "one worker process" in text


def reskernel_commands() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for words in shell_commands(page.read_text()):
            if words[0] in ("reskernel", ".venv/bin/reskernel"):
                found.append((page.name, words[1:]))
    return found


@pytest.mark.parametrize(("page", "argv"), reskernel_commands(), ids=[f"{p}:{a[0]}" for p, a in reskernel_commands()])
def test_reskernel_commands_parse(page, argv, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "points.npy", np.eye(3))  # the file the examples name
    seen = []
    for name in ("serve", "reproduce", "kernels", "smoothness"):
        monkeypatch.setattr(cli, name, seen.append)
    cli.main(argv)
    assert len(seen) == 1 and seen[0].command == argv[0], (page, argv)


def test_every_page_has_reskernel_commands():
    pages = {page for page, _ in reskernel_commands()}
    assert {"README.md", "api.md", "reproduction.md", "deployment.md"} <= pages, pages
