"""Chooses which onnxruntime sherpa-onnx runs on: its bundled copy or the faster PyPI one."""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import mmap
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

_LOGGER = logging.getLogger(__name__)

# onnxruntime's PyPI builds carry Microsoft's telemetry uploader, which looks up its host
# some seconds after start-up; a self-hosted speech service sends nothing anywhere. The
# variable must be set before onnxruntime initializes, and every process that loads it imports
# this module first (the server, the runtime probe's child, the bench); children inherit it.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

RuntimeName = Literal["bundled", "pypi"]
RUNTIMES: tuple[RuntimeName, ...] = ("bundled", "pypi")
CHOICES = ("auto", *RUNTIMES)

# sherpa-onnx 1.13.8 was built against onnxruntime 1.28.2: its binaries import
# OrtGetApiBase@VERS_1.28.2 and ask for C API version 28. native/ort_shim.map must match.
SHIM_ORT_VERSION = "1.28.2"
_REQUIRED_API_VERSION = 28

# Built by native/build.sh; the service passes this unless configured otherwise.
DEFAULT_SHIM_PATH = Path(__file__).resolve().parents[2] / "build" / "libonnxruntime.so"

# The soname sherpa-onnx's libraries name in DT_NEEDED. Whichever object with this soname is
# loaded first in the process is the one they bind to.
_SONAME = "libonnxruntime.so"


class RuntimeUnavailableError(Exception):
    """The requested onnxruntime cannot be used (or can no longer be changed)."""


@dataclass(frozen=True)
class RuntimeInfo:
    """The onnxruntime this process runs sherpa-onnx on, and why."""

    name: RuntimeName
    version: str
    reason: str


class _OrtApiBase(ctypes.Structure):
    # The first two members of onnxruntime's OrtApiBase; stable since the C API's first release.
    _fields_ = [
        ("GetApi", ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_uint32)),
        ("GetVersionString", ctypes.CFUNCTYPE(ctypes.c_char_p)),
    ]


_GetApiBaseFn = ctypes.CFUNCTYPE(ctypes.POINTER(_OrtApiBase))

# The shim keeps at most this many tokens per run (Kokoro's 510 plus sherpa-onnx's two pads).
_MAX_RECORDED_TOKENS = 512

# Weights smaller than this are not worth a shared copy: together they are well under 1 MB.
_SMALLEST_SHARED_BYTES = 1024
# Bytes of a weight looked for in the model file before the whole of it is compared.
_RAW_DATA_PROBE_BYTES = 64

_active: RuntimeInfo | None = None
# The buffers every session reads its shared weights from (share_weights); never freed.
_shared_weights: list[np.ndarray] = []
# The model file, mapped read-only: most shared weights are views of it.
_model_map: mmap.mmap | None = None
# The shim's ort_shim_last_run, once the shim is active: word timings read each run through it.
_last_run_fn: Any = None
# The shim's ort_shim_set_style, once a shim that has it is active: voices mixed per request.
_set_style_fn: Any = None
# ctypes never unloads a library, but holding the handles documents that they must stay.
_handles: list[ctypes.CDLL] = []
_shim: ctypes.CDLL | None = None


