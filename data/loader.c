/* loader.c - the prefetching loader: worker threads claim batches in sample
 * order, fill ring slots (possibly finishing out of order), and the caller
 * takes them strictly in order. */
/* POSIX 2008: pread, strdup, O_CLOEXEC, O_DIRECTORY */
#define _POSIX_C_SOURCE 200809L
#include "data/loader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"

typedef struct {
    float *inputs;
    int32_t *labels;
    int32_t *tokens;
    int rows;
    int64_t epoch, step;
    bool ready;                  /* filled and not yet released */
} loader_slot;

/* One background thread: its own index buffer, so the shared epoch order is
 * touched only under the lock. */
typedef struct {
    loader_t *l;
    pthread_t thread;
    bool started;
    int64_t *indices;
} loader_worker;

struct loader {
    dataset_t *d;
    loader_config_t cfg;
    sampler_config_t sc;
    bool tokens;                 /* token windows rather than records */
    int64_t features;            /* floats per classification row */
    int64_t steps;               /* batches per epoch */

    loader_slot *slots;
    int nslots;
    loader_worker *workers;
    int nworkers;

    pthread_mutex_t mu;
    pthread_cond_t can_fill;     /* a slot became free, or stop */
    pthread_cond_t can_take;     /* a slot became ready, a worker failed or all ended */
    /* the claim cursor: batch sequence number seq is (epoch, step), and goes
     * to slot seq % nslots once seq < head_seq + nslots */
    int64_t claim_seq, claim_epoch, claim_step;
    int64_t order_epoch;         /* the epoch `order` holds, -1 for none */
    int64_t *order;
    int64_t shift;               /* tokens: the order epoch's window shift */
    bool claims_done;            /* one_epoch: nothing left to claim */
    int64_t head_seq;            /* the next batch to deliver */
    int running;                 /* workers not yet ended */
    bool stop;
    bool failed;
    int64_t fail_seq;            /* the first batch that could not be made */
    rt_status fail_status;
    char fail_msg[1024];

    /* consumer side */
    bool held;
    bool done;
    int64_t epoch, position;     /* the next batch to deliver */
};

static void *default_alloc(size_t bytes, void *ctx)
{
    (void)ctx;
    size_t rounded = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, rounded ? rounded : 64);
}

static void default_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}

void loader_config_default(loader_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->batch = 1;
    cfg->world = 1;
    cfg->shuffle = true;
    cfg->remainder = SAMPLER_PAD;
    cfg->prefetch = 4;
    cfg->workers = 1;
}

/* Token windows: the shuffled stream starts at a per-epoch shift in
 * [0, ctx), so windows differ from epoch to epoch; the window count leaves
 * room for the largest shift. */
int64_t loader_token_windows(int64_t tokens, int64_t ctx, bool shuffle)
{
    if (ctx < 1)
        return 0;
    const int64_t n = shuffle ? (tokens - ctx) / ctx : (tokens - 1) / ctx;
    return n > 0 ? n : 0;
}

static int64_t token_windows(const loader_t *l)
{
    return loader_token_windows(dataset_info(l->d)->count, l->cfg.ctx, l->cfg.shuffle);
}

static int64_t token_shift(const loader_t *l, int64_t epoch)
{
    if (!l->cfg.shuffle)
        return 0;
    return (int64_t)(sampler_hash(l->cfg.start.seed, epoch, 1) % (uint64_t)l->cfg.ctx);
}

static rt_status fill_slot(loader_t *l, loader_slot *s, const int64_t *indices, int64_t shift)
{
    if (!l->tokens)
        return dataset_gather(l->d, indices, s->rows, s->inputs, s->labels);
    int64_t width = l->cfg.ctx + 1;
    for (int64_t j = 0; j < s->rows; j++)
        TRY(dataset_read_tokens(l->d, shift + indices[j] * l->cfg.ctx, width,
                                s->tokens + j * width));
    return RT_OK;
}

/* Under the lock: waits for room, then claims the next batch, copying its
 * record indices out of the epoch order. Returns false when the worker
 * should end (stop, failure, or one_epoch finished). */
