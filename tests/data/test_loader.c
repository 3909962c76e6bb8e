/* test_loader.c - the prefetching loader on small files written here:
 * values against the formula they were written from (x / 255.0f), order
 * against the sampler, epochs, exact resume, evaluation coverage across
 * simulated ranks, offset reads equal to in-memory reads, token windows,
 * a read error reaching the caller, and clean shutdown mid-stream. The
 * checksums: the writer's, rows put in order or not, equal crc32c() of the
 * data; a flipped byte in an array read by offset fails the first read of
 * its 1 MiB block (naming the array and the block, in dataset_gather and
 * through the loader) and no other block; without a block table the whole
 * array is checked at open; without checksums the file opens, noted. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>

#include "common/crc32c.h"
#include "data/dataset.h"
#include "data/dataset_write.h"
#include "data/loader.h"
#include "data/sampler.h"
#include "test_util.h"

#define N 103
#define F 15
#define C 7
#define T 1000

static char dir[256];

static uint8_t pixel(int64_t i, int64_t k) { return (uint8_t)((i * 31 + k * 7) % 256); }
static uint16_t token(int64_t i) { return (uint16_t)((i * 13) % 1000); }

static void make_files(char *u8, char *f32, char *tok)
{
    snprintf(u8, 300, "%s/u8.h5", dir);
    snprintf(f32, 300, "%s/f32.h5", dir);
    snprintf(tok, 300, "%s/tok.h5", dir);
    static uint8_t in8[N * F], lab8[N];
    static float in32[N * F];
    static int32_t lab32[N];
    static uint16_t toks[T];
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < F; k++) {
            in8[i * F + k] = pixel(i, k);
            in32[i * F + k] = (float)i + 0.25f * (float)k;
        }
        lab8[i] = (uint8_t)(i % C);
        lab32[i] = i % C;
    }
    for (int i = 0; i < T; i++)
        toks[i] = token(i);
    int64_t shape[2] = {3, 5};
    dataset_writer_t *w;
    rt_status st = dataset_writer_create(u8, &w);
    if (st == RT_OK) st = dataset_writer_classification(w, N, 2, shape, RT_DTYPE_U8, RT_DTYPE_U8, C);
    if (st == RT_OK) st = dataset_writer_put(w, "inputs", 0, 50, in8);
    if (st == RT_OK) st = dataset_writer_put(w, "inputs", 50, N - 50, in8 + 50 * F);
    if (st == RT_OK) st = dataset_writer_put(w, "labels", 0, N, lab8);
    if (st == RT_OK) st = dataset_writer_commit(w);
    EXPECT(st == RT_OK, "write u8: %s", rt_last_error());
    st = dataset_writer_create(f32, &w);
    if (st == RT_OK) st = dataset_writer_classification(w, N, 1, (int64_t[]){F}, RT_DTYPE_F32,
                                                        RT_DTYPE_I32, C);
    if (st == RT_OK) st = dataset_writer_put(w, "inputs", 0, N, in32);
    if (st == RT_OK) st = dataset_writer_put(w, "labels", 0, N, lab32);
    if (st == RT_OK) st = dataset_writer_commit(w);
    EXPECT(st == RT_OK, "write f32: %s", rt_last_error());
    st = dataset_writer_create(tok, &w);
    if (st == RT_OK) st = dataset_writer_tokens(w, T, RT_DTYPE_U16, 1000);
    if (st == RT_OK) st = dataset_writer_put(w, "tokens", 0, T, toks);
    if (st == RT_OK) st = dataset_writer_commit(w);
    EXPECT(st == RT_OK, "write tokens: %s", rt_last_error());
}

/* Which record a u8 row is: its first pixel is i*31 % 256 and its label i % 7;
 * the full row is then checked against the formula. */
static int64_t check_u8_row(const float *row, int32_t label, int64_t want)
{
    int ok = label == want % C;
    for (int k = 0; k < F; k++)
        ok &= row[k] == (float)pixel(want, k) / 255.0f;
    return ok;
}

static loader_config_t base_config(int64_t batch)
{
    loader_config_t cfg;
    loader_config_default(&cfg);
    cfg.batch = batch;
    cfg.prefetch = 2;
    cfg.start.seed = 77;
    return cfg;
}

