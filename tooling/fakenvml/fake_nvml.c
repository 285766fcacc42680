/*
 * A fake libnvidia-ml.so.1 for tests: the unmodified pynvml bindings load it and call it through
 * ctypes exactly as they call NVIDIA's library, so everything above the C ABI is the real code.
 *
 * State comes from the JSON file named by $HEADROOM_FAKE_NVML and is re-read on every call (the
 * bytes are compared with the previous read and parsed again only when they differ), so a test
 * can change the GPUs while an agent runs. The format (all keys optional unless noted):
 *
 *   { "driver_version": "550.54.15",
 *     "errors": { "<nvml function>": "NOT_SUPPORTED" | "NVML_ERROR_GPU_IS_LOST" | 15, ... },
 *     "devices": [ { "uuid": "GPU-...", "name": "NVIDIA L4",
 *                    "memory_total": 24e9, "memory_reserved": 0, "memory_used": 0,
 *                    "gpu_util": 40, "mem_util": 20,        (absent: NOT_SUPPORTED)
 *                    "temperature_c": 55, "power_mw": 72000, (absent: NOT_SUPPORTED)
 *                    "mig_current": 0, "mig_pending": 0,     (absent: NOT_SUPPORTED)
 *                    "processes": [ { "pid": 1234, "used": 1e9 | null } ],
 *                    "events": [ { "id": 1, "xid": 79, "type": 8 } ],
 *                    "errors": { "<nvml function>" | "*": <error>, ... } } ] }
 *
 * Error injection: a device function returns the device's "errors" entry for its name, else the
 * device's "*" entry, else the top-level entry for its name. Events are delivered once per event
 * set, in id order, only for ids above the largest id present when the device was registered (as
 * NVML delivers only events that happen after registration; fake_events.c). Structures follow
 * nvml.h (fake_nvml.h checks their sizes with static assertions).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_nvml.h"

/* ---- the state: the last file contents and their parse */
pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static char *g_raw;          /* the bytes last read, as read */
static size_t g_raw_len;
static char *g_text;         /* the copy g_doc's strings point into */
jparser g_doc;               /* parse of a copy of g_raw; root is node 0 */
static int g_doc_ok;
static int g_init_count;
struct nvmlDevice_st g_handles[MAX_DEVICES]; /* handles are pointers into this */

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *grown = realloc(buf, cap * 2 + 1);
        if (!grown) { free(buf); buf = NULL; break; }
        buf = grown;
        cap *= 2;
    }
    int failed = ferror(f);
    fclose(f);
    if (buf && failed) { free(buf); buf = NULL; }
    if (buf) { buf[n] = '\0'; *len = n; }
    return buf;
}

/* Re-reads the state file; returns NVML_SUCCESS with g_doc current, or the error every call
 * answers while the file is missing (DRIVER_NOT_LOADED) or unreadable as JSON (UNKNOWN). */
static nvmlReturn_t load(void) {
    const char *path = getenv(STATE_ENV);
    size_t len = 0;
    char *raw = path && *path ? read_file(path, &len) : NULL;
    static int told;
    if (!(path && *path) && !told++)
        fprintf(stderr, "fake NVML: $%s is not set: answering as if no driver were loaded\n",
                STATE_ENV);
    if (!raw) {
        free(g_raw);
        g_raw = NULL;
        g_doc_ok = 0;
        return NVML_ERROR_DRIVER_NOT_LOADED;
    }
    if (g_raw && len == g_raw_len && memcmp(raw, g_raw, len) == 0) {
        free(raw);
        return g_doc_ok ? NVML_SUCCESS : NVML_ERROR_UNKNOWN;
    }
    free(g_raw);
    g_raw = raw;
    g_raw_len = len;
    /* Parse a copy: strings are unescaped in place, and g_raw must stay as read to compare. */
    json_free(&g_doc);
    free(g_text);
    g_doc_ok = 0;
    g_text = malloc(len + 1);
    if (!g_text) return NVML_ERROR_UNKNOWN;
    memcpy(g_text, raw, len + 1);
    g_doc_ok = json_parse(&g_doc, g_text, len);
    if (!g_doc_ok)
        fprintf(stderr, "fake NVML: %s: %s at byte %ld\n", path, g_doc.err,
                (long)(g_doc.p - g_text));
    return g_doc_ok ? NVML_SUCCESS : NVML_ERROR_UNKNOWN;
}