def activate(choice: str = "auto", shim_path: Path | None = DEFAULT_SHIM_PATH,
             self_check: Callable[[], str | None] | None = None) -> RuntimeInfo:
    """Makes sherpa-onnx use the chosen runtime; must run before anything imports sherpa_onnx.

    "auto": PyPI's onnxruntime when the shim and library load and pass the checks, else the
    bundled one (one warning line says why). `self_check`, run last before the shim is
    loaded, returns None when the PyPI runtime works, else why not (runtime_probe.prove).
    "pypi": the same, but a failure raises RuntimeUnavailableError. "bundled": sherpa-onnx's
    own copy. Calling again returns the runtime already chosen, or raises if it contradicts an
    explicit choice.
    """
    global _active
    if choice not in CHOICES:
        raise RuntimeUnavailableError(f"unknown onnxruntime {choice!r}; use one of {CHOICES}")
    if _active is not None:
        return _check_compatible(choice, _active)
    if "sherpa_onnx" in sys.modules:
        info = RuntimeInfo(
            "bundled",
            _loaded_version(),
            "sherpa_onnx was imported before onnx_runtime.activate(); the runtime can no "
            "longer be changed in this process",
        )
        _active = _check_compatible(choice, info)
        _LOGGER.warning("onnxruntime %s (%s): %s", info.version, info.name, info.reason)
        return _active

    if choice == "bundled":
        _active = _activate_bundled("requested")
    else:
        try:
            _active = _activate_pypi(shim_path, self_check)
        except _NotActivatedError as exc:
            if choice == "pypi":
                raise RuntimeUnavailableError(f"PyPI onnxruntime unavailable: {exc}") from exc
            _active = _activate_bundled(f"PyPI onnxruntime unavailable: {exc}")
            _LOGGER.warning("onnxruntime %s (bundled, slower): %s", _active.version, _active.reason)
            return _active
    # The caller logs the outcome; only a silent downgrade (above) deserves our own line.
    _LOGGER.debug("onnxruntime %s (%s): %s", _active.version, _active.name, _active.reason)
    return _active


def disable_intra_op_spinning() -> bool:
    """Makes the engines' worker threads sleep, not busy-wait, between operators.

    onnxruntime's default ("session.intra_op.allow_spinning" = "1") costs little with one
    thread per engine but takes cores from the other engines when multi-threaded engines
    share them. Only the PyPI runtime, through the shim, can do it: call after activate() and
    before sherpa_onnx is imported. Returns whether it applies.
    """
    if _shim is None or "sherpa_onnx" in sys.modules:
        return False
    try:
        disable = _shim.ort_shim_disable_spinning
    except AttributeError:  # a shim built before the option existed
        return False
    disable.restype = ctypes.c_int
    return bool(disable() == 0)


def quiet_sessions() -> int:
    """Sessions created so far with spinning off (see disable_intra_op_spinning)."""
    if _shim is None or not hasattr(_shim, "ort_shim_quiet_sessions"):
        return 0
    return int(_shim.ort_shim_quiet_sessions())


def share_weights(model: Path) -> int:
    """Makes the sessions created afterwards share `model`'s weights instead of each copying them.

    The shim adds the weights to every session (onnxruntime's AddInitializer) and creates the
    sessions with one pre-packed weights container, so the packed copies some kernels make of
    them exist once too. The weights are read from a mapping of the model file itself where
    they lie in it as they are (raw bytes at an offset their type allows), else copied once.
    Only the PyPI runtime, through the shim, can: call after activate() and before sherpa_onnx
    is imported, and release_packed_weights() once every engine is loaded. Worth it only for
    more than one session. Returns how many weights are shared (0 when it does not apply).
    """
    global _model_map
    if _shared_weights:
        return len(_shared_weights)
    if _shim is None or "sherpa_onnx" in sys.modules:
        return 0
    try:
        register = _shim.ort_shim_share_initializer
    except AttributeError:  # a shim built before sharing existed
        return 0
    register.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                         ctypes.c_size_t, ctypes.c_int]
    register.restype = ctypes.c_int
    import onnx
    from onnx import numpy_helper

    with model.open("rb") as file:
        _model_map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    searched_to = 0
    for tensor in onnx.load(str(model)).graph.initializer:
        if tensor.data_type == onnx.TensorProto.STRING:
            continue
        parsed = numpy_helper.to_array(tensor)
        if parsed.nbytes < _SMALLEST_SHARED_BYTES:
            continue
        at = _find_raw_data(_model_map, tensor.raw_data, searched_to, parsed.itemsize)
        if at is None:
            # A copy: a view would keep the whole parsed model alive.
            weights = np.array(parsed, copy=True, order="C")
        else:
            searched_to = at + parsed.nbytes
            weights = np.frombuffer(_model_map, parsed.dtype, parsed.size,
                                    at).reshape(parsed.shape)
        dims = np.array(weights.shape, dtype=np.int64)
        # onnxruntime numbers element types as ONNX's TensorProto does.
        if register(tensor.name.encode(), weights.ctypes.data, weights.nbytes, dims.ctypes.data,
                    len(dims), tensor.data_type) != 0:
            raise RuntimeUnavailableError(f"the shim could not keep weight {tensor.name!r}")
        _shared_weights.append(weights)
    return len(_shared_weights)