/* Three epochs of shuffled batches match the sampler's order, row by row. */
static void test_order_and_values(dataset_t *d, int workers, int prefetch)
{
    loader_config_t cfg = base_config(8);
    cfg.workers = workers;
    cfg.prefetch = prefetch;
    loader_t *l;
    EXPECT(loader_open(&l, d, &cfg) == RT_OK, "open: %s", rt_last_error());
    sampler_config_t sc = {.n = N, .world = 1, .batch = 8, .shuffle = true,
                           .remainder = SAMPLER_PAD};
    int64_t steps = sampler_steps_per_epoch(&sc), order[N], idx[8];
    EXPECT(loader_steps_per_epoch(l) == steps && steps == 12, "steps %lld",
           (long long)loader_steps_per_epoch(l));
    float in[8 * F];
    int32_t lab[8];
    int bad = 0;
    for (int64_t e = 0; e < 3; e++) {
        sampler_epoch_order(&sc, 77, e, order);
        for (int64_t s = 0; s < steps; s++) {
            sampler_state_t st = loader_state(l);
            bad += st.epoch != e || st.position != s || st.seed != 77;
            int count = 0;
            if (loader_next(l, in, lab, &count) != RT_OK || count != 8) {
                bad++;
                continue;
            }
            sampler_batch_indices(&sc, order, s, idx);
            for (int j = 0; j < 8; j++)
                bad += !check_u8_row(in + j * F, lab[j], idx[j]);
        }
    }
    EXPECT(bad == 0, "%d mismatches over 3 epochs (workers %d, prefetch %d)", bad, workers,
           prefetch);
    sampler_state_t st = loader_state(l);
    EXPECT(st.epoch == 3 && st.position == 0, "state after 3 epochs");
    loader_close(l);
}

/* Stopping after k batches and reopening at the saved state continues with
 * exactly the batches the first loader would have delivered. */
static void test_resume(dataset_t *d)
{
    for (int k = 0; k < 30; k += 7) {
        loader_config_t cfg = base_config(5);
        cfg.world = 3;
        cfg.rank = 1;
        loader_t *a, *b;
        EXPECT(loader_open(&a, d, &cfg) == RT_OK, "open a");
        float in_a[5 * F], in_b[5 * F];
        int32_t lab_a[5], lab_b[5];
        int count;
        for (int i = 0; i < k; i++)
            loader_next(a, in_a, lab_a, &count);
        cfg.start = loader_state(a);
        cfg.prefetch = 3;
        cfg.workers = 1 + k % 3;
        EXPECT(loader_open(&b, d, &cfg) == RT_OK, "open b");
        int same = 1;
        for (int i = 0; i < 20; i++) {
            int ca = 0, cb = 0;
            loader_next(a, in_a, lab_a, &ca);
            loader_next(b, in_b, lab_b, &cb);
            same &= ca == cb && !memcmp(in_a, in_b, sizeof in_a) && !memcmp(lab_a, lab_b, sizeof lab_a);
        }
        EXPECT(same, "resume after %d batches", k);
        loader_close(a);
        loader_close(b);
    }
}

/* Evaluation: one epoch, no shuffle, no padding; over 4 simulated ranks
 * every record comes exactly once, and each rank has the same step count. */
static void test_eval(dataset_t *d)
{
    int seen[N] = {0};
    int64_t rows_total = 0;
    for (int r = 0; r < 4; r++) {
        loader_config_t cfg = base_config(10);
        cfg.world = 4;
        cfg.rank = r;
        cfg.shuffle = false;
        cfg.remainder = SAMPLER_PARTIAL;
        cfg.one_epoch = true;
        cfg.workers = 2;
        cfg.prefetch = 8; /* more slots than the epoch has batches */
        loader_t *l;
        EXPECT(loader_open(&l, d, &cfg) == RT_OK, "eval open");
        EXPECT(loader_steps_per_epoch(l) == 3, "eval steps %lld", (long long)loader_steps_per_epoch(l));
        rows_total += loader_epoch_rows(l);
        float in[10 * F];
        int32_t lab[10];
        int steps = 0;
        while (!loader_done(l)) {
            int count = -1;
            if (loader_next(l, in, lab, &count) != RT_OK)
                break;
            steps++;
            for (int j = 0; j < count; j++) {
                /* record r + k*4 where k runs through this rank's share */
                int64_t rec = -1;
                for (int64_t i = 0; i < N; i++)
                    if (check_u8_row(in + j * F, lab[j], i))
                        rec = i;
                if (rec >= 0)
                    seen[rec]++;
                EXPECT(rec % 4 == r, "rank %d got record %lld", r, (long long)rec);
            }
        }
        EXPECT(steps == 3, "rank %d delivered %d batches", r, steps);
        int count;
        EXPECT(loader_next(l, in, lab, &count) != RT_OK, "past the end fails");
        loader_close(l);
    }
    int once = 1;
    for (int i = 0; i < N; i++)
        once &= seen[i] == 1;
    EXPECT(once && rows_total == N, "every record exactly once (rows %lld)", (long long)rows_total);
}