static bool claim_next(loader_t *l, loader_worker *w, int64_t *seq, loader_slot **slot,
                       int64_t *shift)
{
    for (;;) {
        if (l->stop || l->failed || l->claims_done)
            return false;
        if (l->claim_seq < l->head_seq + l->nslots)
            break;
        pthread_cond_wait(&l->can_fill, &l->mu);
    }
    if (l->claim_step == l->steps) {
        l->claim_epoch++;
        l->claim_step = 0;
    }
    if (l->cfg.one_epoch && l->claim_epoch != l->cfg.start.epoch) {
        l->claims_done = true;
        return false;
    }
    if (l->order_epoch != l->claim_epoch) {
        sampler_epoch_order(&l->sc, l->cfg.start.seed, l->claim_epoch, l->order);
        l->shift = l->tokens ? token_shift(l, l->claim_epoch) : 0;
        l->order_epoch = l->claim_epoch;
    }
    *seq = l->claim_seq++;
    loader_slot *s = &l->slots[*seq % l->nslots];
    s->epoch = l->claim_epoch;
    s->step = l->claim_step++;
    s->rows = (int)sampler_batch_rows(&l->sc, s->step);
    sampler_batch_indices(&l->sc, l->order, s->step, w->indices);
    *shift = l->shift;
    *slot = s;
    return true;
}

static void *worker_main(void *arg)
{
    loader_worker *w = arg;
    loader_t *l = w->l;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        int64_t seq, shift;
        loader_slot *s;
        if (!claim_next(l, w, &seq, &s, &shift))
            break;
        pthread_mutex_unlock(&l->mu);
        /* the slot is this worker's until marked ready */
        rt_status st = fill_slot(l, s, w->indices, shift);
        pthread_mutex_lock(&l->mu);
        if (st != RT_OK) {
            if (!l->failed || seq < l->fail_seq) {
                l->fail_seq = seq;
                l->fail_status = st;
                snprintf(l->fail_msg, sizeof l->fail_msg, "%s", rt_last_error());
            }
            l->failed = true;
            pthread_cond_broadcast(&l->can_fill); /* other workers end too */
            break;
        }
        s->ready = true;
        pthread_cond_broadcast(&l->can_take);
    }
    l->running--;
    pthread_cond_broadcast(&l->can_take);
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static rt_status alloc_slots(loader_t *l)
{
    l->slots = calloc((size_t)l->nslots, sizeof *l->slots);
    CHECK_ALLOC(l->slots, (size_t)l->nslots * sizeof *l->slots);
    size_t b = (size_t)l->cfg.batch;
    for (int i = 0; i < l->nslots; i++) {
        loader_slot *s = &l->slots[i];
        if (l->tokens) {
            size_t bytes = b * (size_t)(l->cfg.ctx + 1) * sizeof(int32_t);
            s->tokens = l->cfg.alloc(bytes, l->cfg.alloc_ctx);
            CHECK_ALLOC(s->tokens, bytes);
        } else {
            size_t bytes = b * (size_t)l->features * sizeof(float);
            s->inputs = l->cfg.alloc(bytes, l->cfg.alloc_ctx);
            CHECK_ALLOC(s->inputs, bytes);
            s->labels = l->cfg.alloc(b * sizeof(int32_t), l->cfg.alloc_ctx);
            CHECK_ALLOC(s->labels, b * sizeof(int32_t));
        }
    }
    return RT_OK;
}