def _find_raw_data(mapped: mmap.mmap, raw: bytes, start: int, alignment: int) -> int | None:
    """Where `raw` lies in the file: its first match at or after `start` (protobuf writes the
    initializers in order, each a few header bytes after the last), if that match is all of it
    and at an offset its type allows; else None, and the weight is copied instead."""
    at = mapped.find(raw[:_RAW_DATA_PROBE_BYTES], start) if raw else -1
    if at < 0 or at % alignment or mapped[at:at + len(raw)] != raw:
        return None
    return at


def release_packed_weights() -> bool:
    """Once every engine is loaded: gives back the resident pages of the mapped model file.

    Pre-packed weights are read from the file only while their sessions are created; the
    packed copies are what the kernels use. Pages still read later come back from the page
    cache on their first use, so only the weights no kernel reads any more leave memory.
    Returns whether there was a mapping.
    """
    if _model_map is None:
        return False
    _model_map.madvise(mmap.MADV_DONTNEED)
    return True


def sharing_sessions() -> int:
    """Sessions created so far with the shared weights (see share_weights)."""
    if _shim is None or not hasattr(_shim, "ort_shim_sharing_sessions"):
        return 0
    return int(_shim.ort_shim_sharing_sessions())


def shrink_arenas() -> bool:
    """Makes every session hand its memory arena's free regions back after each run.

    onnxruntime keeps, per session, the largest memory a run ever needed: a long sentence on
    each engine once, and the server holds that much for good. Shrunk after every run, an idle
    engine holds only its weights' share. Only the PyPI runtime, through the shim, can: call
    after activate() and before sherpa_onnx is imported. Returns whether it applies.
    """
    if _shim is None or "sherpa_onnx" in sys.modules:
        return False
    try:
        shrink = _shim.ort_shim_shrink_arenas
    except AttributeError:  # a shim built before the option existed
        return False
    shrink.restype = ctypes.c_int
    return bool(shrink() == 0)


def active() -> RuntimeInfo | None:
    """The runtime chosen by activate() in this process, if any."""
    return _active


def records_runs() -> bool:
    """Whether the engine's runs are recorded (token ids and durations): the shim is active."""
    return _last_run_fn is not None


def overrides_styles() -> bool:
    """Whether a thread can make its runs read another style table (set_style): the shim is
    active and was built with ort_shim_set_style."""
    return _set_style_fn is not None


def set_style(table: np.ndarray | None) -> None:
    """Makes the calling thread's model runs read their style from `table` instead of the
    voices file: a float32 C-contiguous [rows, width] array whose row for a run's token count
    (as sherpa-onnx picks it) replaces the model's `style` input; None goes back to the voices
    file. The caller keeps `table` alive until it clears it; a run the table does not fit
    fails rather than speak with another voice.

    Raises RuntimeUnavailableError without the shim (see overrides_styles).
    """
    if _set_style_fn is None:
        raise RuntimeUnavailableError("a style override needs the PyPI onnxruntime through a "
                                      "shim built with ort_shim_set_style (make shim)")
    if table is None:
        _set_style_fn(None, 0, 0)
        return
    if (table.dtype != np.float32 or table.ndim != 2 or not table.flags.c_contiguous
            or 0 in table.shape):
        raise ValueError(f"a style table is float32 rows x width, C-contiguous; got "
                         f"{table.dtype} {table.shape}")
    if _set_style_fn(table.ctypes.data, table.shape[0], table.shape[1]) != 0:
        raise ValueError(f"the shim refused a style table of shape {table.shape}")