/* Offset reads (no in-memory copy) give the same batches. */
static void test_direct_reads(const char *path, dataset_t *mem)
{
    dataset_options_t opt = {.max_memory_bytes = 0};
    dataset_t *d;
    EXPECT(dataset_open_opts(path, &opt, &d) == RT_OK, "open direct: %s", rt_last_error());
    EXPECT(!dataset_info(d)->in_memory && dataset_info(mem)->in_memory, "modes");
    loader_config_t cfg = base_config(16);
    loader_t *a, *b;
    loader_open(&a, d, &cfg);
    loader_open(&b, mem, &cfg);
    float in_a[16 * F], in_b[16 * F];
    int32_t la[16], lb[16];
    int same = 1;
    for (int i = 0; i < 25; i++) {
        int ca, cb;
        same &= loader_next(a, in_a, la, &ca) == RT_OK && loader_next(b, in_b, lb, &cb) == RT_OK;
        same &= !memcmp(in_a, in_b, sizeof in_a) && !memcmp(la, lb, sizeof la);
    }
    EXPECT(same, "direct reads equal in-memory reads");
    loader_close(a);
    loader_close(b);
    dataset_close(d);
}

static void test_float_inputs(const char *path)
{
    dataset_t *d;
    EXPECT(dataset_open(path, &d) == RT_OK, "open f32: %s", rt_last_error());
    int64_t idx[3] = {0, 102, 51};
    float in[3 * F];
    int32_t lab[3];
    EXPECT(dataset_gather(d, idx, 3, in, lab) == RT_OK, "gather");
    int ok = 1;
    for (int j = 0; j < 3; j++) {
        ok &= lab[j] == idx[j] % C;
        for (int k = 0; k < F; k++)
            ok &= in[j * F + k] == (float)idx[j] + 0.25f * (float)k;
    }
    EXPECT(ok, "float32 inputs and int32 labels are copied exactly");
    EXPECT(dataset_info(d)->input_type == RT_DTYPE_F32 && dataset_info(d)->label_type == RT_DTYPE_I32,
           "types");
    EXPECT(dataset_expect_kind(d, DATASET_TOKENS) == RT_ERR_FORMAT &&
               strstr(rt_last_error(), "f32.h5") && strstr(rt_last_error(), "classification"),
           "wrong kind named: %s", rt_last_error());
    dataset_close(d);
}

/* Token windows: ctx+1 consecutive tokens, starting on the epoch's grid
 * (shift + i*ctx), no two windows of a batch alike. */
static void test_tokens(const char *path, bool direct)
{
    dataset_options_t opt = {.max_memory_bytes = direct ? 0 : -1};
    dataset_t *d;
    EXPECT(dataset_open_opts(path, &opt, &d) == RT_OK, "open tokens: %s", rt_last_error());
    const int64_t ctx = 16, B = 4;
    loader_config_t cfg = base_config(B);
    cfg.ctx = ctx;
    loader_t *l;
    EXPECT(loader_open(&l, d, &cfg) == RT_OK, "open token loader: %s", rt_last_error());
    EXPECT(loader_num_samples(l) == (T - ctx) / ctx, "windows %lld", (long long)loader_num_samples(l));
    int32_t buf[4 * 17];
    int bad = 0, shifts_differ = 0;
    int64_t first_shift = -1;
    for (int i = 0; i < 3 * loader_steps_per_epoch(l); i++) {
        int count;
        sampler_state_t st = loader_state(l);
        if (loader_next_tokens(l, buf, &count) != RT_OK || count != B) {
            bad++;
            continue;
        }
        int64_t starts[4];
        for (int j = 0; j < B; j++) {
            /* token(i) = 13 i mod 1000 is invertible: 13 * 77 = 1001 */
            int64_t s = ((int64_t)buf[j * 17] * 77) % 1000;
            starts[j] = s;
            for (int64_t k = 0; k <= ctx; k++)
                bad += buf[j * 17 + k] != token(s + k);
            bad += s + ctx >= T;
            for (int m = 0; m < j; m++)
                bad += starts[m] == s;
            bad += starts[0] % ctx != s % ctx;
        }
        if (st.epoch == 0 && first_shift < 0)
            first_shift = starts[0] % ctx;
        if (st.epoch > 0 && starts[0] % ctx != first_shift)
            shifts_differ = 1;
    }
    EXPECT(bad == 0, "%d bad token windows", bad);
    EXPECT(shifts_differ, "windows shift between epochs");
    float in[4];
    int32_t lab[4];
    int count;
    EXPECT(loader_next(l, in, lab, &count) == RT_ERR_INVALID, "loader_next on tokens refused");
    loader_close(l);
    dataset_close(d);
}

