/* Stand-in for sherpa-onnx's bundled libonnxruntime.so that forwards to a newer onnxruntime.
 *
 * sherpa-onnx needs exactly one symbol from onnxruntime, OrtGetApiBase@VERS_1.28.2; everything
 * else goes through the function table it returns. onnxruntime's C API is versioned and
 * backward compatible (a newer OrtApiBase::GetApi(28) still returns the 1.28 table), so
 * answering that one call with a newer library's OrtApiBase moves the whole engine onto it.
 *
 * The shim knows no paths and opens nothing. tts_service/onnx_runtime.py loads and checks the
 * real library first, hands us its OrtGetApiBase, and only then imports sherpa_onnx. Any lookup
 * that can fail therefore fails in Python, where falling back to the bundled runtime is still
 * possible; once this file is loaded under the soname libonnxruntime.so there is no going back.
 */
#include <stdio.h>
#include <stdlib.h>

typedef const void *(*ort_get_api_base_fn)(void);

static ort_get_api_base_fn target;

/* Returns 0 on success, -1 if fn is unusable (NULL, or ourselves, which would recurse). */
int ort_shim_set_target(ort_get_api_base_fn fn);
const void *OrtGetApiBase(void);

int ort_shim_set_target(ort_get_api_base_fn fn) {
  if (fn == NULL || fn == OrtGetApiBase) {
    return -1;
  }
  /* Called once, before sherpa_onnx exists in the process, so no reader can race this. */
  target = fn;
  return 0;
}

const void *OrtGetApiBase(void) {
  if (target == NULL) {
    /* Only reachable if something loads the shim without tts_service.onnx_runtime. Returning
       NULL would make onnxruntime's C++ header dereference it and segfault with no hint. */
    fputs("ort_shim: OrtGetApiBase called before ort_shim_set_target; load the shim through "
          "tts_service.onnx_runtime.activate()\n", stderr);
    abort();
  }
  return target();
}
