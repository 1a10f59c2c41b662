/* Stand-in for sherpa-onnx's bundled libonnxruntime.so that forwards to a newer onnxruntime.
 *
 * sherpa-onnx needs exactly one symbol from onnxruntime, OrtGetApiBase@VERS_1.28.2; everything
 * else goes through the function table it returns. onnxruntime's C API is versioned and
 * backward compatible (a newer OrtApiBase::GetApi(28) still returns the 1.28 table), so
 * answering that one call with a newer library's functions moves the whole engine onto it.
 *
 * We answer with our own OrtApiBase whose GetApi hands out a copy of the real OrtApi table, so
 * that single entries can be wrapped (see install_wrappers). Run always is: it records each
 * run's input token ids and the model's per-token durations in thread-local storage for the
 * engine thread that made the call (ort_shim_last_run), for word timings.
 *
 * Optionally (ort_shim_disable_spinning), CreateSession and CreateSessionFromArray are wrapped
 * too: they first add the session config entry "session.intra_op.allow_spinning" = "0".
 * sherpa-onnx has no such option, and threads that busy-wait between operators steal the cores
 * of the other engines when a pool is oversubscribed.
 *
 * The shim knows no paths and opens nothing. tts_service/onnx_runtime.py loads and checks the
 * real library first, hands us its OrtGetApiBase, and only then imports sherpa_onnx. Any lookup
 * that can fail therefore fails in Python, where falling back to the bundled runtime is still
 * possible; once this file is loaded under the soname libonnxruntime.so there is no going back.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Opaque onnxruntime types; we only pass pointers to them along. */
typedef struct OrtStatus OrtStatus;
typedef struct OrtSession OrtSession;
typedef struct OrtRunOptions OrtRunOptions;
typedef struct OrtValue OrtValue;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;

typedef struct {
  const void *(*GetApi)(uint32_t version);
  const char *(*GetVersionString)(void);
} OrtApiBase;

typedef const OrtApiBase *(*ort_get_api_base_fn)(void);

/* Positions in onnxruntime's OrtApi table (include/onnxruntime/core/session/onnxruntime_c_api.h).
   The order of a released C API version never changes: onnxruntime_c_api.cc asserts, e.g., that
   ReleaseCustomOpDomain is slot 101 and RunOptionsSetSyncStream (the last of version 24) 411. */
enum {
  SLOT_CREATE_SESSION = 7,
  SLOT_CREATE_SESSION_FROM_ARRAY = 8,
  SLOT_RUN = 9,
  SLOT_GET_TENSOR_MUTABLE_DATA = 51,
  SLOT_GET_TENSOR_ELEMENT_TYPE = 60,
  SLOT_GET_TENSOR_SHAPE_ELEMENT_COUNT = 64,
  SLOT_GET_TENSOR_TYPE_AND_SHAPE = 65,
  SLOT_RELEASE_STATUS = 93,
  SLOT_RELEASE_TENSOR_TYPE_AND_SHAPE_INFO = 99,
  SLOT_ADD_SESSION_CONFIG_ENTRY = 130,
  /* Slots copied from the real table: every function of C API versions 1 to 24. The real
     library (>= 1.28.2, checked in Python) has at least these; sherpa-onnx 1.13.8 uses only
     long-standing functions. A call to any later slot aborts with a message (missing_slot). */
  COPIED_SLOTS = 412,
  TABLE_SLOTS = 1024,
};

typedef struct OrtEnv OrtEnv;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef OrtStatus *(*create_session_fn)(const OrtEnv *, const void *model_path,
                                        const OrtSessionOptions *, OrtSession **);
typedef OrtStatus *(*create_session_from_array_fn)(const OrtEnv *, const void *model_data,
                                                   size_t model_data_length,
                                                   const OrtSessionOptions *, OrtSession **);
typedef OrtStatus *(*add_session_config_entry_fn)(OrtSessionOptions *, const char *key,
                                                  const char *value);
typedef OrtStatus *(*run_fn)(OrtSession *, const OrtRunOptions *, const char *const *,
                             const OrtValue *const *, size_t, const char *const *, size_t,
                             OrtValue **);
typedef OrtStatus *(*get_tensor_mutable_data_fn)(OrtValue *, void **);
typedef OrtStatus *(*get_tensor_type_and_shape_fn)(const OrtValue *, OrtTensorTypeAndShapeInfo **);
typedef OrtStatus *(*get_tensor_element_type_fn)(const OrtTensorTypeAndShapeInfo *, int *);
typedef OrtStatus *(*get_tensor_shape_element_count_fn)(const OrtTensorTypeAndShapeInfo *, size_t *);
typedef void (*release_status_fn)(OrtStatus *);
typedef void (*release_tensor_type_and_shape_info_fn)(OrtTensorTypeAndShapeInfo *);

