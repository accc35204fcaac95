"""The documentation holds together: every relative link and anchor of README.md and docs/*.md resolves
(the file exists; `#anchor` is the GitHub slug of one of its headings), external links are well formed
(their form only: no network), the README links every page, and the engine tour of docs/engine.md runs
as written with the numbers it prints."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
FENCE = re.compile(r"^```.*?^```[ \t]*$", flags=re.S | re.M)
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^()\s]*(?:\([^()\s]*\))?[^()\s]*)(?:\s+\"[^\"]*\")?\)")


def prose(text: str) -> str:
    """The text without its fenced code blocks and inline code spans (links there are not links)."""
    text = FENCE.sub("", text)
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", text, flags=re.S)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text (links and code marks dropped), lower case, punctuation
    other than '-' and '_' removed, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for match in re.finditer(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", FENCE.sub("", page.read_text()), flags=re.M):
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    return [target for _, target in LINK.findall(prose(page.read_text()))]


def test_slugs_are_githubs():
    assert slug("Waiting and `Prefer`") == "waiting-and-prefer"
    assert slug("Results: JSON, .npy, .npz") == "results-json-npy-npz"
    assert slug("Errors: problem+json") == "errors-problemjson"
    assert slug("The service's rooms") == "the-services-rooms"
    assert slug("Set up and run; test") == "set-up-and-run-test"
    assert slug("RESKERNEL_* settings") == "reskernel_-settings"


def test_the_link_pattern_reads_links():
    text = "See [a](docs/api.md#events), ![b](x.png \"t\") and `[not](a-link)`.\n```sh\n[no](b.md)\n```\n"
    assert [t for _, t in LINK.findall(prose(text))] == ["docs/api.md#events", "x.png"]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_links_resolve(page):
    targets = links(page)
    assert targets, f"{page.name} links nothing"
    for target in targets:
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            parts = urlsplit(target)
            assert parts.scheme in ("http", "https") and parts.netloc and "." in parts.netloc, target
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.is_relative_to(ROOT), f"{page.name}: {target} leaves the repository"
        assert resolved.exists(), f"{page.name}: {target}: no such file"
        if anchor:
            assert resolved.suffix == ".md", f"{page.name}: {target}: an anchor into a file that is not Markdown"
            assert anchor in anchors(resolved), f"{page.name}: {target}: no heading with that anchor in " \
                                                f"{resolved.name} (it has {sorted(anchors(resolved))})"


def test_the_readme_is_a_front_door_to_every_page():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in links(README)}
    assert set(DOCS) <= linked, f"pages the README does not link: {sorted(p.name for p in set(DOCS) - linked)}"
    assert len(README.read_text().splitlines()) <= 150, "the README is the front door: the reference goes in docs/"


def test_engine_tour_runs(capsys):
    page = ROOT / "docs" / "engine.md"
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)
    assert len(blocks) == 3  # the tour, the empirical tour, the conv nets
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)
    printed = capsys.readouterr().out.split()
    assert round(float(printed[0]), 3) == 1.012
    assert round(float(printed[1]), 2) == 58.36
    run, fit = namespace["run"], namespace["fit"]
    error = np.max(np.abs(run["mean_prediction"][-1] - fit.mean)) / np.max(np.abs(fit.mean))
    assert error < 0.05 and np.all(run["ntk_drift"][:, -1] < 0.01)
    assert namespace["ntk"].shape == namespace["nngp"].shape == (4, 4)
    assert namespace["conv_run"]["loss"][0, -1] < namespace["conv_run"]["loss"][0, 0]