/* A read that fails in the background thread reaches the caller, naming the
 * file; earlier batches still arrive. */
static void test_error_reaches_caller(const char *src)
{
    char path[300], cmd[700];
    snprintf(path, sizeof path, "%s/cut.h5", dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, path);
    EXPECT(system(cmd) == 0, "copy");
    dataset_options_t opt = {.max_memory_bytes = 0};
    dataset_t *d;
    EXPECT(dataset_open_opts(path, &opt, &d) == RT_OK, "open cut");
    EXPECT(truncate(path, 1000) == 0, "truncate");
    loader_config_t cfg = base_config(8);
    cfg.workers = 3;
    loader_t *l;
    EXPECT(loader_open(&l, d, &cfg) == RT_OK, "open loader");
    float in[8 * F];
    int32_t lab[8];
    int count;
    rt_status st = RT_OK;
    for (int i = 0; i < 5 && st == RT_OK; i++)
        st = loader_next(l, in, lab, &count);
    EXPECT(st == RT_ERR_IO && strstr(rt_last_error(), "cut.h5"), "error: %d %s", st,
           rt_last_error());
    loader_close(l);
    dataset_close(d);
}

/* The crc32c attribute of /name (-1 when absent) and the offset of its data. */
static int64_t stored_crc(const char *path, const char *name, int64_t *offset)
{
    int64_t crc = -1;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = f >= 0 ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
    if (ds >= 0 && H5Aexists(ds, "crc32c") > 0) {
        uint32_t v;
        hid_t a = H5Aopen(ds, "crc32c", H5P_DEFAULT);
        if (a >= 0 && H5Aread(a, H5T_NATIVE_UINT32, &v) >= 0)
            crc = v;
        if (a >= 0)
            H5Aclose(a);
    }
    if (offset)
        *offset = ds >= 0 ? (int64_t)H5Dget_offset(ds) : -1;
    if (ds >= 0)
        H5Dclose(ds);
    if (f >= 0)
        H5Fclose(f);
    return crc;
}

static void unlink_h5(const char *path, const char *link)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    EXPECT(f >= 0 && H5Ldelete(f, link, H5P_DEFAULT) >= 0, "delete %s", link);
    if (f >= 0)
        H5Fclose(f);
}

static void flip_byte(const char *path, int64_t at)
{
    FILE *f = fopen(path, "r+b");
    int c = f && fseek(f, (long)at, SEEK_SET) == 0 ? fgetc(f) : EOF;
    EXPECT(c != EOF && fseek(f, (long)at, SEEK_SET) == 0 && fputc(c ^ 0xFF, f) != EOF,
           "flip byte %lld of %s", (long long)at, path);
    if (f)
        fclose(f);
}

#define BR 3000   /* records of BF bytes: 3 072 000 bytes, three 1 MiB blocks */
#define BF 1024

static int write_blocks_file(const char *path, const uint8_t *in, const uint8_t *lab,
                             bool in_order)
{
    dataset_writer_t *w;
    int64_t f = BF;
    rt_status st = dataset_writer_create(path, &w);
    if (st == RT_OK) st = dataset_writer_classification(w, BR, 1, &f, RT_DTYPE_U8, RT_DTYPE_U8, C);
    if (in_order) {
        if (st == RT_OK) st = dataset_writer_put(w, "inputs", 0, 1000, in);
        if (st == RT_OK) st = dataset_writer_put(w, "inputs", 1000, BR - 1000, in + 1000 * BF);
    } else {
        if (st == RT_OK) st = dataset_writer_put(w, "inputs", 1000, BR - 1000, in + 1000 * BF);
        if (st == RT_OK) st = dataset_writer_put(w, "inputs", 0, 1000, in);
    }
    if (st == RT_OK) st = dataset_writer_put(w, "labels", 0, BR, lab);
    if (st == RT_OK) st = dataset_writer_commit(w);
    else dataset_writer_abort(w);
    EXPECT(st == RT_OK, "write %s: %s", path, rt_last_error());
    return st == RT_OK;
}

