/*
 * Internal to the fake NVML library (fake_nvml.c, fake_events.c): NVML's types as nvml.h lays
 * them out, and the shared state with its lookups. Nothing here is exported from the library
 * (it is built with -fvisibility=hidden; only the API functions are marked visible).
 */
#ifndef HEADROOM_FAKE_NVML_H
#define HEADROOM_FAKE_NVML_H

#include <pthread.h>

#include "json_reader.h"

#define API __attribute__((visibility("default")))
#define MAX_DEVICES 64
#define STATE_ENV "HEADROOM_FAKE_NVML"

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0, NVML_ERROR_UNINITIALIZED = 1, NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3, NVML_ERROR_NO_PERMISSION = 4, NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7, NVML_ERROR_DRIVER_NOT_LOADED = 9, NVML_ERROR_TIMEOUT = 10,
    NVML_ERROR_GPU_IS_LOST = 15, NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    NVML_ERROR_UNKNOWN = 999
};
#define NVML_EVENT_XID 0x8ULL
#define NVML_EVENT_ALL 0xFFFFULL
#define NVML_MEMORY_V2 ((unsigned int)(sizeof(nvmlMemory_v2_t) | (2U << 24)))

struct nvmlDevice_st { unsigned int index; };
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;
typedef struct {
    nvmlDevice_t device;
    unsigned long long eventType, eventData;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlEventData_t;
struct nvmlEventSet_st {
    unsigned long long mask[MAX_DEVICES];
    double last_id[MAX_DEVICES];
};
typedef struct nvmlEventSet_st *nvmlEventSet_t;

/* Sizes from nvml.h on x86_64: a layout mistake fails the build, not a test run later. */
_Static_assert(sizeof(nvmlMemory_t) == 24, "nvmlMemory_t");
_Static_assert(sizeof(nvmlMemory_v2_t) == 40, "nvmlMemory_v2_t");
_Static_assert(sizeof(nvmlProcessInfo_t) == 24, "nvmlProcessInfo_v2_t");
_Static_assert(sizeof(nvmlEventData_t) == 32, "nvmlEventData_t");
_Static_assert(NVML_MEMORY_V2 == 0x02000028, "nvmlMemory_v2 version word");

/* ---- the shared state (defined in fake_nvml.c) */
extern pthread_mutex_t g_lock;
extern jparser g_doc;  /* the state file's parse; node 0 is the top-level object */
extern struct nvmlDevice_st g_handles[MAX_DEVICES];

/* Lookups in the current state; node 0 is the top-level object. */
static inline int get(int obj, const char *key) { return json_get(&g_doc, obj, key); }
static inline int first(int array) { return json_first(&g_doc, array); }
static inline int next(int n) { return g_doc.nodes[n].next; }
static inline int is_num(int n) { return json_is_num(&g_doc, n); }
static inline double num(int n, double fallback) { return json_num(&g_doc, n, fallback); }
static inline unsigned long long u64(int n) {
    double v = num(n, 0);
    return v > 0 ? (unsigned long long)v : 0;
}
static inline const char *str(int n, const char *fallback) { return json_str(&g_doc, n, fallback); }

/* Prologues of the API functions: the state re-read, NVML initialised (need_init), the handle
 * valid (devices), and no error injected for `fn`; NVML_SUCCESS or the error to answer. */
nvmlReturn_t enter_system(const char *fn, int need_init);
nvmlReturn_t enter_device(const char *fn, nvmlDevice_t handle, int *node);
int device_count(void);
int device_node(unsigned int index);
int handle_index(nvmlDevice_t handle);

#define DEVICE_CALL(fn, handle)                                  \
    int dev;                                                     \
    pthread_mutex_lock(&g_lock);                                 \
    nvmlReturn_t rc = enter_device(fn, handle, &dev);            \
    if (rc == NVML_SUCCESS)
#define DONE pthread_mutex_unlock(&g_lock); return rc

#endif
