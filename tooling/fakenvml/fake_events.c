/* The fake NVML library's event API (see fake_nvml.c for the state format): event sets, device
 * registration, and waiting, which polls the state file until an event or the timeout. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <time.h>

#include "fake_nvml.h"

static double max_event_id(int dev) {
    double best = 0;
    for (int c = first(get(dev, "events")); c >= 0; c = next(c))
        if (num(get(c, "id"), 0) > best) best = num(get(c, "id"), 0);
    return best;
}

API nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
    pthread_mutex_lock(&g_lock);
    nvmlReturn_t rc = enter_system("nvmlEventSetCreate", 1);
    if (rc == NVML_SUCCESS && !set) rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS && !(*set = calloc(1, sizeof(struct nvmlEventSet_st))))
        rc = NVML_ERROR_UNKNOWN;
    DONE;
}

API nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
    pthread_mutex_lock(&g_lock);
    nvmlReturn_t rc = enter_system("nvmlEventSetFree", 1);
    if (rc == NVML_SUCCESS) free(set);
    DONE;
}

API nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t device,
                                                  unsigned long long *types) {
    DEVICE_CALL("nvmlDeviceGetSupportedEventTypes", device) {
        if (!types) rc = NVML_ERROR_INVALID_ARGUMENT;
        else *types = (unsigned long long)num(get(dev, "supported_events"), NVML_EVENT_ALL);
    }
    DONE;
}

API nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long types,
                                          nvmlEventSet_t set) {
    DEVICE_CALL("nvmlDeviceRegisterEvents", device) {
        unsigned long long supported =
            (unsigned long long)num(get(dev, "supported_events"), NVML_EVENT_ALL);
        int index = handle_index(device);
        if (!set) rc = NVML_ERROR_INVALID_ARGUMENT;
        else if (types & ~supported) rc = NVML_ERROR_NOT_SUPPORTED;
        else {
            set->mask[index] |= types;
            set->last_id[index] = max_event_id(dev);
        }
    }
    DONE;
}

/* Finds the registered event with the smallest id not yet delivered; 1 when found. */
static int next_event(nvmlEventSet_t set, nvmlEventData_t *data) {
    int best_dev = -1, best_node = -1, n = device_count();
    double best_id = 0;
    for (int i = 0; i < n; i++) {
        if (!set->mask[i]) continue;
        for (int c = first(get(device_node((unsigned)i), "events")); c >= 0; c = next(c)) {
            double id = num(get(c, "id"), 0);
            unsigned long long type = (unsigned long long)num(get(c, "type"), NVML_EVENT_XID);
            if (id > set->last_id[i] && (type & set->mask[i]) && (best_dev < 0 || id < best_id)) {
                best_dev = i;
                best_node = c;
                best_id = id;
            }
        }
    }
    if (best_dev < 0) return 0;
    set->last_id[best_dev] = best_id;
    data->device = &g_handles[best_dev];
    data->eventType = (unsigned long long)num(get(best_node, "type"), NVML_EVENT_XID);
    data->eventData = data->eventType == NVML_EVENT_XID ? u64(get(best_node, "xid")) : 0;
    data->gpuInstanceId = data->computeInstanceId = ~0U;
    return 1;
}

API nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data,
                                     unsigned int timeout_ms) {
    struct timespec start, now, pause = {0, 10 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        pthread_mutex_lock(&g_lock);
        nvmlReturn_t rc = enter_system("nvmlEventSetWait_v2", 1);
        if (rc == NVML_SUCCESS && (!set || !data)) rc = NVML_ERROR_INVALID_ARGUMENT;
        if (rc == NVML_SUCCESS && !next_event(set, data)) rc = NVML_ERROR_TIMEOUT;
        pthread_mutex_unlock(&g_lock);
        if (rc != NVML_ERROR_TIMEOUT) return rc;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double waited_ms = (double)(now.tv_sec - start.tv_sec) * 1e3
                         + (double)(now.tv_nsec - start.tv_nsec) / 1e6;
        if (waited_ms >= timeout_ms) return NVML_ERROR_TIMEOUT;
        nanosleep(&pause, NULL); /* the state is a file: poll it, unlocked, while waiting */
    }
}