#define ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 7
/* Kokoro takes at most 510 tokens plus the two 0 pads sherpa-onnx adds. */
#define MAX_RECORDED_TOKENS 512
#define TOKENS_INPUT "tokens"
#define DURATIONS_OUTPUT "durations" /* added by models/assemble.py */

static ort_get_api_base_fn target;
static int spinning_disabled;
static int quiet_sessions;
static const OrtApiBase *real_base;
static const void *const *real_api; /* set once, under api_lock, after the copy is made */
static void *api_copy[TABLE_SLOTS];
static OrtApiBase shim_base;
static pthread_once_t base_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t api_lock = PTHREAD_MUTEX_INITIALIZER;

/* One run's record, per thread: sherpa-onnx calls Run and then the per-sentence callback from
   the same thread, so the callback reads exactly the run that made its audio. */
static __thread int64_t recorded_count = -1;
static __thread int64_t recorded_tokens[MAX_RECORDED_TOKENS];
static __thread int64_t recorded_durations[MAX_RECORDED_TOKENS];

/* Returns 0 on success, -1 if fn is unusable (NULL, or ourselves, which would recurse). */
int ort_shim_set_target(ort_get_api_base_fn fn);
/* Must be called before the first OrtGetApiBase; returns 0. */
int ort_shim_disable_spinning(void);
/* How many sessions were created with spinning turned off. */
int ort_shim_quiet_sessions(void);
const OrtApiBase *OrtGetApiBase(void);
int64_t ort_shim_last_run(int64_t *tokens, int64_t *durations, int64_t capacity);

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

int ort_shim_quiet_sessions(void) { return __atomic_load_n(&quiet_sessions, __ATOMIC_RELAXED); }

static void missing_slot(void) {
  fputs("ort_shim: sherpa-onnx called an onnxruntime C API function beyond the slots the shim "
        "copies (native/ort_shim.c COPIED_SLOTS); run with --onnxruntime bundled\n", stderr);
  abort();
}

/* Copies `count` int64 elements of a tensor into `dest`; returns the count, or -1 if the value
   is not an int64 tensor of at most `capacity` elements. */
static int64_t copy_int64_tensor(const OrtValue *value, int64_t *dest, int64_t capacity) {
  OrtTensorTypeAndShapeInfo *info = NULL;
  OrtStatus *status = ((get_tensor_type_and_shape_fn)real_api[SLOT_GET_TENSOR_TYPE_AND_SHAPE])(
      value, &info);
  int element_type = 0;
  size_t count = 0;
  if (status == NULL) {
    status = ((get_tensor_element_type_fn)real_api[SLOT_GET_TENSOR_ELEMENT_TYPE])(info,
                                                                                &element_type);
  }
  if (status == NULL) {
    status = ((get_tensor_shape_element_count_fn)real_api[SLOT_GET_TENSOR_SHAPE_ELEMENT_COUNT])(
        info, &count);
  }
  if (info != NULL) {
    ((release_tensor_type_and_shape_info_fn)real_api[SLOT_RELEASE_TENSOR_TYPE_AND_SHAPE_INFO])(info);
  }
  void *data = NULL;
  if (status == NULL && element_type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 &&
      count <= (size_t)capacity) {
    /* GetTensorMutableData only reads here; the C API has no const variant in version 24. */
    status = ((get_tensor_mutable_data_fn)real_api[SLOT_GET_TENSOR_MUTABLE_DATA])(
        (OrtValue *)value, &data);
  }
  if (status != NULL) {
    ((release_status_fn)real_api[SLOT_RELEASE_STATUS])(status);
    return -1;
  }
  if (data == NULL) {
    return -1;
  }
  memcpy(dest, data, count * sizeof(int64_t));
  return (int64_t)count;
}

static int find_name(const char *const *names, size_t count, const char *name) {
  for (size_t i = 0; i < count; ++i) {
    if (names[i] != NULL && strcmp(names[i], name) == 0) {
      return (int)i;
    }
  }
  return -1;
}

/* Runs the model exactly as asked, then keeps a copy of the token ids and the durations. The
   durations are a graph output of the assembled model, and sherpa-onnx asks the session for all
   its outputs (it keeps only the audio), so nothing is added to the call: the outputs go back
   untouched and sherpa-onnx releases them as before. */