static rt_status loader_setup(loader_t *l, dataset_t *d, const loader_config_t *cfg)
{
    const dataset_info_t *info = dataset_info(d);
    l->d = d;
    l->cfg = *cfg;
    if (!l->cfg.alloc || !l->cfg.free) {
        l->cfg.alloc = default_alloc;
        l->cfg.free = default_free;
    }
    l->tokens = info->kind == DATASET_TOKENS;
    l->features = info->features;
    CHECK_ARG(cfg->prefetch >= 1 && cfg->prefetch <= 1024, "loader: prefetch %d", cfg->prefetch);
    CHECK_ARG(cfg->workers >= 1 && cfg->workers <= 64, "loader: workers %d", cfg->workers);
    CHECK_ARG(cfg->batch >= 1 && cfg->batch <= INT32_MAX, "loader: batch %lld",
              (long long)cfg->batch);
    CHECK_ARG(cfg->start.epoch >= 0 && cfg->start.position >= 0,
              "loader: negative start epoch or position");
    l->sc = (sampler_config_t){.n = info->count, .rank = cfg->rank, .world = cfg->world,
                               .batch = cfg->batch, .shuffle = cfg->shuffle,
                               .remainder = cfg->remainder};
    if (l->tokens) {
        CHECK_ARG(cfg->ctx >= 1, "loader: tokens need a context length (ctx >= 1)");
        l->sc.n = token_windows(l);
        if (l->sc.n < 1)
            return rt_fail(RT_ERR_INVALID, "%s: %lld tokens are too few for windows of %lld",
                           dataset_path(d), (long long)info->count, (long long)cfg->ctx + 1);
    }
    rt_status st = sampler_check(&l->sc);
    if (st != RT_OK)
        return rt_fail_context(st, "%s", dataset_path(d));
    l->steps = sampler_steps_per_epoch(&l->sc);
    if (cfg->start.position > l->steps)
        return rt_fail(RT_ERR_INVALID,
                       "loader: start position %lld is past the %lld batches of an epoch",
                       (long long)cfg->start.position, (long long)l->steps);
    l->epoch = cfg->start.epoch;
    l->position = cfg->start.position;
    if (l->position == l->steps) {
        /* a state saved after an epoch's last batch */
        l->epoch++;
        l->position = 0;
        l->done = cfg->one_epoch;
    }
    l->nslots = cfg->prefetch;
    l->claim_epoch = l->epoch;
    l->claim_step = l->position;
    l->order_epoch = -1;
    l->order = malloc((size_t)l->sc.n * sizeof *l->order);
    CHECK_ALLOC(l->order, (size_t)l->sc.n * sizeof *l->order);
    l->nworkers = cfg->workers;
    l->workers = calloc((size_t)l->nworkers, sizeof *l->workers);
    CHECK_ALLOC(l->workers, (size_t)l->nworkers * sizeof *l->workers);
    for (int i = 0; i < l->nworkers; i++) {
        l->workers[i].l = l;
        l->workers[i].indices = malloc((size_t)cfg->batch * sizeof(int64_t));
        CHECK_ALLOC(l->workers[i].indices, (size_t)cfg->batch * sizeof(int64_t));
    }
    return alloc_slots(l);
}

rt_status loader_open(loader_t **out, dataset_t *d, const loader_config_t *cfg)
{
    *out = NULL;
    loader_t *l = calloc(1, sizeof *l);
    CHECK_ALLOC(l, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->can_fill, NULL);
    pthread_cond_init(&l->can_take, NULL);
    rt_status st = loader_setup(l, d, cfg);
    if (st != RT_OK)
        goto fail;
    if (l->done)
        l->claims_done = true;
    for (int i = 0; i < l->nworkers && !l->done; i++) {
        pthread_mutex_lock(&l->mu);
        l->running++;
        pthread_mutex_unlock(&l->mu);
        int rc = pthread_create(&l->workers[i].thread, NULL, worker_main, &l->workers[i]);
        if (rc != 0) {
            pthread_mutex_lock(&l->mu);
            l->running--;
            pthread_mutex_unlock(&l->mu);
            st = rt_fail(RT_ERR_INTERNAL, "loader: pthread_create: %s", strerror(rc));
            goto fail;
        }
        l->workers[i].started = true;
    }
    *out = l;
    return RT_OK;
fail:
    loader_close(l);
    return st;
}

