#!/bin/sh
# Builds the shim that lets sherpa-onnx run on PyPI's onnxruntime: build/libonnxruntime.so, or
# the path given as the only argument (the file name must stay libonnxruntime.so).
# Without a C compiler it says so and exits 0: the service then runs on the bundled runtime.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$root/build/libonnxruntime.so"}
cc=${CC:-cc}

if ! command -v "$cc" >/dev/null 2>&1; then
  echo "native/build.sh: no C compiler ('$cc') found; skipping the onnxruntime shim." >&2
  echo "native/build.sh: the service will use sherpa-onnx's bundled (slower) onnxruntime." >&2
  exit 0
fi

mkdir -p "$(dirname "$out")"
# The soname must be exactly libonnxruntime.so: that is the DT_NEEDED name in sherpa-onnx's
# libraries, and ld.so satisfies it with an already-loaded object of that soname.
"$cc" -O2 -fPIC -shared -pthread -Wall -Wextra -Werror \
  -Wl,--version-script="$root/native/ort_shim.map" \
  -Wl,-soname,libonnxruntime.so \
  -o "$out" "$root/native/ort_shim.c"
echo "native/build.sh: built $out"