static const struct { const char *name; int code; } ERRORS[] = {
    {"SUCCESS", 0}, {"UNINITIALIZED", 1}, {"INVALID_ARGUMENT", 2}, {"NOT_SUPPORTED", 3},
    {"NO_PERMISSION", 4}, {"ALREADY_INITIALIZED", 5}, {"NOT_FOUND", 6},
    {"INSUFFICIENT_SIZE", 7}, {"INSUFFICIENT_POWER", 8}, {"DRIVER_NOT_LOADED", 9},
    {"TIMEOUT", 10}, {"IRQ_ISSUE", 11}, {"LIBRARY_NOT_FOUND", 12}, {"FUNCTION_NOT_FOUND", 13},
    {"CORRUPTED_INFOROM", 14}, {"GPU_IS_LOST", 15}, {"RESET_REQUIRED", 16},
    {"OPERATING_SYSTEM", 17}, {"LIB_RM_VERSION_MISMATCH", 18}, {"IN_USE", 19}, {"MEMORY", 20},
    {"NO_DATA", 21}, {"INSUFFICIENT_RESOURCES", 23}, {"ARGUMENT_VERSION_MISMATCH", 25},
    {"NOT_READY", 27}, {"GPU_NOT_FOUND", 28}, {"INVALID_STATE", 29}, {"UNKNOWN", 999},
};

static int error_code(int n) {
    if (is_num(n)) return (int)num(n, 0);
    const char *name = str(n, NULL);
    if (!name) return NVML_SUCCESS;
    if (strncmp(name, "NVML_ERROR_", 11) == 0) name += 11;
    for (size_t i = 0; i < sizeof ERRORS / sizeof ERRORS[0]; i++)
        if (strcmp(ERRORS[i].name, name) == 0) return ERRORS[i].code;
    fprintf(stderr, "fake NVML: unknown error name %s; answering UNKNOWN\n", name);
    return NVML_ERROR_UNKNOWN;
}

static int injected(int device, const char *fn) {
    int errors = get(device, "errors");
    int e = get(errors, fn);
    if (e < 0) e = get(errors, "*");
    if (e < 0) e = get(get(0, "errors"), fn);
    return error_code(e);
}

int device_count(void) {
    int n = 0;
    for (int c = first(get(0, "devices")); c >= 0 && n < MAX_DEVICES; c = next(c)) n++;
    return n;
}

int device_node(unsigned int index) {
    int c = first(get(0, "devices"));
    for (unsigned int i = 0; c >= 0 && i < index; i++) c = next(c);
    return c;
}

int handle_index(nvmlDevice_t handle) {
    uintptr_t at = (uintptr_t)handle, base = (uintptr_t)g_handles;
    if (at < base || at >= base + sizeof g_handles || (at - base) % sizeof g_handles[0]) return -1;
    return (int)((at - base) / sizeof g_handles[0]);
}

/* Common prologue of device functions: state loaded, initialised, valid handle, no injection. */
nvmlReturn_t enter_device(const char *fn, nvmlDevice_t handle, int *node) {
    nvmlReturn_t rc = load();
    if (rc) return rc;
    if (!g_init_count) return NVML_ERROR_UNINITIALIZED;
    int index = handle_index(handle);
    *node = index >= 0 && index < device_count() ? device_node((unsigned)index) : -1;
    if (*node < 0) return NVML_ERROR_INVALID_ARGUMENT;
    return injected(*node, fn);
}

nvmlReturn_t enter_system(const char *fn, int need_init) {
    nvmlReturn_t rc = load();
    if (rc) return rc;
    if (need_init && !g_init_count) return NVML_ERROR_UNINITIALIZED;
    return injected(-1, fn);
}


static nvmlReturn_t copy_string(const char *value, char *out, unsigned int length) {
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(value) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(out, value, strlen(value) + 1);
    return NVML_SUCCESS;
}

/* ---- the NVML API */
API nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    pthread_mutex_lock(&g_lock);
    nvmlReturn_t rc = enter_system("nvmlInitWithFlags", 0);
    if (rc == NVML_SUCCESS) g_init_count++;
    DONE;
}
API nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
API nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

API nvmlReturn_t nvmlShutdown(void) {
    pthread_mutex_lock(&g_lock);
    nvmlReturn_t rc = g_init_count ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
    if (rc == NVML_SUCCESS) g_init_count--;
    DONE;
}

API const char *nvmlErrorString(nvmlReturn_t result) {
    for (size_t i = 0; i < sizeof ERRORS / sizeof ERRORS[0]; i++)
        if (ERRORS[i].code == result) return ERRORS[i].name;
    return "UNKNOWN";
}

API nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    pthread_mutex_lock(&g_lock);
    nvmlReturn_t rc = enter_system("nvmlSystemGetDriverVersion", 1);
    if (rc == NVML_SUCCESS)
        rc = copy_string(str(get(0, "driver_version"), "550.54.15"), version, length);
    DONE;
}

API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    pthread_mutex_lock(&g_lock);
    nvmlReturn_t rc = enter_system("nvmlDeviceGetCount_v2", 1);
    if (rc == NVML_SUCCESS && !count) rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS) *count = (unsigned)device_count();
    DONE;
}
API nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) { return nvmlDeviceGetCount_v2(count); }

API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    pthread_mutex_lock(&g_lock);
    nvmlReturn_t rc = enter_system("nvmlDeviceGetHandleByIndex_v2", 1);
    if (rc == NVML_SUCCESS && (!device || index >= (unsigned)device_count()))
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS) rc = injected(device_node(index), "nvmlDeviceGetHandleByIndex_v2");
    if (rc == NVML_SUCCESS) {
        g_handles[index].index = index;
        *device = &g_handles[index];
    }
    DONE;
}