def last_run() -> tuple[np.ndarray, np.ndarray] | None:
    """The calling thread's last model run, as (token ids, frames per token), then forgotten.

    Call it from the engine thread, in sherpa-onnx's per-sentence callback: the shim records
    each run of the thread that made it. None when runs are not recorded (bundled runtime), or
    the model has no durations output.
    """
    if _last_run_fn is None:
        return None
    tokens = np.empty(_MAX_RECORDED_TOKENS, dtype=np.int64)
    durations = np.empty(_MAX_RECORDED_TOKENS, dtype=np.int64)
    count = _last_run_fn(tokens.ctypes.data, durations.ctypes.data, _MAX_RECORDED_TOKENS)
    if count < 0:
        return None
    return tokens[:count], durations[:count]


class _NotActivatedError(Exception):
    """A check failed before the shim was loaded, so the bundled runtime is still possible."""


def _check_compatible(choice: str, info: RuntimeInfo) -> RuntimeInfo:
    if choice in ("auto", info.name):
        return info
    raise RuntimeUnavailableError(
        f"onnxruntime {choice!r} requested but this process already runs on {info.name} "
        f"{info.version} ({info.reason}); the runtime can no longer be changed"
    )


def _activate_bundled(reason: str) -> RuntimeInfo:
    lib = _package_dir("sherpa_onnx") / "lib" / _SONAME
    try:
        # Loading it now, by the path sherpa-onnx's RPATH would find anyway, pins the choice
        # (a shim loaded later would lose the soname match) and lets us ask its version.
        handle = ctypes.CDLL(str(lib))
    except OSError as exc:
        # sherpa_onnx's own import will report a broken install far more clearly than we can.
        _LOGGER.debug("could not preload %s: %s", lib, exc)
        return RuntimeInfo("bundled", "unknown", reason)
    _handles.append(handle)
    return RuntimeInfo("bundled", _version_of(handle), reason)


def _activate_pypi(shim_path: Path | None,
                   self_check: Callable[[], str | None] | None) -> RuntimeInfo:
    # Everything that can fail is checked before the shim is loaded: from that moment on, its
    # soname answers sherpa-onnx's DT_NEEDED and the bundled runtime is out of reach.
    if shim_path is None:
        raise _NotActivatedError("no shim configured")
    if not shim_path.is_file():
        raise _NotActivatedError(f"shim {shim_path} not found (run native/build.sh)")
    _check_sherpa_abi()
    real_path = _pypi_library()
    try:
        real = ctypes.CDLL(str(real_path))
    except OSError as exc:
        raise _NotActivatedError(f"cannot load {real_path}: {exc}") from exc
    _handles.append(real)
    try:
        real_get_api_base = _GetApiBaseFn(("OrtGetApiBase", real))
    except AttributeError as exc:
        raise _NotActivatedError(f"{real_path} has no OrtGetApiBase") from exc
    version = _check_api(real_get_api_base, str(real_path))
    if _version_tuple(version) < _version_tuple(SHIM_ORT_VERSION):
        raise _NotActivatedError(f"{real_path} is onnxruntime {version}, older than bundled")
    problem = self_check() if self_check is not None else None
    if problem is not None:
        raise _NotActivatedError(f"onnxruntime {version} failed its self-check: {problem}")

    try:
        shim = ctypes.CDLL(str(shim_path), mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        # A failed dlopen leaves nothing mapped, so falling back is still safe.
        raise _NotActivatedError(f"cannot load shim {shim_path}: {exc}") from exc
    _handles.append(shim)
    global _shim
    _shim = shim
    # From here on a failure is final: RuntimeUnavailableError even for "auto".
    try:
        set_target = shim.ort_shim_set_target
    except AttributeError as exc:
        raise RuntimeUnavailableError(
            f"{shim_path} is not the ort shim but now owns the soname {_SONAME}; restart "
            "with a correct shim path or --onnx-runtime bundled"
        ) from exc
    set_target.argtypes = [ctypes.c_void_p]
    set_target.restype = ctypes.c_int
    real_address = ctypes.cast(real_get_api_base, ctypes.c_void_p).value
    if set_target(real_address) != 0:
        raise RuntimeUnavailableError(f"shim {shim_path} rejected the target {real_path}")
    global _last_run_fn
    last_run = getattr(shim, "ort_shim_last_run", None)
    if last_run is not None:
        last_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        last_run.restype = ctypes.c_int64
        _last_run_fn = last_run
    global _set_style_fn
    set_style = getattr(shim, "ort_shim_set_style", None)  # absent from shims built before it
    if set_style is not None:
        set_style.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64]
        set_style.restype = ctypes.c_int
        _set_style_fn = set_style
    forwarded = _loaded_version()
    if forwarded != version:
        raise RuntimeUnavailableError(
            f"shim reports onnxruntime {forwarded}, expected {version} from {real_path}"
        )
    return RuntimeInfo("pypi", version, f"{real_path.name} via shim {shim_path}")


