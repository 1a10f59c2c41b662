"""The checks that guard the API (buf lint, buf breaking) catch what they are there for."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.servers import REPO

BUF = REPO / "build" / "buf" / "node_modules" / ".bin" / "buf"
PROTO = Path("protos") / "tts_api" / "v1" / "tts.proto"
BASELINE = REPO / "protos" / "baseline.binpb"

pytestmark = pytest.mark.tools("buf")


def _copy(tmp_path: Path) -> Path:
    """A copy of the module (buf.yaml and protos/) to break."""
    shutil.copy(REPO / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(REPO / "protos", tmp_path / "protos")
    return tmp_path


def _edit(root: Path, old: str, new: str) -> None:
    path = root / PROTO
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def _buf(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BUF), *args], cwd=root, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_api_passes_lint_and_matches_its_baseline(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    assert _buf(root, "lint").returncode == 0
    done = _buf(root, "breaking", "--against", str(BASELINE))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("old", "new", "complaint"), [
    # A removed field: clients that set it would be silently ignored.
    ("  bool flush = 3;\n", "", "flush"),
    # A renumbered field: old clients' bytes would land in the wrong field.
    ("  bool flush_done = 2;", "  bool flush_done = 4;", "flush_done"),
    # A renamed RPC: every generated client would call a method that is gone.
    ("rpc StreamingSynthesize(", "rpc StreamSynthesize(", "StreamingSynthesize"),
])
def test_buf_breaking_fails_on_a_breaking_change(tmp_path: Path, old: str, new: str,
                                                complaint: str) -> None:
    root = _copy(tmp_path)
    _edit(root, old, new)
    done = _buf(root, "breaking", "--against", str(BASELINE))
    assert done.returncode != 0
    assert complaint in done.stdout + done.stderr


@pytest.mark.parametrize(("old", "new", "rule"), [
    ("message StreamingSynthesizeResponse {", "message streaming_synthesize_response {",
     "PascalCase"),
    ("  AUDIO_ENCODING_MULAW = 6;", "  MULAW = 6;", "AUDIO_ENCODING_"),
    ("rpc StreamingSynthesize(stream StreamingSynthesizeRequest)",
     "rpc StreamingSynthesize(stream SynthesizeStreamRequest)", "StreamingSynthesizeRequest"),
])
def test_buf_lint_fails_on_a_style_violation(tmp_path: Path, old: str, new: str,
                                            rule: str) -> None:
    root = _copy(tmp_path)
    if old.startswith("message "):
        # Renaming a message means renaming its uses too.
        text = (root / PROTO).read_text()
        name = re.escape(old.split()[1])
        (root / PROTO).write_text(re.sub(rf"\b{name}\b", new.split()[1], text))
    else:
        _edit(root, old, new)
    done = _buf(root, "lint")
    assert done.returncode != 0
    assert rule in done.stdout + done.stderr