static OrtStatus *wrapped_run(OrtSession *session, const OrtRunOptions *run_options,
                              const char *const *input_names, const OrtValue *const *inputs,
                              size_t input_len, const char *const *output_names,
                              size_t output_names_len, OrtValue **outputs) {
  recorded_count = -1;
  OrtStatus *status = ((run_fn)real_api[SLOT_RUN])(session, run_options, input_names, inputs,
                                                   input_len, output_names, output_names_len,
                                                   outputs);
  if (status != NULL) {
    return status;
  }
  int tokens_at = find_name(input_names, input_len, TOKENS_INPUT);
  int durations_at = find_name(output_names, output_names_len, DURATIONS_OUTPUT);
  if (tokens_at < 0 || durations_at < 0 || outputs[durations_at] == NULL) {
    return NULL;
  }
  int64_t tokens = copy_int64_tensor(inputs[tokens_at], recorded_tokens, MAX_RECORDED_TOKENS);
  int64_t durations = copy_int64_tensor(outputs[durations_at], recorded_durations,
                                        MAX_RECORDED_TOKENS);
  if (tokens >= 0 && tokens == durations) {
    recorded_count = tokens;
  }
  return NULL;
}

static OrtStatus *no_spinning(const OrtSessionOptions *options) {
  /* The options are sherpa-onnx's own, non-const object; adding an entry is what its caller
     would have done had it had the option. */
  OrtStatus *status = ((add_session_config_entry_fn)real_api[SLOT_ADD_SESSION_CONFIG_ENTRY])(
      (OrtSessionOptions *)options, "session.intra_op.allow_spinning", "0");
  if (status == NULL) {
    __atomic_add_fetch(&quiet_sessions, 1, __ATOMIC_RELAXED);
  }
  return status;
}

static OrtStatus *quiet_create_session(const OrtEnv *env, const void *model_path,
                                       const OrtSessionOptions *options, OrtSession **out) {
  OrtStatus *status = no_spinning(options);
  if (status != NULL) {
    return status;
  }
  return ((create_session_fn)real_api[SLOT_CREATE_SESSION])(env, model_path, options, out);
}

static OrtStatus *quiet_create_session_from_array(const OrtEnv *env, const void *model_data,
                                                  size_t model_data_length,
                                                  const OrtSessionOptions *options,
                                                  OrtSession **out) {
  OrtStatus *status = no_spinning(options);
  if (status != NULL) {
    return status;
  }
  return ((create_session_from_array_fn)real_api[SLOT_CREATE_SESSION_FROM_ARRAY])(
      env, model_data, model_data_length, options, out);
}

/* The one place where entries of the table are replaced. */
static void install_wrappers(void) {
  api_copy[SLOT_RUN] = (void *)wrapped_run;
  if (spinning_disabled) {
    api_copy[SLOT_CREATE_SESSION] = (void *)quiet_create_session;
    api_copy[SLOT_CREATE_SESSION_FROM_ARRAY] = (void *)quiet_create_session_from_array;
  }
}

static const void *shim_get_api(uint32_t version) {
  const void *const *table = real_base->GetApi(version);
  if (table == NULL) {
    return NULL; /* a version the real library does not serve: the caller reports it */
  }
  /* onnxruntime serves every version from one table; the first request decides the copy. */
  pthread_mutex_lock(&api_lock);
  if (real_api == NULL) {
    for (size_t i = 0; i < TABLE_SLOTS; ++i) {
      api_copy[i] = i < COPIED_SLOTS ? (void *)table[i] : (void *)missing_slot;
    }
    install_wrappers();
    real_api = table;
  }
  pthread_mutex_unlock(&api_lock);
  return api_copy;
}

static void make_base(void) {
  real_base = target();
  if (real_base == NULL) {
    return;
  }
  shim_base.GetApi = shim_get_api;
  shim_base.GetVersionString = real_base->GetVersionString;
}

const OrtApiBase *OrtGetApiBase(void) {
  if (target == NULL) {
    /* Only reachable if something loads the shim without tts_service.onnx_runtime. Returning
       NULL would make onnxruntime's C++ header dereference it and segfault with no hint. */
    fputs("ort_shim: OrtGetApiBase called before ort_shim_set_target; load the shim through "
          "tts_service.onnx_runtime.activate()\n", stderr);
    abort();
  }
  pthread_once(&base_once, make_base);
  return real_base != NULL ? &shim_base : NULL;
}

int64_t ort_shim_last_run(int64_t *tokens, int64_t *durations, int64_t capacity) {
  /* Returns the calling thread's last run (token ids and frames per token) and forgets it, so
     a record is never read twice; -1 when there is none or it does not fit. */
  int64_t count = recorded_count;
  recorded_count = -1;
  if (count < 0 || count > capacity) {
    return -1;
  }
  memcpy(tokens, recorded_tokens, (size_t)count * sizeof(int64_t));
  memcpy(durations, recorded_durations, (size_t)count * sizeof(int64_t));
  return count;
}