rt_status loader_acquire(loader_t *l, loader_batch_t *batch)
{
    if (l->held)
        return rt_fail(RT_ERR_INVALID, "loader: acquire before releasing the previous batch");
    if (l->done)
        return rt_fail(RT_ERR_INVALID, "%s: the evaluation epoch is over (no more batches)",
                       dataset_path(l->d));
    pthread_mutex_lock(&l->mu);
    loader_slot *s = &l->slots[l->head_seq % l->nslots];
    while (!s->ready && !(l->failed && l->fail_seq == l->head_seq) && l->running > 0)
        pthread_cond_wait(&l->can_take, &l->mu);
    if (!s->ready) {
        rt_status st = l->failed ? rt_fail(l->fail_status, "%s", l->fail_msg)
                                 : rt_fail(RT_ERR_INTERNAL, "loader: workers ended early");
        pthread_mutex_unlock(&l->mu);
        return st;
    }
    pthread_mutex_unlock(&l->mu);
    l->held = true;
    /* handed out counts as consumed: a checkpoint taken while the caller
     * still holds this batch resumes after it */
    if (++l->position == l->steps) {
        l->epoch++;
        l->position = 0;
        if (l->cfg.one_epoch)
            l->done = true;
    }
    batch->inputs = s->inputs;
    batch->labels = s->labels;
    batch->tokens = s->tokens;
    batch->rows = s->rows;
    batch->epoch = s->epoch;
    batch->step = s->step;
    return RT_OK;
}

void loader_release(loader_t *l)
{
    if (!l->held)
        return;
    pthread_mutex_lock(&l->mu);
    l->slots[l->head_seq % l->nslots].ready = false;
    l->head_seq++;
    pthread_cond_broadcast(&l->can_fill);
    pthread_mutex_unlock(&l->mu);
    l->held = false;
}

rt_status loader_next(loader_t *l, float *inputs, int32_t *labels, int *count)
{
    if (l->tokens)
        return rt_fail(RT_ERR_INVALID, "%s: loader_next on a tokens dataset (use loader_next_tokens)",
                       dataset_path(l->d));
    loader_batch_t b;
    TRY(loader_acquire(l, &b));
    if (inputs)
        memcpy(inputs, b.inputs, (size_t)b.rows * (size_t)l->features * sizeof(float));
    if (labels)
        memcpy(labels, b.labels, (size_t)b.rows * sizeof(int32_t));
    *count = b.rows;
    loader_release(l);
    return RT_OK;
}

rt_status loader_next_tokens(loader_t *l, int32_t *tokens, int *count)
{
    if (!l->tokens)
        return rt_fail(RT_ERR_INVALID, "%s: loader_next_tokens on a classification dataset",
                       dataset_path(l->d));
    loader_batch_t b;
    TRY(loader_acquire(l, &b));
    memcpy(tokens, b.tokens, (size_t)b.rows * (size_t)(l->cfg.ctx + 1) * sizeof(int32_t));
    *count = b.rows;
    loader_release(l);
    return RT_OK;
}

sampler_state_t loader_state(const loader_t *l)
{
    return (sampler_state_t){.seed = l->cfg.start.seed, .epoch = l->epoch,
                             .position = l->position};
}

int64_t loader_steps_per_epoch(const loader_t *l) { return l->steps; }
int64_t loader_num_samples(const loader_t *l) { return l->sc.n; }
bool loader_done(const loader_t *l) { return l->done; }

int64_t loader_epoch_rows(const loader_t *l)
{
    int64_t rows = 0;
    for (int64_t s = 0; s < l->steps; s++)
        rows += sampler_batch_rows(&l->sc, s);
    return rows;
}

void loader_close(loader_t *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->can_fill);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; l->workers && i < l->nworkers; i++) {
        if (l->workers[i].started)
            pthread_join(l->workers[i].thread, NULL);
        free(l->workers[i].indices);
    }
    free(l->workers);
    if (l->slots) {
        for (int i = 0; i < l->nslots; i++) {
            loader_slot *s = &l->slots[i];
            if (s->inputs)
                l->cfg.free(s->inputs, l->cfg.alloc_ctx);
            if (s->labels)
                l->cfg.free(s->labels, l->cfg.alloc_ctx);
            if (s->tokens)
                l->cfg.free(s->tokens, l->cfg.alloc_ctx);
        }
        free(l->slots);
    }
    free(l->order);
    pthread_cond_destroy(&l->can_take);
    pthread_cond_destroy(&l->can_fill);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
