"""Server settings: env variables, flags over env, and clear errors for bad values."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import fields
from importlib.metadata import version
from pathlib import Path

import pytest

from tts_service.config import DEFAULT_MODEL_DIR, ServerConfig, parse_config, settings
from tts_service.server import StartupError
from tts_service.synthesis.onnx_runtime import DEFAULT_SHIM_PATH

from .fakes import fake_server


def test_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("TTS_")]:
        monkeypatch.delenv(name)
    config = parse_config([])
    assert config == ServerConfig()
    assert (config.host, config.port) == ("127.0.0.1", 50051)
    # The pool follows the CPUs unless set (tts_service/pool_shape.py).
    assert (config.engines, config.engine_threads, config.solo_engine_threads) == \
        (None, None, None)
    assert config.model_dir == DEFAULT_MODEL_DIR
    assert config.onnxruntime == "auto"
    assert config.onnxruntime_shim == DEFAULT_SHIM_PATH
    assert not config.log_text


def test_every_setting_comes_from_its_env_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"TTS_HOST": "::1", "TTS_PORT": "6000", "TTS_MODEL_DIR": "/m", "TTS_ENGINES": "3",
           "TTS_ENGINE_THREADS": "2", "TTS_MAX_TEXT_CHARS": "100",
           "TTS_MAX_QUEUED_REQUESTS": "0", "TTS_SHUTDOWN_GRACE": "2.5",
           "TTS_ONNXRUNTIME": "bundled", "TTS_ONNXRUNTIME_SHIM": "/s.so",
           "TTS_VOICE_BLENDS": "a=af_bella:1+am_adam:1, b=af_sky:1",
           "TTS_LEXICON_OVERRIDES": "/l.txt", "TTS_METRICS_PORT": "9464",
           "TTS_TLS_CERT": "/c.pem", "TTS_TLS_KEY": "/k.pem", "TTS_TLS_CLIENT_CA": "/ca.pem",
           "TTS_TOKEN_FILE": "/t", "TTS_LOG_LEVEL": "debug", "TTS_LOG_TEXT": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert parse_config([]) == ServerConfig(
        host="::1", port=6000, model_dir=Path("/m"), engines=3, engine_threads=2,
        max_text_chars=100, max_queued_requests=0, shutdown_grace_s=2.5, onnxruntime="bundled",
        onnxruntime_shim=Path("/s.so"), voice_blends=("a=af_bella:1+am_adam:1", "b=af_sky:1"),
        lexicon_overrides=Path("/l.txt"), metrics_port=9464, tls_cert=Path("/c.pem"),
        tls_key=Path("/k.pem"), tls_client_ca=Path("/ca.pem"), token_file=Path("/t"),
        log_level="DEBUG", log_text=True)


@pytest.mark.parametrize(("value", "log_text"), [
    ("1", True), ("TRUE", True), ("yes", True), ("on", True),
    ("0", False), ("false", False), ("No", False), ("off", False), ("", False),
])
def test_switches_read_the_usual_words(monkeypatch: pytest.MonkeyPatch,
                                       value: str, log_text: bool) -> None:
    monkeypatch.setenv("TTS_LOG_TEXT", value)
    monkeypatch.setenv("TTS_INTRA_OP_SPINNING", value)
    config = parse_config([])
    assert config.log_text is log_text
    assert config.intra_op_spinning is log_text


def test_a_flag_wins_over_its_env_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_PORT", "6000")
    monkeypatch.setenv("TTS_ENGINES", "3")
    monkeypatch.setenv("TTS_LOG_LEVEL", "ERROR")
    config = parse_config(["--port", "7000", "--engines", "1", "--log-level", "info"])
    assert (config.port, config.engines, config.log_level) == (7000, 1, "INFO")
    assert parse_config([]).port == 6000


@pytest.mark.parametrize(("env", "argv", "expected"), [
    ("1", ["--log-text", "off"], False),
    ("1", ["--log-text=no"], False),
    ("0", ["--log-text"], True),
    ("0", ["--log-text", "--port", "7000"], True),  # the flag alone, then another option
    ("", ["--log-text", "on"], True),
])
def test_a_switch_flag_turns_its_variable_on_or_off(monkeypatch: pytest.MonkeyPatch, env: str,
                                                    argv: list[str], expected: bool) -> None:
    monkeypatch.setenv("TTS_LOG_TEXT", env)
    assert parse_config(argv).log_text is expected


def test_intra_op_spinning_is_a_boolean_that_takes_on_and_off() -> None:
    assert parse_config([]).intra_op_spinning is False
    assert parse_config(["--intra-op-spinning", "on"]).intra_op_spinning is True
    assert parse_config(["--intra-op-spinning"]).intra_op_spinning is True
    assert parse_config(["--intra-op-spinning", "off"]).intra_op_spinning is False


@pytest.mark.parametrize(("env", "value", "says"), [
    ("TTS_PORT", "abc", "must be a whole number, got 'abc'"),
    ("TTS_PORT", "70000", "must be 0 to 65535, got 70000"),
    ("TTS_METRICS_PORT", "70000", "must be 0 to 65535, got 70000"),
    ("TTS_ENGINES", "0", "must be at least 1, got 0"),
    ("TTS_MAX_QUEUED_REQUESTS", "-1", "must be at least 0, got -1"),
    ("TTS_SHUTDOWN_GRACE", "soon", "must be a number of seconds, got 'soon'"),
    ("TTS_SHUTDOWN_GRACE", "-1", "must be at least 0 seconds, got -1"),
    ("TTS_SHUTDOWN_GRACE", "nan", "must be at least 0 seconds, got nan"),
    ("TTS_SHUTDOWN_GRACE", "inf", "must be at least 0 seconds, got inf"),
    ("TTS_READ_AHEAD", "0", "must be more than 0 seconds, got 0"),
    ("TTS_LOG_LEVEL", "LOUD", "choose from DEBUG, INFO, WARNING, ERROR, got 'LOUD'"),
    ("TTS_ONNXRUNTIME", "fast", "choose from auto, bundled, pypi, got 'fast'"),
    ("TTS_LOG_TEXT", "maybe", "must be 1/true/yes/on or 0/false/no/off, got 'maybe'"),
    ("TTS_INTRA_OP_SPINNING", "sometimes", "must be 1/true/yes/on or 0/false/no/off"),
])
def test_a_bad_env_variable_is_named_in_a_usage_error(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: str, value: str, says: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SystemExit) as exited:
        parse_config([])
    assert exited.value.code == 2
    error = " ".join(capsys.readouterr().err.split())
    assert f"Invalid value for {env}: {says}" in error
    assert "Try 'tts-grpc-server --help' for help." in error


@pytest.mark.parametrize(("args", "says"), [
    (["--port", "abc"], "Invalid value for '--port': must be a whole number, got 'abc'"),
    (["--engines", "0"], "Invalid value for '--engines': must be at least 1, got 0"),
    (["--log-level", "loud"], "choose from DEBUG, INFO, WARNING, ERROR, got 'loud'"),
    (["--shutdown-grace", "-0.5"], "for '--shutdown-grace': must be at least 0 seconds, got -0.5"),
    (["--shutdown-grace", "NaN"], "'--shutdown-grace': must be at least 0 seconds, got NaN"),
    (["--intra-op-spinning", "fast"], "'--intra-op-spinning': must be 1/true/yes/on or"),
    (["--no-such-option"], "No such option '--no-such-option'"),
])
def test_a_bad_flag_is_named_in_a_usage_error(
        capsys: pytest.CaptureFixture[str], args: list[str], says: str) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_config(args)
    assert exited.value.code == 2
    assert says in " ".join(capsys.readouterr().err.split())


def test_every_setting_is_a_flag_and_a_variable_in_the_help(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_config(["--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert len(settings()) == len(fields(ServerConfig))
    for name, declared, _ in settings():
        assert declared.flag in shown, name
        assert declared.env in shown, name
        assert declared.env == "TTS_" + declared.flag[2:].upper().replace("-", "_")


def test_version_is_the_packages(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_config(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"tts-grpc-server {version('kokoro-tts-grpc')}\n"


def test_the_server_command_reports_a_bad_setting_without_a_traceback() -> None:
    done = subprocess.run([sys.executable, "-m", "tts_service.server"], capture_output=True,
                          text=True, timeout=60, env={"TTS_ENGINES": "none", "PATH": ""})
    assert done.returncode == 2
    assert "Invalid value for TTS_ENGINES: must be a whole number, got 'none'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_model_is_one_error_line_without_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "tts_service.server", "--model-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "cannot start: the model is not assembled" in done.stderr
    assert "make models" in done.stderr
    assert "Traceback" not in done.stderr


async def test_a_port_in_use_keeps_grpcs_reason() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError) as refused:
            async with fake_server(port=port):
                pass
    message = str(refused.value)
    assert message.startswith(f"cannot listen on 127.0.0.1:{port}: Failed to bind to address")
