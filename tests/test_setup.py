"""The set-up a new user runs: `make serve` installs the server and client only, and
docs/install.md names exactly the Debian packages the Makefile installs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from harness.servers import REPO
from tts_api.v1 import tts_pb2

from .fakes import TIMEOUT_S, fake_server

INSTALL_DOC = REPO / "docs" / "install.md"
# Node.js and npm come from Debian only when the machine has no npm of its own.
NODE = {"nodejs", "npm"}
MAKE_TIMEOUT_S = 900


def makefile_list(makefile: str, variable: str) -> set[str]:
    match = re.search(rf"^{variable} := (.+)$", makefile, re.M)
    assert match is not None, f"no {variable} line in the Makefile"
    return set(match.group(1).split())


def documented_list(page: str, variable: str) -> set[str]:
    """The packages docs/install.md names in its "Debian packages (`VARIABLE`): ..." item."""
    match = re.search(rf"Debian packages \(`{variable}`\): (.+?)\.(\s|$)", " ".join(page.split()))
    assert match is not None, f"docs/install.md no longer lists the {variable}"
    return set(re.findall(r"`([a-z0-9.+-]+)`", match.group(1)))


def _docs_match_makefile(page: str, makefile: str) -> bool:
    return (documented_list(page, "SERVE_APT_PACKAGES")
            == makefile_list(makefile, "SERVE_APT_PACKAGES") | NODE
            and documented_list(page, "TEST_APT_PACKAGES")
            == makefile_list(makefile, "TEST_APT_PACKAGES"))


def test_the_docs_list_the_debian_packages_the_makefile_installs() -> None:
    page, makefile = INSTALL_DOC.read_text(), (REPO / "Makefile").read_text()
    assert _docs_match_makefile(page, makefile)
    # Debian's python3 has no venv module without python3-venv, and the shim needs cc.
    assert {"python3-venv", "gcc", "libc6-dev"} <= makefile_list(makefile, "SERVE_APT_PACKAGES")


@pytest.mark.parametrize("page", [
    "Debian packages (`SERVE_APT_PACKAGES`): `gcc`, `nodejs` `npm`. "
    "Debian packages (`TEST_APT_PACKAGES`): `jq`.",
    "Debian packages (`SERVE_APT_PACKAGES`): `gcc`, `ffmpeg`, `nodejs` `npm`. "
    "Debian packages (`TEST_APT_PACKAGES`): `jq`, `curl`.",
], ids=["one missing", "one extra"])
def test_the_comparison_catches_drifted_docs(page: str) -> None:
    makefile = "SERVE_APT_PACKAGES := gcc ffmpeg\nTEST_APT_PACKAGES := jq\n"
    assert not _docs_match_makefile(page, makefile)
    assert _docs_match_makefile(
        "Debian packages (`SERVE_APT_PACKAGES`): `gcc`, `ffmpeg`, `nodejs` `npm`. "
        "Debian packages (`TEST_APT_PACKAGES`): `jq`.", makefile)


def _test_only_debian_packages() -> set[str]:
    return makefile_list((REPO / "Makefile").read_text(), "TEST_APT_PACKAGES")


def _test_only_python_packages() -> set[str]:
    """Names of the dev and bench extras' packages that the server and client do not need."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]

    def names(*groups: str) -> set[str]:
        return {_normalized(Requirement(line).name) for group in groups for line in extras[group]}

    return names("dev", "bench") - names("server", "client")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def serve_chain_problems(makefile: Path) -> list[str]:
    """What the commands of `make serve` (a dry run of all of them) install for tests only."""
    dry_run = subprocess.run(["make", "-f", str(makefile), "-n", "-B", "serve"], cwd=REPO,
                             capture_output=True, text=True, timeout=60, check=True).stdout
    words = set(re.split(r"[\s;'\"()$]+", dry_run))
    problems = [f"Debian package {name}" for name in sorted(_test_only_debian_packages() & words)]
    extras = {extra for group in re.findall(r"\.\[([a-z,]+)\]", dry_run)
              for extra in group.split(",")}
    problems += [f"extra [{extra}]" for extra in sorted(extras - {"server", "client"})]
    if "@bufbuild/buf" in dry_run:
        problems.append("buf")
    return problems


def test_the_serve_chain_names_no_test_only_package() -> None:
    assert serve_chain_problems(REPO / "Makefile") == []


@pytest.mark.parametrize(("old", "new", "found"), [
    ("SERVE_APT_PACKAGES := python3-venv", "SERVE_APT_PACKAGES := nginx python3-venv",
     "Debian package nginx"),
    ("install-serve: system-deps", "install-serve: system-deps test-system-deps",
     "Debian package chromium"),
    ("-e '.[server,client]'", "-e '.[server,client,dev]'", "extra [dev]"),
    ("install-serve: system-deps", "install-serve: system-deps $(BUF)", "buf"),
], ids=["a test package among the serve packages", "serve installs the test packages",
        "serve installs the dev extra", "serve installs buf"])
def test_the_serve_chain_check_fails_on_a_broken_makefile(tmp_path: Path, old: str, new: str,
                                                           found: str) -> None:
    makefile = (REPO / "Makefile").read_text()
    assert old in makefile, f"{old!r} is no longer in the Makefile: update this test"
    broken = tmp_path / "Makefile"
    broken.write_text(makefile.replace(old, new, 1))
    assert found in serve_chain_problems(broken)


def _clean_copy(destination: Path) -> Path:
    """The tracked files as they are, without the venv, model, caches and builds."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                             check=True, timeout=60).stdout.decode().split("\0")
    for name in filter(None, tracked):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def _install_serve(clone: Path) -> None:
    done = subprocess.run(["make", "-s", "install-serve"], cwd=clone, capture_output=True,
                          text=True, timeout=MAKE_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr


def installed_test_only_packages(venv: Path) -> set[str]:
    listing = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m, json; "
         "print(json.dumps([d.metadata['Name'] for d in m.distributions()]))"],
        capture_output=True, text=True, check=True, timeout=60).stdout
    return {_normalized(name) for name in json.loads(listing)} & _test_only_python_packages()


# pip installs from the registry, or from its cache (warm after `make install`): the venv is
# new, the wheels are not, so this costs about half a minute.
@pytest.mark.tools("network")
def test_the_serve_install_puts_no_test_package_in_the_venv(tmp_path: Path) -> None:
    clone = _clean_copy(tmp_path / "clone")
    _install_serve(clone)
    assert installed_test_only_packages(clone / ".venv") == set()
    # Fed a Makefile whose serve install adds one test package, the check finds it.
    makefile = clone / "Makefile"
    makefile.write_text(makefile.read_text().replace(
        "-e '.[server,client]'", "-e '.[server,client]' hypothesis", 1))
    (clone / ".venv" / ".installed").unlink()
    _install_serve(clone)
    assert installed_test_only_packages(clone / ".venv") == {"hypothesis"}


async def test_the_server_reports_the_one_version_number() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    async with fake_server() as served:
        info = await served.stub.GetServerInfo(tts_pb2.GetServerInfoRequest(),
                                               timeout=TIMEOUT_S)
    assert info.server_version == declared
    literal = re.compile(r"""__version__\s*=\s*["']""")
    assert not [path for path in (REPO / "tts_service").rglob("*.py")
                if literal.search(path.read_text())]
