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
 * A thread may also set a style override (ort_shim_set_style): a table of style vectors, one
 * row per token count, that the thread's runs use instead of the one sherpa-onnx read from its
 * voices file. sherpa-onnx 1.13.8 takes a voice's style only from the voices file it loaded at
 * start-up; the override is how a voice mixed per request (a weighted average of voices'
 * tables, made after start-up) reaches the model. Each run then gets the override's row for its
 * own token count, picked exactly as sherpa-onnx picks its own (offline-tts-kokoro-model.cc):
 * the `tokens` input's length minus the two pads.
 *
 * Optionally (ort_shim_disable_spinning), CreateSession and CreateSessionFromArray are wrapped
 * too: they first add the session config entry "session.intra_op.allow_spinning" = "0".
 * sherpa-onnx has no such option, and threads that busy-wait between operators steal the cores
 * of the other engines when a pool is oversubscribed.
 *
 * Optionally (ort_shim_share_initializer), the same two are wrapped to share the model's
 * weights between sessions: every registered initializer is added to the session options
 * (AddInitializer: onnxruntime uses the caller's buffer instead of its own copy), and the
 * session is created with one process-wide pre-packed weights container, so the packed copies
 * that kernels such as MatMulInteger make of those weights exist once too (onnxruntime caches
 * pre-packed buffers of shared initializers only). The buffers belong to the caller and must
 * outlive every session. Turning pre-packing off instead would save the packed copy (30 MB)
 * but changes the audio slightly: the unpacked integer kernels round differently.
 *
 * Optionally (ort_shim_shrink_arenas), each session's CPU memory arena hands its free regions
 * back after every run ("memory.enable_memory_arena_shrinkage"), so a long sentence does not
 * leave its largest allocations behind for the life of the engine.
 *
 * The shim knows no paths and opens nothing. tts_service/onnx_runtime.py loads and checks the
 * real library first, hands us its OrtGetApiBase, and only then imports sherpa_onnx. Any lookup
 * that can fail therefore fails in Python, where falling back to the bundled runtime is still
 * possible; once this file is loaded under the soname libonnxruntime.so there is no going back.
 */
#include <malloc.h>
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
  SLOT_CREATE_STATUS = 0,
  SLOT_CREATE_SESSION = 7,
  SLOT_CREATE_SESSION_FROM_ARRAY = 8,
  SLOT_RUN = 9,
  SLOT_CREATE_RUN_OPTIONS = 39,
  SLOT_CREATE_TENSOR_WITH_DATA_AS_ORT_VALUE = 49,
  SLOT_GET_TENSOR_MUTABLE_DATA = 51,
  SLOT_GET_TENSOR_ELEMENT_TYPE = 60,
  SLOT_GET_TENSOR_SHAPE_ELEMENT_COUNT = 64,
  SLOT_GET_TENSOR_TYPE_AND_SHAPE = 65,
  SLOT_CREATE_CPU_MEMORY_INFO = 69,
  SLOT_RELEASE_STATUS = 93,
  SLOT_RELEASE_VALUE = 96,
  SLOT_RELEASE_TENSOR_TYPE_AND_SHAPE_INFO = 99,
  SLOT_ADD_SESSION_CONFIG_ENTRY = 130,
  /* onnxruntime_c_api.cc asserts the ends of versions 5 and 8: SetGlobalSpinControl is 149
     (AddInitializer follows it) and CreateSessionFromArrayWithPrepackedWeightsContainer 169
     (the header declares the rest of version 8 just before it). */
  SLOT_ADD_INITIALIZER = 150,
  SLOT_ADD_RUN_CONFIG_ENTRY = 165,
  SLOT_CREATE_PREPACKED_WEIGHTS_CONTAINER = 166,
  SLOT_CREATE_SESSION_WITH_PREPACKED_WEIGHTS_CONTAINER = 168,
  SLOT_CREATE_SESSION_FROM_ARRAY_WITH_PREPACKED_WEIGHTS_CONTAINER = 169,
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
typedef OrtStatus *(*create_status_fn)(int code, const char *message);
typedef void (*release_value_fn)(OrtValue *);
typedef void (*release_tensor_type_and_shape_info_fn)(OrtTensorTypeAndShapeInfo *);

typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtPrepackedWeightsContainer OrtPrepackedWeightsContainer;
typedef OrtStatus *(*create_cpu_memory_info_fn)(int allocator_type, int mem_type,
                                                OrtMemoryInfo **);
typedef OrtStatus *(*create_tensor_with_data_fn)(const OrtMemoryInfo *, void *data,
                                                 size_t data_length, const int64_t *shape,
                                                 size_t shape_length, int element_type,
                                                 OrtValue **);
typedef OrtStatus *(*add_initializer_fn)(OrtSessionOptions *, const char *name,
                                         const OrtValue *);
typedef OrtStatus *(*create_prepacked_weights_container_fn)(OrtPrepackedWeightsContainer **);
typedef OrtStatus *(*create_session_with_container_fn)(const OrtEnv *, const void *model_path,
                                                       const OrtSessionOptions *,
                                                       OrtPrepackedWeightsContainer *,
                                                       OrtSession **);
typedef OrtStatus *(*create_session_from_array_with_container_fn)(
    const OrtEnv *, const void *model_data, size_t model_data_length, const OrtSessionOptions *,
    OrtPrepackedWeightsContainer *, OrtSession **);
typedef OrtStatus *(*create_run_options_fn)(OrtRunOptions **);
typedef OrtStatus *(*add_run_config_entry_fn)(OrtRunOptions *, const char *key,
                                              const char *value);

#define ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT 1
#define ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 7
#define ORT_INVALID_ARGUMENT 2
/* Kokoro takes at most 510 tokens plus the two 0 pads sherpa-onnx adds. */
#define MAX_RECORDED_TOKENS 512
#define TOKENS_INPUT "tokens"
#define STYLE_INPUT "style"
/* sherpa-onnx pads the token ids with a 0 at each end; the style row is the unpadded count. */
#define TOKEN_PADS 2
/* Kokoro has three inputs (tokens, style, speed); a run with more is not one we can re-route. */
#define MAX_RUN_INPUTS 16
#define DURATIONS_OUTPUT "durations" /* added by models/assemble.py */
/* OrtAllocatorType and OrtMemType of a plain CPU buffer. */
#define ORT_DEVICE_ALLOCATOR 0
#define ORT_MEM_TYPE_DEFAULT 0
#define MAX_SHARED_DIMS 8
#define ARENA_SHRINKAGE_KEY "memory.enable_memory_arena_shrinkage"
#define CPU_ARENA "cpu:0"

/* A weight every session shares: the caller's buffer, and the OrtValue made of it once the
   real API is known (at the first session). */
typedef struct {
  char *name;
  void *data;
  size_t data_length;
  int64_t dims[MAX_SHARED_DIMS];
  size_t dim_count;
  int element_type;
  OrtValue *value;
} shared_initializer;

static ort_get_api_base_fn target;
static int spinning_disabled;
static int quiet_sessions;
static const OrtApiBase *real_base;
static const void *const *real_api; /* set once, under api_lock, after the copy is made */
static void *api_copy[TABLE_SLOTS];
static OrtApiBase shim_base;
static pthread_once_t base_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t api_lock = PTHREAD_MUTEX_INITIALIZER;

/* Registered before sherpa_onnx is imported (so never written while sessions are created); the
   values and the container are made under shared_lock by the first session that needs them. */
static shared_initializer *shared;
static size_t shared_count;
static OrtPrepackedWeightsContainer *weights_container;
static int sharing_sessions;
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static int arenas_shrunk;
static OrtRunOptions *shrinking_run_options; /* made once, for runs that come without options */

/* One run's record, per thread: sherpa-onnx calls Run and then the per-sentence callback from
   the same thread, so the callback reads exactly the run that made its audio. */
static __thread int64_t recorded_count = -1;
static __thread int64_t recorded_tokens[MAX_RECORDED_TOKENS];
static __thread int64_t recorded_durations[MAX_RECORDED_TOKENS];

/* The calling thread's style override (ort_shim_set_style): rows x width floats owned by the
   caller, NULL when none. */
static __thread const float *style_table;
static __thread int64_t style_rows;
static __thread int64_t style_width;
static OrtMemoryInfo *style_memory; /* made once, under shared_lock, for the override's rows */

/* Returns 0 on success, -1 if fn is unusable (NULL, or ourselves, which would recurse). */
int ort_shim_set_target(ort_get_api_base_fn fn);
/* Must be called before the first OrtGetApiBase; returns 0. */
int ort_shim_disable_spinning(void);
/* How many sessions were created with spinning turned off. */
int ort_shim_quiet_sessions(void);
/* Registers a weight (initializer `name`, whose bytes stay at `data` for the life of the
   process) for every session created afterwards to share; returns 0, or -1 if it cannot be
   kept. Must be called before the first OrtGetApiBase. */
int ort_shim_share_initializer(const char *name, void *data, size_t data_length,
                               const int64_t *dims, size_t dim_count, int element_type);
/* How many sessions were created sharing the registered weights. */
int ort_shim_sharing_sessions(void);
/* Must be called before the first OrtGetApiBase; returns 0. */
int ort_shim_shrink_arenas(void);
const OrtApiBase *OrtGetApiBase(void);
int64_t ort_shim_last_run(int64_t *tokens, int64_t *durations, int64_t capacity);
/* Sets the calling thread's style override: `rows` style vectors of `width` floats at `table`,
   which must stay valid until cleared; NULL clears it. Returns 0, or -1 for a bad shape. */
int ort_shim_set_style(const float *table, int64_t rows, int64_t width);

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

int ort_shim_share_initializer(const char *name, void *data, size_t data_length,
                               const int64_t *dims, size_t dim_count, int element_type) {
  if (name == NULL || data == NULL || dim_count > MAX_SHARED_DIMS) {
    return -1;
  }
  shared_initializer *grown = realloc(shared, (shared_count + 1) * sizeof(*shared));
  if (grown == NULL) {
    return -1;
  }
  shared = grown;
  shared_initializer *entry = &shared[shared_count];
  memset(entry, 0, sizeof(*entry));
  entry->name = strdup(name);
  if (entry->name == NULL) {
    return -1;
  }
  entry->data = data;
  entry->data_length = data_length;
  memcpy(entry->dims, dims, dim_count * sizeof(int64_t));
  entry->dim_count = dim_count;
  entry->element_type = element_type;
  shared_count += 1;
  return 0;
}

int ort_shim_sharing_sessions(void) {
  return __atomic_load_n(&sharing_sessions, __ATOMIC_RELAXED);
}

int ort_shim_shrink_arenas(void) {
  arenas_shrunk = 1;
#ifdef M_MMAP_THRESHOLD
  /* A shrinking arena hands its regions (1 MiB and up) to free(). glibc keeps a freed block
     below its mmap threshold in the heap, resident, and raises that threshold up to 32 MiB as
     large blocks come and go; fixed at 1 MiB, every region is a mapping of its own that free()
     gives back to the system. */
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
  return 0;
}

static void missing_slot(void) {
  fputs("ort_shim: sherpa-onnx called an onnxruntime C API function beyond the slots the shim "
        "copies (native/ort_shim.c COPIED_SLOTS); run with --onnxruntime bundled\n", stderr);
  abort();
}

/* The element type and element count of a tensor; a status on failure. */
static OrtStatus *tensor_shape(const OrtValue *value, int *element_type, size_t *count) {
  OrtTensorTypeAndShapeInfo *info = NULL;
  OrtStatus *status = ((get_tensor_type_and_shape_fn)real_api[SLOT_GET_TENSOR_TYPE_AND_SHAPE])(
      value, &info);
  if (status == NULL) {
    status = ((get_tensor_element_type_fn)real_api[SLOT_GET_TENSOR_ELEMENT_TYPE])(info,
                                                                                element_type);
  }
  if (status == NULL) {
    status = ((get_tensor_shape_element_count_fn)real_api[SLOT_GET_TENSOR_SHAPE_ELEMENT_COUNT])(
        info, count);
  }
  if (info != NULL) {
    ((release_tensor_type_and_shape_info_fn)real_api[SLOT_RELEASE_TENSOR_TYPE_AND_SHAPE_INFO])(info);
  }
  return status;
}

/* Copies `count` int64 elements of a tensor into `dest`; returns the count, or -1 if the value
   is not an int64 tensor of at most `capacity` elements. */
static int64_t copy_int64_tensor(const OrtValue *value, int64_t *dest, int64_t capacity) {
  int element_type = 0;
  size_t count = 0;
  OrtStatus *status = tensor_shape(value, &element_type, &count);
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

static OrtStatus *style_error(const char *message) {
  return ((create_status_fn)real_api[SLOT_CREATE_STATUS])(ORT_INVALID_ARGUMENT, message);
}

static int find_name(const char *const *names, size_t count, const char *name) {
  for (size_t i = 0; i < count; ++i) {
    if (names[i] != NULL && strcmp(names[i], name) == 0) {
      return (int)i;
    }
  }
  return -1;
}

/* Points *run_options at options that ask the session to hand its arena's free regions back
   when the run ends: sherpa-onnx's own (a fresh object per run, to which the entry is added),
   or, when it passes none, one shared object made on the first run. */
static OrtStatus *shrinking_options(const OrtRunOptions **run_options) {
  if (*run_options != NULL) {
    return ((add_run_config_entry_fn)real_api[SLOT_ADD_RUN_CONFIG_ENTRY])(
        (OrtRunOptions *)*run_options, ARENA_SHRINKAGE_KEY, CPU_ARENA);
  }
  OrtStatus *status = NULL;
  pthread_mutex_lock(&shared_lock);
  if (shrinking_run_options == NULL) {
    status = ((create_run_options_fn)real_api[SLOT_CREATE_RUN_OPTIONS])(&shrinking_run_options);
    if (status == NULL) {
      status = ((add_run_config_entry_fn)real_api[SLOT_ADD_RUN_CONFIG_ENTRY])(
          shrinking_run_options, ARENA_SHRINKAGE_KEY, CPU_ARENA);
    }
  }
  pthread_mutex_unlock(&shared_lock);
  *run_options = shrinking_run_options;
  return status;
}

/* Makes *row a tensor over the override's row for this run's token count (the caller releases
   it) and points `swapped` at the inputs with it in place of the style sherpa-onnx gave. A run
   the override cannot apply to fails: speaking with another voice than asked is no fallback. */
static OrtStatus *override_style(const char *const *input_names, const OrtValue *const *inputs,
                                 size_t input_len, const OrtValue **swapped, OrtValue **row) {
  int tokens_at = find_name(input_names, input_len, TOKENS_INPUT);
  int style_at = find_name(input_names, input_len, STYLE_INPUT);
  if (tokens_at < 0 || style_at < 0 || input_len > MAX_RUN_INPUTS) {
    return style_error("ort_shim: a style override is set but the run has no 'tokens' and "
                       "'style' inputs");
  }
  int element_type = 0;
  size_t tokens = 0;
  size_t style_size = 0;
  OrtStatus *status = tensor_shape(inputs[tokens_at], &element_type, &tokens);
  if (status == NULL) {
    status = tensor_shape(inputs[style_at], &element_type, &style_size);
  }
  if (status != NULL) {
    return status;
  }
  if (element_type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || style_size != (size_t)style_width) {
    return style_error("ort_shim: the style override's width is not the model's style size");
  }
  if (tokens < TOKEN_PADS || (int64_t)(tokens - TOKEN_PADS) >= style_rows) {
    return style_error("ort_shim: the style override has no row for this run's token count");
  }
  pthread_mutex_lock(&shared_lock);
  if (style_memory == NULL) {
    status = ((create_cpu_memory_info_fn)real_api[SLOT_CREATE_CPU_MEMORY_INFO])(
        ORT_DEVICE_ALLOCATOR, ORT_MEM_TYPE_DEFAULT, &style_memory);
  }
  pthread_mutex_unlock(&shared_lock);
  if (status != NULL) {
    return status;
  }
  /* The run only reads its inputs; the C API has no const-data variant of this call. */
  float *data = (float *)(style_table + (int64_t)(tokens - TOKEN_PADS) * style_width);
  int64_t shape[2] = {1, style_width};
  status = ((create_tensor_with_data_fn)real_api[SLOT_CREATE_TENSOR_WITH_DATA_AS_ORT_VALUE])(
      style_memory, data, (size_t)style_width * sizeof(float), shape, 2,
      ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, row);
  if (status != NULL) {
    return status;
  }
  memcpy(swapped, inputs, input_len * sizeof(*inputs));
  swapped[style_at] = *row;
  return NULL;
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
  if (arenas_shrunk) {
    OrtStatus *problem = shrinking_options(&run_options);
    if (problem != NULL) {
      return problem;
    }
  }
  const OrtValue *swapped[MAX_RUN_INPUTS];
  OrtValue *row = NULL;
  if (style_table != NULL) {
    OrtStatus *problem = override_style(input_names, inputs, input_len, swapped, &row);
    if (problem != NULL) {
      return problem;
    }
  }
  OrtStatus *status = ((run_fn)real_api[SLOT_RUN])(session, run_options, input_names,
                                                   row != NULL ? swapped : inputs, input_len,
                                                   output_names, output_names_len, outputs);
  if (row != NULL) {
    ((release_value_fn)real_api[SLOT_RELEASE_VALUE])(row); /* the table itself stays */
  }
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

static OrtStatus *no_spinning(OrtSessionOptions *options) {
  OrtStatus *status = ((add_session_config_entry_fn)real_api[SLOT_ADD_SESSION_CONFIG_ENTRY])(
      options, "session.intra_op.allow_spinning", "0");
  if (status == NULL) {
    __atomic_add_fetch(&quiet_sessions, 1, __ATOMIC_RELAXED);
  }
  return status;
}

/* Makes the OrtValues of the registered weights and the container, once; under shared_lock. */
static OrtStatus *make_shared_values(void) {
  if (weights_container != NULL) {
    return NULL;
  }
  OrtMemoryInfo *cpu = NULL;
  OrtStatus *status = ((create_cpu_memory_info_fn)real_api[SLOT_CREATE_CPU_MEMORY_INFO])(
      ORT_DEVICE_ALLOCATOR, ORT_MEM_TYPE_DEFAULT, &cpu);
  /* The memory info and the values live as long as the process, like the buffers they wrap. */
  for (size_t i = 0; status == NULL && i < shared_count; ++i) {
    if (shared[i].value == NULL) {
      status = ((create_tensor_with_data_fn)real_api[SLOT_CREATE_TENSOR_WITH_DATA_AS_ORT_VALUE])(
          cpu, shared[i].data, shared[i].data_length, shared[i].dims, shared[i].dim_count,
          shared[i].element_type, &shared[i].value);
    }
  }
  if (status == NULL) {
    status = ((create_prepacked_weights_container_fn)
                  real_api[SLOT_CREATE_PREPACKED_WEIGHTS_CONTAINER])(&weights_container);
  }
  return status;
}

static OrtStatus *share_weights(OrtSessionOptions *options) {
  pthread_mutex_lock(&shared_lock);
  OrtStatus *status = make_shared_values();
  pthread_mutex_unlock(&shared_lock);
  for (size_t i = 0; status == NULL && i < shared_count; ++i) {
    status = ((add_initializer_fn)real_api[SLOT_ADD_INITIALIZER])(options, shared[i].name,
                                                                  shared[i].value);
  }
  if (status == NULL) {
    __atomic_add_fetch(&sharing_sessions, 1, __ATOMIC_RELAXED);
  }
  return status;
}

/* Adds to sherpa-onnx's session options what it has no option for. The options are its own,
   non-const object: adding entries is what its caller would have done had it had the option. */
static OrtStatus *configure_session(const OrtSessionOptions *options) {
  OrtSessionOptions *writable = (OrtSessionOptions *)options;
  OrtStatus *status = spinning_disabled ? no_spinning(writable) : NULL;
  if (status == NULL && shared_count > 0) {
    status = share_weights(writable);
  }
  return status;
}

static OrtStatus *wrapped_create_session(const OrtEnv *env, const void *model_path,
                                         const OrtSessionOptions *options, OrtSession **out) {
  OrtStatus *status = configure_session(options);
  if (status != NULL) {
    return status;
  }
  if (shared_count > 0) {
    return ((create_session_with_container_fn)
                real_api[SLOT_CREATE_SESSION_WITH_PREPACKED_WEIGHTS_CONTAINER])(
        env, model_path, options, weights_container, out);
  }
  return ((create_session_fn)real_api[SLOT_CREATE_SESSION])(env, model_path, options, out);
}

static OrtStatus *wrapped_create_session_from_array(const OrtEnv *env, const void *model_data,
                                                    size_t model_data_length,
                                                    const OrtSessionOptions *options,
                                                    OrtSession **out) {
  OrtStatus *status = configure_session(options);
  if (status != NULL) {
    return status;
  }
  if (shared_count > 0) {
    return ((create_session_from_array_with_container_fn)
                real_api[SLOT_CREATE_SESSION_FROM_ARRAY_WITH_PREPACKED_WEIGHTS_CONTAINER])(
        env, model_data, model_data_length, options, weights_container, out);
  }
  return ((create_session_from_array_fn)real_api[SLOT_CREATE_SESSION_FROM_ARRAY])(
      env, model_data, model_data_length, options, out);
}

/* The one place where entries of the table are replaced. */
static void install_wrappers(void) {
  api_copy[SLOT_RUN] = (void *)wrapped_run;
  if (spinning_disabled || shared_count > 0) {
    api_copy[SLOT_CREATE_SESSION] = (void *)wrapped_create_session;
    api_copy[SLOT_CREATE_SESSION_FROM_ARRAY] = (void *)wrapped_create_session_from_array;
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

int ort_shim_set_style(const float *table, int64_t rows, int64_t width) {
  if (table == NULL) {
    style_table = NULL;
    return 0;
  }
  if (rows <= 0 || width <= 0) {
    return -1;
  }
  style_rows = rows;
  style_width = width;
  style_table = table;
  return 0;
}