def _check_api(get_api_base: Callable[[], Any], where: str) -> str:
    base = get_api_base()
    if not base:
        raise _NotActivatedError(f"OrtGetApiBase() of {where} returned NULL")
    raw = base.contents.GetVersionString()
    version = raw.decode() if raw else ""
    if not re.fullmatch(r"\d+\.\d+\.\d+.*", version):
        raise _NotActivatedError(f"{where} reports an unparsable version {version!r}")
    # The newer library must still serve the API table sherpa-onnx was compiled against.
    if not base.contents.GetApi(_REQUIRED_API_VERSION):
        raise _NotActivatedError(
            f"onnxruntime {version} at {where} does not serve C API v{_REQUIRED_API_VERSION}"
        )
    return version


def _check_sherpa_abi() -> None:
    # If a newer sherpa-onnx needs another version node, ld.so would refuse to import it once
    # the shim is loaded; reading the version strings from its binary catches that in advance.
    lib_dir = _package_dir("sherpa_onnx") / "lib"
    modules = sorted(lib_dir.glob("_sherpa_onnx*.so"))
    if not modules:
        raise _NotActivatedError(f"no _sherpa_onnx extension in {lib_dir}")
    wanted = set(re.findall(rb"VERS_\d+\.\d+\.\d+", modules[0].read_bytes()))
    if wanted != {f"VERS_{SHIM_ORT_VERSION}".encode()}:
        found = ", ".join(sorted(w.decode() for w in wanted)) or "none"
        raise _NotActivatedError(
            f"{modules[0].name} needs onnxruntime version nodes [{found}], shim provides "
            f"VERS_{SHIM_ORT_VERSION}"
        )


def _pypi_library() -> Path:
    try:
        capi = _package_dir("onnxruntime") / "capi"
    except _NotActivatedError as exc:
        raise _NotActivatedError("the onnxruntime package is not installed") from exc
    # The wheel names it by full version (libonnxruntime.so.1.32.0); sort so the newest wins.
    found = sorted(
        (p for p in capi.glob("libonnxruntime.so.*") if re.fullmatch(r"[\d.]+", p.name[18:])),
        key=lambda p: _version_tuple(p.name[18:]),
    )
    if not found:
        raise _NotActivatedError(f"no libonnxruntime.so.<version> in {capi}")
    return found[-1]


def _package_dir(name: str) -> Path:
    # find_spec on a top-level package locates it without executing its __init__, so
    # sherpa_onnx is not imported (and not linked) by looking.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise _NotActivatedError(f"package {name} not found")
    return Path(next(iter(spec.submodule_search_locations)))


def _loaded_version() -> str:
    # Asks whatever object currently owns the soname sherpa-onnx links to: that is, by
    # definition, the runtime in use. RTLD_NOLOAD never loads anything new.
    try:
        handle = ctypes.CDLL(_SONAME, mode=os.RTLD_NOLOAD)
    except OSError:
        return "unknown"
    return _version_of(handle)


def _version_of(handle: ctypes.CDLL) -> str:
    try:
        base = _GetApiBaseFn(("OrtGetApiBase", handle))()
    except AttributeError:
        return "unknown"
    if not base:
        return "unknown"
    raw = base.contents.GetVersionString()
    return raw.decode() if raw else "unknown"


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])
