"""The set-up a new user runs: the README names exactly what the Makefile installs."""

from __future__ import annotations

import re

from harness.servers import REPO


def _makefile_apt_packages() -> set[str]:
    match = re.search(r"^APT_PACKAGES := (.+)$", (REPO / "Makefile").read_text(), re.M)
    assert match is not None
    return set(match.group(1).split())


def test_readme_lists_the_debian_packages_the_makefile_installs() -> None:
    readme = " ".join((REPO / "README.md").read_text().split())
    match = re.search(r"installs the Debian packages it needs \((.+?); with `apt-get`", readme)
    assert match is not None
    named = set(re.findall(r"`([a-z0-9.+-]+)`", match.group(1)))
    # Node.js and npm come from Debian only when the machine has no npm of its own.
    assert named == _makefile_apt_packages() | {"nodejs", "npm"}


def test_a_fresh_debian_gets_venv_and_a_compiler() -> None:
    # Debian's python3 has no venv module without python3-venv, and the shim needs cc.
    assert {"python3-venv", "gcc", "libc6-dev"} <= _makefile_apt_packages()