API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    DEVICE_CALL("nvmlDeviceGetUUID", device) {
        rc = copy_string(str(get(dev, "uuid"), "GPU-00000000-0000-0000-0000-000000000000"),
                         uuid, length);
    }
    DONE;
}

API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    DEVICE_CALL("nvmlDeviceGetName", device) {
        rc = copy_string(str(get(dev, "name"), "NVIDIA Fake GPU"), name, length);
    }
    DONE;
}

static void memory_values(int dev, unsigned long long *total, unsigned long long *reserved,
                          unsigned long long *used, unsigned long long *free_) {
    *total = u64(get(dev, "memory_total"));
    *reserved = u64(get(dev, "memory_reserved"));
    *used = u64(get(dev, "memory_used"));
    *free_ = *total > *reserved + *used ? *total - *reserved - *used : 0;
}

API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    DEVICE_CALL("nvmlDeviceGetMemoryInfo", device) {
        unsigned long long total, reserved, used, free_;
        memory_values(dev, &total, &reserved, &used, &free_);
        if (!memory) rc = NVML_ERROR_INVALID_ARGUMENT;
        else {  /* v1's used is "reserved and allocated" */
            memory->total = total;
            memory->free = free_;
            memory->used = reserved + used;
        }
    }
    DONE;
}

API nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    DEVICE_CALL("nvmlDeviceGetMemoryInfo_v2", device) {
        if (!memory) rc = NVML_ERROR_INVALID_ARGUMENT;
        else if (memory->version != NVML_MEMORY_V2) rc = NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
        else memory_values(dev, &memory->total, &memory->reserved, &memory->used, &memory->free);
    }
    DONE;
}

API nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *util) {
    DEVICE_CALL("nvmlDeviceGetUtilizationRates", device) {
        int gpu = get(dev, "gpu_util"), mem = get(dev, "mem_util");
        if (!util) rc = NVML_ERROR_INVALID_ARGUMENT;
        else if (!is_num(gpu) || !is_num(mem)) rc = NVML_ERROR_NOT_SUPPORTED;
        else {
            util->gpu = (unsigned)u64(gpu);
            util->memory = (unsigned)u64(mem);
        }
    }
    DONE;
}

API nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *temp) {
    DEVICE_CALL("nvmlDeviceGetTemperature", device) {
        int t = get(dev, "temperature_c");
        if (!temp || sensor != 0) rc = NVML_ERROR_INVALID_ARGUMENT;
        else if (!is_num(t)) rc = NVML_ERROR_NOT_SUPPORTED;
        else *temp = (unsigned)u64(t);
    }
    DONE;
}

API nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *milliwatts) {
    DEVICE_CALL("nvmlDeviceGetPowerUsage", device) {
        int p = get(dev, "power_mw");
        if (!milliwatts) rc = NVML_ERROR_INVALID_ARGUMENT;
        else if (!is_num(p)) rc = NVML_ERROR_NOT_SUPPORTED;
        else *milliwatts = (unsigned)u64(p);
    }
    DONE;
}

API nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *current,
                                      unsigned int *pending) {
    DEVICE_CALL("nvmlDeviceGetMigMode", device) {
        int cur = get(dev, "mig_current");
        if (!current || !pending) rc = NVML_ERROR_INVALID_ARGUMENT;
        else if (!is_num(cur)) rc = NVML_ERROR_NOT_SUPPORTED;
        else {
            *current = (unsigned)u64(cur);
            *pending = (unsigned)num(get(dev, "mig_pending"), num(cur, 0));
        }
    }
    DONE;
}

API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device,
                                                         unsigned int *count,
                                                         nvmlProcessInfo_t *infos) {
    DEVICE_CALL("nvmlDeviceGetComputeRunningProcesses_v3", device) {
        int procs = first(get(dev, "processes"));
        unsigned int n = 0;
        for (int c = procs; c >= 0; c = next(c)) n++;
        unsigned int mig = (unsigned)num(get(dev, "mig_current"), 0);
        if (!count) rc = NVML_ERROR_INVALID_ARGUMENT;
        else if (n == 0) *count = 0;
        else if (!infos || *count < n) {
            *count = n;
            rc = NVML_ERROR_INSUFFICIENT_SIZE;
        } else {
            unsigned int i = 0;
            for (int c = procs; c >= 0; c = next(c), i++) {
                int used = get(c, "used");
                infos[i].pid = (unsigned)u64(get(c, "pid"));
                infos[i].usedGpuMemory = is_num(used) ? u64(used) : ~0ULL; /* NOT_AVAILABLE */
                infos[i].gpuInstanceId = mig ? (unsigned)u64(get(c, "gpu_instance")) : ~0U;
                infos[i].computeInstanceId = mig ? (unsigned)u64(get(c, "compute_instance")) : ~0U;
            }
            *count = n;
        }
    }
    DONE;
}
