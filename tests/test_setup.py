"""The set-up a new user runs: the README names exactly what the Makefile installs."""

from __future__ import annotations

import re

import pytest

from harness.servers import REPO


def makefile_apt_packages(makefile: str) -> set[str]:
    match = re.search(r"^APT_PACKAGES := (.+)$", makefile, re.M)
    assert match is not None, "no APT_PACKAGES line in the Makefile"
    return set(match.group(1).split())


def readme_apt_packages(readme: str) -> set[str]:
    """The packages in the README's sentence about what `make serve` installs."""
    match = re.search(r"installs the Debian packages it needs \((.+?); with `apt-get`",
                      " ".join(readme.split()))
    assert match is not None, "the README no longer says which Debian packages it installs"
    return set(re.findall(r"`([a-z0-9.+-]+)`", match.group(1)))


def _readme_matches_makefile(readme: str, makefile: str) -> bool:
    # Node.js and npm come from Debian only when the machine has no npm of its own.
    return readme_apt_packages(readme) == makefile_apt_packages(makefile) | {"nodejs", "npm"}


def test_readme_lists_the_debian_packages_the_makefile_installs() -> None:
    readme = (REPO / "README.md").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert _readme_matches_makefile(readme, makefile), (
        readme_apt_packages(readme) ^ (makefile_apt_packages(makefile) | {"nodejs", "npm"}))
    # Debian's python3 has no venv module without python3-venv, and the shim needs cc.
    assert {"python3-venv", "gcc", "libc6-dev"} <= makefile_apt_packages(makefile)


@pytest.mark.parametrize("readme", [
    "installs the Debian packages it needs (`ffmpeg`, `nodejs`, `npm`; with `apt-get`",
    "installs the Debian packages it needs (`ffmpeg`, `jq`, `curl`, `nodejs` `npm`; with "
    "`apt-get`",
], ids=["one missing", "one extra"])
def test_the_comparison_catches_a_drifted_readme(readme: str) -> None:
    assert not _readme_matches_makefile(readme, "APT_PACKAGES := ffmpeg jq\n")
    assert _readme_matches_makefile(
        "installs the Debian packages it needs (`ffmpeg`, `jq`, `nodejs` `npm`; with `apt-get`",
        "APT_PACKAGES := ffmpeg jq\n")
