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
 *
 * Optionally (ort_shim_disable_spinning), the shim hands out a copy of the API table whose
 * CreateSession and CreateSessionFromArray first add the session config entry
 * "session.intra_op.allow_spinning" = "0": sherpa-onnx has no such option, and threads that
 * busy-wait between operators steal the cores of the other engines when a pool is
 * oversubscribed. Slot numbers are from onnxruntime_c_api.h, where they never change.
 */
/* dladdr */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef const void *(*ort_get_api_base_fn)(void);
typedef void ort_status;
typedef ort_status *(*create_session_fn)(const void *env, const void *model_path,
                                         const void *options, void **out);
typedef ort_status *(*create_session_from_array_fn)(const void *env, const void *model_data,
                                                    size_t model_data_length,
                                                    const void *options, void **out);
typedef ort_status *(*add_session_config_entry_fn)(void *options, const char *key,
                                                   const char *value);

/* OrtApiBase, as in onnxruntime_c_api.h. */
typedef struct {
  const void *(*GetApi)(uint32_t version);
  const char *(*GetVersionString)(void);
} ort_api_base;

enum {
  SLOT_CREATE_SESSION = 7,
  SLOT_CREATE_SESSION_FROM_ARRAY = 8,
  SLOT_ADD_SESSION_CONFIG_ENTRY = 130,
  /* Far above any onnxruntime's table; only bounds the scan below. */
  MAX_SLOTS = 4096,
};

static ort_get_api_base_fn target;
static int spinning_disabled;
static const ort_api_base *real_base;
static ort_api_base quiet_base;
static void *quiet_api[MAX_SLOTS];
static const void *real_api;
static pthread_once_t quiet_api_once = PTHREAD_ONCE_INIT;
static int quiet_sessions;

/* Returns 0 on success, -1 if fn is unusable (NULL, or ourselves, which would recurse). */
int ort_shim_set_target(ort_get_api_base_fn fn);
/* Must be called before the first OrtGetApiBase; returns 0. */
int ort_shim_disable_spinning(void);
/* How many sessions were created with spinning turned off. */
int ort_shim_quiet_sessions(void);
const void *OrtGetApiBase(void);

int ort_shim_set_target(ort_get_api_base_fn fn) {
  if (fn == NULL || fn == OrtGetApiBase) {
    return -1;
  }
  /* Called once, before sherpa_onnx exists in the process, so no reader can race this. */
  target = fn;
  return 0;
}

int ort_shim_disable_spinning(void) {
  spinning_disabled = 1;
  return 0;
}

static ort_status *no_spinning(const void *options) {
  add_session_config_entry_fn add =
      (add_session_config_entry_fn)((void *const *)real_api)[SLOT_ADD_SESSION_CONFIG_ENTRY];
  /* The options are sherpa-onnx's own, non-const object; adding an entry is what its caller
     would have done had it had the option. */
  ort_status *status = add((void *)options, "session.intra_op.allow_spinning", "0");
  if (status == NULL) {
    __atomic_add_fetch(&quiet_sessions, 1, __ATOMIC_RELAXED);
  }
  return status;
}

static ort_status *quiet_create_session(const void *env, const void *model_path,
                                        const void *options, void **out) {
  ort_status *status = no_spinning(options);
  if (status != NULL) {
    return status;
  }
  return ((create_session_fn)((void *const *)real_api)[SLOT_CREATE_SESSION])(env, model_path,
                                                                             options, out);
}

static ort_status *quiet_create_session_from_array(const void *env, const void *model_data,
                                                   size_t model_data_length,
                                                   const void *options, void **out) {
  ort_status *status = no_spinning(options);
  if (status != NULL) {
    return status;
  }
  return ((create_session_from_array_fn)((void *const *)real_api)
              [SLOT_CREATE_SESSION_FROM_ARRAY])(env, model_data, model_data_length, options,
                                                out);
}

/* The table's length is not exported: count the slots that point into onnxruntime itself. */
static size_t count_slots(void *const *table) {
  Dl_info library, entry;
  if (dladdr(table[0], &library) == 0) {
    return 0;
  }
  size_t slots = 0;
  while (slots < MAX_SLOTS && table[slots] != NULL && dladdr(table[slots], &entry) != 0 &&
         entry.dli_fbase == library.dli_fbase) {
    slots++;
  }
  return slots;
}

static uint32_t requested_version;

static void copy_api(void) {
  real_api = real_base->GetApi(requested_version);
  if (real_api == NULL) {
    return;
  }
  size_t slots = count_slots((void *const *)real_api);
  if (slots <= SLOT_ADD_SESSION_CONFIG_ENTRY) {
    fprintf(stderr, "ort_shim: onnxruntime's API table has %zu slots, too few to turn "
            "spinning off; sessions keep the default\n", slots);
    spinning_disabled = 0;
    return;
  }
  memcpy(quiet_api, real_api, slots * sizeof(void *));
  quiet_api[SLOT_CREATE_SESSION] = (void *)quiet_create_session;
  quiet_api[SLOT_CREATE_SESSION_FROM_ARRAY] = (void *)quiet_create_session_from_array;
}

static const void *quiet_get_api(uint32_t version) {
  /* sherpa-onnx asks for one version only; the first request decides the table copied. */
  requested_version = version;
  pthread_once(&quiet_api_once, copy_api);
  if (!spinning_disabled || real_api == NULL) {
    return real_base->GetApi(version);
  }
  return quiet_api;
}

int ort_shim_quiet_sessions(void) { return __atomic_load_n(&quiet_sessions, __ATOMIC_RELAXED); }

const void *OrtGetApiBase(void) {
  if (target == NULL) {
    /* Only reachable if something loads the shim without tts_service.onnx_runtime. Returning
       NULL would make onnxruntime's C++ header dereference it and segfault with no hint. */
    fputs("ort_shim: OrtGetApiBase called before ort_shim_set_target; load the shim through "
          "tts_service.onnx_runtime.activate()\n", stderr);
    abort();
  }
  if (!spinning_disabled) {
    return target();
  }
  if (real_base == NULL) {
    real_base = target();
    quiet_base.GetApi = quiet_get_api;
    quiet_base.GetVersionString = real_base->GetVersionString;
  }
  return &quiet_base;
}
