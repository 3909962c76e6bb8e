/* test_nccl_history.c - the device collectives' flight recorder
 * (collectives/nccl_history.c) driven on the CPU with a scripted completion
 * query in place of CUDA events: completion is taken in stream order, calls
 * enqueued during a graph capture are never reported pending, the stall line
 * names the oldest pending call with its sequence number, size and ring
 * neighbours, the ring of NCCL_HISTORY entries keeps the newest calls, and
 * the history is printed once. Expected values are written out by hand. */
#include <stdio.h>
#include <string.h>

#include "collectives/nccl_history.h"
#include "test_util.h"

/* done[slot]: what the "event" of each slot says (1 done, 0 pending, -1
 * cannot be asked); asked[slot] counts the queries. */
typedef struct {
    int done[NCCL_HISTORY];
    int asked[NCCL_HISTORY];
} script_t;

static int scripted(void *ctx, int slot)
{
    script_t *s = ctx;
    s->asked[slot]++;
    return s->done[slot];
}

static int contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

int main(void)
{
    nccl_history_t h;
    char line[512];
    script_t sc;

    /* nothing recorded */
    nccl_history_init(&h, 0, 3);
    EXPECT(nccl_history_oldest_pending(&h) == NULL, "empty history has a pending call");
    EXPECT(nccl_history_line(&h, 0, 1.0, line, sizeof line) == 0, "empty history has lines");
    nccl_history_stall_line(&h, 31.0, 0.1, 300, line, sizeof line);
    EXPECT(contains(line, "no tracked collective pending"), "empty stall line: %s", line);

    /* three calls; the stream passed #0, not #1; #2's event says done, which
     * a stream cannot do before #1, so it stays pending until #1 is done */
    memset(&sc, 0, sizeof sc);
    EXPECT(nccl_history_begin(&h, "allreduce", 1000, RT_DTYPE_F32, 1, 10.0) == 0, "slot of #0");
    EXPECT(nccl_history_begin(&h, "reduce_scatter_v", 64, RT_DTYPE_BF16, 1, 10.5) == 1,
           "slot of #1");
    EXPECT(nccl_history_begin(&h, "allgather_v", 64, RT_DTYPE_BF16, 1, 10.6) == 2, "slot of #2");
    sc.done[0] = 1;
    sc.done[1] = 0;
    sc.done[2] = 1;
    nccl_history_poll(&h, scripted, &sc, 11.0);
    EXPECT(sc.asked[2] == 0, "asked about #2 before #1 was done");
    const nccl_hist_entry *p = nccl_history_oldest_pending(&h);
    EXPECT(p && p->seq == 1, "oldest pending is #%d, want #1", p ? (int)p->seq : -1);
    EXPECT(h.e[0].state == NCCL_HIST_DONE && h.e[0].done_at == 11.0, "#0 not done at 11.0");
    EXPECT(h.e[2].state == NCCL_HIST_PENDING, "#2 done out of stream order");

    nccl_history_stall_line(&h, 30.25, 0.1, 300, line, sizeof line);
    EXPECT(contains(line, "rank 0: device reduce_scatter_v #1 (count=64 dtype=bf16 bytes=128)"),
           "stall line names the call: %s", line);
    EXPECT(contains(line, "30.2 s") || contains(line, "30.3 s"), "stall line's wait: %s", line);
    EXPECT(contains(line, "warning at 10% of the 300 s timeout"), "stall line's share: %s", line);
    EXPECT(contains(line, "receives from rank 2 and sends to rank 1"),
           "stall line's neighbours: %s", line);

    /* history lines, oldest first */
    EXPECT(nccl_history_line(&h, 0, 12.0, line, sizeof line) == 3, "3 lines");
    EXPECT(contains(line, "seq=0 kind=allreduce count=1000 dtype=f32 bytes=4000 state=done "
                          "duration=1.000000s"), "line 0: %s", line);
    nccl_history_line(&h, 1, 12.0, line, sizeof line);
    EXPECT(contains(line, "seq=1 kind=reduce_scatter_v") && contains(line, "state=pending") &&
           contains(line, "duration=1.500000s"), "line 1: %s", line);

    /* #1 finishes: #2 follows in the same poll */
    sc.done[1] = 1;
    nccl_history_poll(&h, scripted, &sc, 13.0);
    EXPECT(nccl_history_oldest_pending(&h) == NULL, "pending after all three are done");

    /* a captured call is never pending; an event that cannot be asked
     * makes its call untracked, not a stall */
    nccl_history_begin(&h, "allreduce", 8, RT_DTYPE_F32, 0, 14.0); /* #3 */
    int s4 = nccl_history_begin(&h, "allreduce", 8, RT_DTYPE_F32, 1, 14.0);
    sc.done[s4] = -1;
    nccl_history_poll(&h, scripted, &sc, 14.5);
    EXPECT(h.e[3].state == NCCL_HIST_UNTRACKED, "captured call is %d", (int)h.e[3].state);
    EXPECT(sc.asked[3] == 0, "asked about a captured call");
    EXPECT(h.e[4].state == NCCL_HIST_UNTRACKED, "unaskable call is %d", (int)h.e[4].state);
    EXPECT(nccl_history_oldest_pending(&h) == NULL, "untracked call reported pending");

    /* NCCL's own all-reduce: no ring neighbours claimed */
    int s5 = nccl_history_begin(&h, "ncclAllReduce", 4, RT_DTYPE_F64, 1, 15.0);
    sc.done[s5] = 0;
    nccl_history_poll(&h, scripted, &sc, 15.0);
    nccl_history_stall_line(&h, 3.0, 0.5, 6, line, sizeof line);
    EXPECT(contains(line, "device ncclAllReduce #5 (count=4 dtype=f64 bytes=32)") &&
           !contains(line, "ring"), "ncclAllReduce stall line: %s", line);
    nccl_history_all_done(&h, 16.0);
    EXPECT(nccl_history_oldest_pending(&h) == NULL, "pending after all_done");

    /* the ring keeps the newest NCCL_HISTORY calls: 30 calls in all */
    for (int i = 6; i < 30; i++)
        nccl_history_begin(&h, "allreduce", (uint64_t)i, RT_DTYPE_F32, 1, 20.0 + i);
    EXPECT(nccl_history_line(&h, 0, 60.0, line, sizeof line) == NCCL_HISTORY, "ring size");
    EXPECT(contains(line, "seq=14 ") && contains(line, "count=14 "), "oldest held: %s", line);
    nccl_history_line(&h, NCCL_HISTORY - 1, 60.0, line, sizeof line);
    EXPECT(contains(line, "seq=29 "), "newest held: %s", line);
    /* every slot pending, the stream passed up to #20 */
    for (int i = 0; i < NCCL_HISTORY; i++)
        sc.done[i] = 0;
    for (int seq = 14; seq <= 20; seq++)
        sc.done[seq % NCCL_HISTORY] = 1;
    nccl_history_poll(&h, scripted, &sc, 61.0);
    p = nccl_history_oldest_pending(&h);
    EXPECT(p && p->seq == 21, "oldest pending after the wrap is #%d, want #21",
           p ? (int)p->seq : -1);

    /* printed once per communicator */
    nccl_history_print(&h, "in the test", 62.0);
    EXPECT(h.printed == 1, "history not marked printed");
    nccl_history_print(&h, "again", 62.0);
    EXPECT(h.printed == 1, "printed flag changed");

    /* one rank: no neighbours */
    nccl_history_init(&h, 0, 1);
    nccl_history_begin(&h, "allreduce", 1, RT_DTYPE_F32, 1, 0.0);
    nccl_history_stall_line(&h, 1.0, 0.1, 10, line, sizeof line);
    EXPECT(!contains(line, "ring"), "one-rank stall line: %s", line);
    return TEST_EXIT();
}
