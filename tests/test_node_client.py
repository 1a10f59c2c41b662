"""The Node.js example client (examples/node) against the real server: a second language."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import soundfile

from harness.servers import REPO, ServerProcess
from harness.speech import transcribe, word_error_rate

# npm install fetches the example's pinned packages from the npm registry.
pytestmark = [pytest.mark.model, pytest.mark.tools("node", "npm", "network")]

NODE_DIR = REPO / "examples" / "node"


@pytest.fixture(scope="module")
def node_example() -> Path:
    """examples/node with its packages installed (once; node_modules is git-ignored)."""
    for tool in ("node", "npm"):
        assert shutil.which(tool), f"{tool} is not installed: `make install` installs it"
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        # `npm install`, not `npm ci`: the exact versions are pinned in package.json and no
        # lockfile is kept (it would name registry hosts).
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=NODE_DIR, check=True, timeout=300, capture_output=True)
    return NODE_DIR


def run_node(node_example: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", "synthesize.js", *args], cwd=node_example,
                          capture_output=True, text=True, timeout=60, check=False)


def test_node_client_writes_speech(node_example: Path, server: ServerProcess,
                                   tmp_path: Path) -> None:
    text = "A second language can call the speech service as well."
    out = tmp_path / "node.wav"
    result = run_node(node_example, "--server", server.address, "--voice", "af_bella",
                      "--out", str(out), text)
    assert result.returncode == 0, result.stderr
    samples, rate = soundfile.read(out, dtype="int16")
    assert rate == 24000
    assert len(samples) > rate  # over a second of speech
    assert word_error_rate(text, transcribe(samples, rate)) <= 0.2


def test_node_client_reports_a_bad_voice(node_example: Path, server: ServerProcess,
                                         tmp_path: Path) -> None:
    out = tmp_path / "never.wav"
    result = run_node(node_example, "--server", server.address, "--voice", "zz_nobody",
                      "--out", str(out), "Hello.")
    assert result.returncode == 1
    assert "INVALID_ARGUMENT: unknown voice 'zz_nobody'" in result.stderr
    assert not out.exists()


def test_node_streams_tokens_and_hears_speech_before_the_text_ends(
        node_example: Path, server: ServerProcess, tmp_path: Path) -> None:
    text = ("The first sentence is short. The second one takes a while longer to write, "
            "because it has 12 more words in it. And the third one ends it all.")
    out = tmp_path / "tokens.wav"
    result = subprocess.run(
        ["node", "stream_tokens.js", "--server", server.address, "--voice", "af_bella",
         "--token-ms", "150", "--out", str(out), text],
        cwd=node_example, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    events = re.findall(r"^(\d+) ms: (.*)$", result.stderr, re.MULTILINE)
    spoken = [(int(ms), what) for ms, what in events]
    spans = [what for _, what in spoken if what != "(all text sent)"]
    # Sentences, in order; at this slow pace (27 characters a second) the long one is also
    # cut at its clause mark once the server's max wait has passed.
    assert spans[0] == "The first sentence is short."
    assert " ".join(spans) == text
    all_sent_ms = next(ms for ms, what in spoken if what == "(all text sent)")
    assert spoken[0][0] < all_sent_ms  # the first sentence was heard before the text ended
    samples, rate = soundfile.read(out, dtype="int16")
    assert rate == 24000
    heard = transcribe(samples, rate)
    assert word_error_rate(text.replace("12", "twelve"), heard) <= 0.2