/* Checksums written, and checked block by block on reads by offset. */
static void test_checksums(void)
{
    static uint8_t in[BR * BF], lab[BR];
    for (int64_t i = 0; i < BR; i++) {
        for (int64_t k = 0; k < BF; k++)
            in[i * BF + k] = pixel(i, k);
        lab[i] = (uint8_t)(i % C);
    }
    char good[300], shuffled[300], bad[300], cmd[700];
    snprintf(good, sizeof good, "%s/crc.h5", dir);
    snprintf(shuffled, sizeof shuffled, "%s/crc-unordered.h5", dir);
    snprintf(bad, sizeof bad, "%s/crc-bad.h5", dir);
    if (!write_blocks_file(good, in, lab, true) || !write_blocks_file(shuffled, in, lab, false))
        return;
    int64_t off = -1;
    const int64_t want = crc32c(in, sizeof in);
    EXPECT(stored_crc(good, "/inputs", &off) == want && stored_crc(good, "/labels", NULL) ==
           crc32c(lab, sizeof lab), "crc32c attributes of rows put in order");
    EXPECT(stored_crc(shuffled, "/inputs", NULL) == want, "crc32c of rows put out of order");

    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", good, bad);
    EXPECT(system(cmd) == 0 && off > 0, "copy");
    flip_byte(bad, off + 2 * (1 << 20) + 10);  /* block 2: records 2048.. */
    dataset_options_t direct = {.max_memory_bytes = 0};
    dataset_t *d = NULL;
    EXPECT(dataset_open_opts(bad, &direct, &d) == RT_OK, "open by offset: %s", rt_last_error());
    if (d) {
        EXPECT(!dataset_info(d)->in_memory && !dataset_info(d)->unchecked[0], "by offset, checked");
        static float row[BF];
        int32_t l;
        EXPECT(dataset_gather(d, (int64_t[]){5}, 1, row, &l) == RT_OK, "block 0 reads");
        rt_status st = dataset_gather(d, (int64_t[]){2100}, 1, row, &l);
        EXPECT(st == RT_ERR_CORRUPT && strstr(rt_last_error(), "/inputs") &&
               strstr(rt_last_error(), "block 2 of 3") && strstr(rt_last_error(), "crc-bad.h5"),
               "a record of the bad block: %d %s", st, rt_last_error());
        EXPECT(dataset_gather(d, (int64_t[]){1500}, 1, row, &l) == RT_OK, "block 1 reads");
        EXPECT(dataset_gather(d, (int64_t[]){2999}, 1, row, &l) == RT_ERR_CORRUPT,
               "the bad block stays bad");
        /* through the loader: the batch holding a bad record never arrives */
        loader_config_t cfg = base_config(16);
        cfg.workers = 2;
        loader_t *ld;
        EXPECT(loader_open(&ld, d, &cfg) == RT_OK, "open loader");
        static float ins[16 * BF];
        int32_t labs[16];
        int count, got = 0;
        while ((st = loader_next(ld, ins, labs, &count)) == RT_OK && got < 1000)
            got++;
        EXPECT(st == RT_ERR_CORRUPT && strstr(rt_last_error(), "/inputs"),
               "the loader reports the bad block: %d %s", st, rt_last_error());
        loader_close(ld);
        dataset_close(d);
    }
    /* the same file held in memory: caught at open */
    EXPECT(dataset_open(bad, &d) == RT_ERR_CORRUPT && strstr(rt_last_error(), "/inputs"),
           "in memory: corrupt at open: %s", rt_last_error());
    /* no block table: the whole array is checked at open */
    unlink_h5(bad, "/crc32c_blocks/inputs");
    EXPECT(dataset_open_opts(bad, &direct, &d) == RT_ERR_CORRUPT &&
           strstr(rt_last_error(), "/inputs fails its checksum"),
           "without a block table, at open: %s", rt_last_error());
    EXPECT(dataset_open_opts(good, &direct, &d) == RT_OK, "intact, by offset");
    dataset_close(d);
    /* no checksums at all: opens, and says so */
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", good, bad);
    EXPECT(system(cmd) == 0, "copy");
    unlink_h5(bad, "/crc32c_blocks");
    hid_t f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    EXPECT(f >= 0 && H5Adelete_by_name(f, "/inputs", "crc32c", H5P_DEFAULT) >= 0, "drop crc");
    if (f >= 0)
        H5Fclose(f);
    EXPECT(dataset_open_opts(bad, &direct, &d) == RT_OK &&
           !strcmp(dataset_info(d)->unchecked, "/inputs"), "unchecked /inputs: %s",
           d ? dataset_info(d)->unchecked : rt_last_error());
    dataset_close(d);
    dataset_verify_report_t rep;
    EXPECT(dataset_verify(good, &rep) == RT_OK && rep.arrays == 2 && rep.checked == 2 &&
           rep.bytes == BR * BF + BR, "verify: %s", rt_last_error());
}

