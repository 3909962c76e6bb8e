/* nccl_history.c - the device collectives' flight recorder: a ring of the
 * last NCCL_HISTORY calls, completion polled in stream order, the stall
 * warning and the history lines (nccl_history.h). */
#include "collectives/nccl_history.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

static nccl_hist_entry *slot_of(nccl_history_t *h, uint64_t seq)
{
    return &h->e[seq % NCCL_HISTORY];
}

void nccl_history_init(nccl_history_t *h, int rank, int size)
{
    memset(h, 0, sizeof *h);
    h->rank = rank;
    h->size = size;
}

int nccl_history_begin(nccl_history_t *h, const char *kind, uint64_t count, rt_dtype dtype,
                       int tracked, double now)
{
    uint64_t seq = h->next++;
    /* A call pushed out of the ring is older than every call still held:
     * stream order says nothing about it that the newer ones don't. */
    if (h->polled + NCCL_HISTORY < h->next)
        h->polled = h->next - NCCL_HISTORY;
    *slot_of(h, seq) = (nccl_hist_entry){
        .seq = seq, .kind = kind, .count = count, .dtype = dtype, .enqueued = now,
        .state = tracked ? NCCL_HIST_PENDING : NCCL_HIST_UNTRACKED};
    return (int)(seq % NCCL_HISTORY);
}

void nccl_history_poll(nccl_history_t *h, nccl_hist_query_fn query, void *ctx, double now)
{
    for (; h->polled < h->next; h->polled++) {
        nccl_hist_entry *e = slot_of(h, h->polled);
        if (e->state != NCCL_HIST_PENDING)
            continue;
        int done = query(ctx, (int)(h->polled % NCCL_HISTORY));
        if (done == 0)
            return;
        if (done > 0) {
            e->state = NCCL_HIST_DONE;
            e->done_at = now;
        } else {
            e->state = NCCL_HIST_UNTRACKED;
        }
    }
}

void nccl_history_all_done(nccl_history_t *h, double now)
{
    for (; h->polled < h->next; h->polled++) {
        nccl_hist_entry *e = slot_of(h, h->polled);
        if (e->state == NCCL_HIST_PENDING) {
            e->state = NCCL_HIST_DONE;
            e->done_at = now;
        }
    }
}

const nccl_hist_entry *nccl_history_oldest_pending(const nccl_history_t *h)
{
    for (uint64_t s = h->polled; s < h->next; s++) {
        const nccl_hist_entry *e = &h->e[s % NCCL_HISTORY];
        if (e->state == NCCL_HIST_PENDING)
            return e;
    }
    return NULL;
}

static uint64_t entry_bytes(const nccl_hist_entry *e)
{
    return e->count * (uint64_t)rt_dtype_size(e->dtype);
}

void nccl_history_stall_line(const nccl_history_t *h, double waited, double fraction,
                             double timeout_s, char *buf, size_t len)
{
    const nccl_hist_entry *e = nccl_history_oldest_pending(h);
    char what[160];
    if (e)
        snprintf(what, sizeof what,
                 "device %s #%" PRIu64 " (count=%" PRIu64 " dtype=%s bytes=%" PRIu64 ")", e->kind,
                 e->seq, e->count, rt_dtype_name(e->dtype), entry_bytes(e));
    else
        snprintf(what, sizeof what, "the device stream (no tracked collective pending)");
    char ring[96] = "";
    if (h->size > 1 && !(e && strncmp(e->kind, "nccl", 4) == 0))
        snprintf(ring, sizeof ring, "; the ring receives from rank %d and sends to rank %d",
                 (h->rank + h->size - 1) % h->size, (h->rank + 1) % h->size);
    snprintf(buf, len,
             "rank %d: %s stalled: not finished after %.1f s (warning at %g%% of the %g s "
             "timeout)%s; NCCL does not say which ranks have arrived: look for the rank "
             "without this warning",
             h->rank, what, waited, 100 * fraction, timeout_s, ring);
}

static const char *state_name(nccl_hist_state s)
{
    switch (s) {
    case NCCL_HIST_PENDING: return "pending";
    case NCCL_HIST_DONE: return "done";
    case NCCL_HIST_UNTRACKED: return "untracked";
    default: return "?";
    }
}

int nccl_history_line(const nccl_history_t *h, int i, double now, char *buf, size_t len)
{
    uint64_t first = h->next > NCCL_HISTORY ? h->next - NCCL_HISTORY : 0;
    int lines = (int)(h->next - first);
    if (i < 0 || i >= lines) {
        if (len)
            buf[0] = '\0';
        return lines;
    }
    const nccl_hist_entry *e = &h->e[(first + (uint64_t)i) % NCCL_HISTORY];
    double end = e->state == NCCL_HIST_DONE ? e->done_at : now;
    snprintf(buf, len,
             "rank %d:   seq=%" PRIu64 " kind=%s count=%" PRIu64 " dtype=%s bytes=%" PRIu64
             " state=%s duration=%.6fs",
             h->rank, e->seq, e->kind, e->count, rt_dtype_name(e->dtype), entry_bytes(e),
             state_name(e->state), end - e->enqueued);
    return lines;
}

/* At WARN level, not ERROR: the launcher takes a rank's first ERROR line as
 * the cause of a failed run, and the cause is the timeout the caller
 * reports. */
void nccl_history_print(nccl_history_t *h, const char *why, double now)
{
    if (h->printed)
        return;
    h->printed = 1;
    uint64_t first = h->next > NCCL_HISTORY ? h->next - NCCL_HISTORY : 0;
    LOG_WARN("rank %d: device collective history, last %" PRIu64 " of %" PRIu64
             " calls on this NCCL communicator (size %d), oldest first, %s:",
             h->rank, h->next - first, h->next, h->size, why);
    char line[256];
    int lines = nccl_history_line(h, 0, now, line, sizeof line);
    for (int i = 0; i < lines; i++) {
        nccl_history_line(h, i, now, line, sizeof line);
        LOG_WARN("%s", line);
    }
}
