"""The generated parts of docs/: each option table comes from the code that declares it.

`make docs` (python -m harness.docs) rewrites them; tests/test_docs.py fails when one is stale.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

from tts_client.cli import build_parser
from tts_service.config import settings, shown_default

from .servers import REPO

_BEGIN = "<!-- generated from {source} by `make docs`: edit the source, not the table -->"
_END = "<!-- end of the generated table -->"


def _cell(text: str) -> str:
    """Text that stays in its table cell and shows as written (not as an HTML tag)."""
    text = " ".join(text.split()).replace("|", "\\|")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def server_options() -> str:
    rows = ["| flag | variable | default | meaning |", "|---|---|---|---|"]
    for _, declared, default in settings():
        shown = shown_default(default)
        rows.append(f"| `{declared.flag}` | `{declared.env}` | {f'`{shown}`' if shown else ''} "
                    f"| {_cell(declared.help)} |")
    return "\n".join(rows)


def client_options() -> str:
    rows = ["| option | meaning |", "|---|---|"]
    for action in build_parser()._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        metavar = action.metavar or (action.dest.upper() if action.nargs != 0 else None)
        if action.choices and not action.metavar:
            metavar = "|".join(str(choice) for choice in action.choices)
        names = action.option_strings or [str(metavar)]
        shown = ", ".join(f"`{name} {metavar}`" if action.option_strings and metavar
                          else f"`{name}`" for name in names)
        rows.append(f"| {_cell(shown)} | {_cell(action.help or '')} |")
    return "\n".join(rows)


# Each page with a generated table: the source it comes from, and how to make it.
TABLES: dict[Path, tuple[str, Callable[[], str]]] = {
    REPO / "docs" / "configuration.md": ("tts_service/config.py", server_options),
    REPO / "docs" / "client.md": ("tts_client/cli.py", client_options),
}


def refreshed(page: str, source: str, table: str) -> str:
    """The page with its generated table replaced by `table`."""
    begin = _BEGIN.format(source=source)
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(_END), re.S)
    if not pattern.search(page):
        raise ValueError(f"the page has no table generated from {source} (markers: {begin!r} "
                         f"... {_END!r})")
    return pattern.sub(lambda _: f"{begin}\n{table}\n{_END}", page, count=1)


def main() -> None:
    for path, (source, make_table) in TABLES.items():
        page = path.read_text()
        fresh = refreshed(page, source, make_table())
        if fresh != page:
            path.write_text(fresh)
            print(f"rewrote the table in {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