static int allocs, frees;
static void *count_alloc(size_t bytes, void *ctx) { (void)ctx; allocs++; return malloc(bytes); }
static void count_free(void *p, void *ctx) { (void)ctx; frees++; free(p); }

/* The caller's allocator (a CUDA build passes pinned memory) gets every
 * buffer; closing while the thread waits on a full ring is clean. */
static void test_alloc_and_close(dataset_t *d)
{
    loader_config_t cfg = base_config(4);
    cfg.prefetch = 3;
    cfg.alloc = count_alloc;
    cfg.free = count_free;
    loader_t *l;
    EXPECT(loader_open(&l, d, &cfg) == RT_OK, "open");
    loader_batch_t b;
    EXPECT(loader_acquire(l, &b) == RT_OK && b.rows == 4 && b.epoch == 0 && b.step == 0, "acquire");
    EXPECT(loader_state(l).position == 1, "a held batch counts as consumed");
    EXPECT(loader_acquire(l, &b) == RT_ERR_INVALID, "double acquire refused");
    loader_release(l);
    nanosleep(&(struct timespec){0, 20000000}, NULL); /* let the producer fill the ring and block */
    loader_close(l);
    EXPECT(allocs == 6 && frees == 6, "allocs %d frees %d", allocs, frees);

    /* a state saved after an epoch's last batch resumes at the next epoch */
    cfg = base_config(8);
    cfg.start = (sampler_state_t){77, 2, 12};
    EXPECT(loader_open(&l, d, &cfg) == RT_OK, "open at end of epoch");
    EXPECT(loader_acquire(l, &b) == RT_OK && b.epoch == 3 && b.step == 0, "next epoch");
    loader_release(l);
    loader_close(l);
    cfg.start.position = 13;
    EXPECT(loader_open(&l, d, &cfg) == RT_ERR_INVALID, "position past the epoch refused");
    cfg = base_config(200);
    EXPECT(loader_open(&l, d, &cfg) == RT_ERR_INVALID, "batch larger than the set refused");
    cfg = base_config(8);
    cfg.rank = 2;
    cfg.world = 2;
    EXPECT(loader_open(&l, d, &cfg) == RT_ERR_INVALID, "rank outside world refused");
}

int main(void)
{
    const char *base = getenv("RT_BINARY_DIR");
    snprintf(dir, sizeof dir, "%s/test_loader.XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char u8[300], f32[300], tok[300];
    make_files(u8, f32, tok);
    dataset_t *d = NULL;
    EXPECT(dataset_open(u8, &d) == RT_OK, "open u8: %s", rt_last_error());
    if (d) {
        const dataset_info_t *info = dataset_info(d);
        EXPECT(info->kind == DATASET_CLASSIFICATION && info->count == N && info->features == F &&
                   info->record_dims == 2 && info->record_shape[0] == 3 &&
                   info->record_shape[1] == 5 && info->num_classes == C,
               "info");
        test_order_and_values(d, 1, 2);
        test_order_and_values(d, 3, 5);
        test_order_and_values(d, 4, 1);
        test_resume(d);
        test_eval(d);
        test_direct_reads(u8, d);
        test_alloc_and_close(d);
        dataset_close(d);
    }
    test_float_inputs(f32);
    test_tokens(tok, false);
    test_tokens(tok, true);
    test_error_reaches_caller(u8);
    test_checksums();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return TEST_EXIT();
}
