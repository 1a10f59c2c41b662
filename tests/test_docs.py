"""The README and docs/: generated tables match the code, and every link leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.docs import TABLES, refreshed
from harness.servers import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", list(TABLES), ids=lambda page: page.name)
def test_generated_tables_match_the_code(page: Path) -> None:
    source, make_table = TABLES[page]
    text = page.read_text()
    assert refreshed(text, source, make_table()) == text, (
        f"{page.relative_to(REPO)} is out of date with {source}: run `make docs`")


def test_a_stale_table_is_noticed() -> None:
    page = REPO / "docs" / "configuration.md"
    source, make_table = TABLES[page]
    text = page.read_text()
    stale = text.replace("`--port`", "`--old-port`", 1)
    assert stale != text
    assert refreshed(stale, source, make_table()) == text


def _anchors(page: Path) -> set[str]:
    """GitHub's ids for the page's headings: lower case, punctuation dropped, spaces to -."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", page.read_text(), flags=re.S),
                          re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def broken_links(page: Path) -> list[str]:
    broken = []
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # another site
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no such heading")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_leads_somewhere(page: Path) -> None:
    assert broken_links(page) == []


def test_the_link_check_finds_a_missing_page_and_heading(tmp_path: Path) -> None:
    (tmp_path / "api.md").write_text("# The API\n\n## Calling it\n")
    page = tmp_path / "page.md"
    page.write_text("[a](api.md#no-such-heading) [b](nowhere.md) [c](api.md#calling-it)\n")
    assert broken_links(page) == ["api.md#no-such-heading: no such heading",
                                  "nowhere.md: no such file"]


def test_the_readme_opens_with_a_short_quick_start() -> None:
    readme = (REPO / "README.md").read_text()
    sections = re.split(r"^## ", readme, flags=re.M)
    assert sections[1].startswith("Quick start\n")
    lines = [line for line in sections[1].splitlines()[1:] if line.strip()]
    assert 5 <= len(lines) <= 15, len(lines)


def _unnamed_modules(architecture: str) -> list[str]:
    """The service's modules that the architecture page does not name (as `name.py`)."""
    modules = sorted(path for path in (REPO / "tts_service").rglob("*.py")
                     if path.name != "__init__.py")
    return [str(path.relative_to(REPO)) for path in modules
            if f"`{path.name}`" not in architecture
            and f"`{path.parent.name}/{path.name}`" not in architecture]


def test_the_architecture_page_names_every_module() -> None:
    page = (REPO / "docs" / "architecture.md").read_text()
    assert _unnamed_modules(page) == []
    assert _unnamed_modules(page.replace("`audio_cache.py`", "the cache")) == [
        "tts_service/synthesis/audio_cache.py"]


def _missing_paths(text: str) -> list[str]:
    return [path for path in re.findall(r"`?(tts_service/[\w/]+\.py)", text)
            if not (REPO / path).exists()]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_module_path_in_the_docs_exists(page: Path) -> None:
    assert _missing_paths(page.read_text()) == []


def test_the_path_check_finds_a_moved_module() -> None:
    assert _missing_paths("see `tts_service/phonemes.py`") == ["tts_service/phonemes.py"]
