/* test_ckpt_file.c - the checkpoint library in one process: round trip of
 * every element type, digest, model-spec and shape refusals, pruning,
 * find-latest past a flipped byte, a truncated file, a garbage file and an
 * unfinished temporary file, a newer format version, tampered metadata, an
 * unwritable directory and a file-size limit (RLIMIT_FSIZE stands in for
 * a full disk; test_ckpt_kill.py also fills a real tmpfs when it can). */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <hdf5.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "trainer/ckpt/ckpt_internal.h"
#include "synth_state.h"
#include "test_util.h"

#define SPEC "mlp:8,16,3"

static char root[256];

typedef struct {
    int n;
    char text[4096];
} skip_log;

static void skip_collect(void *ctx, const char *path, const char *reason)
{
    skip_log *log = ctx;
    size_t o = strlen(log->text);
    snprintf(log->text + o, sizeof log->text - o, "%s: %s\n", path, reason);
    log->n++;
}

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void path_join(char *out, size_t len, const char *dir, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

/* Writes the synthetic checkpoint of step; run NULL: no pruning. */
static rt_status write_step(const char *dir, int64_t step, ckpt_run_t *run)
{
    synth_state s;
    synth_layout(&s, 8, 16, 3);
    if (synth_alloc(&s) != 0)
        return RT_ERR_NOMEM;
    synth_fill(&s, step);
    ckpt_meta_t m = synth_meta(step, SPEC);
    rt_status st = ckpt_save(dir, run, &m, s.arrays, s.n, NULL, 0);
    synth_free(&s);
    return st;
}

/* Offset in the file of a dataset's first byte, found through HDF5. */
static haddr_t data_offset(const char *path, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    haddr_t off = H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(f);
    return off;
}

static void byte_flip(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    unsigned char b = 0;
    if (fd < 0 || pread(fd, &b, 1, off) != 1)
        abort();
    b ^= 0x10;
    if (pwrite(fd, &b, 1, off) != 1)
        abort();
    close(fd);
}

static uint32_t file_crc(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    unsigned char buf[65536];
    uint32_t c = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        c = crc32c_update(c, buf, n);
    fclose(f);
    return c;
}

static void test_roundtrip(void)
{
    char dir[300], path[400];
    path_join(dir, sizeof dir, root, "rt");
    synth_state w;
    synth_layout(&w, 8, 16, 3);
    synth_alloc(&w);
    synth_fill(&w, 123);
    ckpt_meta_t m = synth_meta(123, SPEC);
    rt_status st = ckpt_write(dir, &m, w.arrays, w.n, path, sizeof path);
    EXPECT(st == RT_OK, "write: %s", rt_last_error());
    EXPECT(strstr(path, "/ckpt-00000123.h5") != NULL, "path %s", path);
    uint64_t wd = ckpt_digest(&m, w.arrays, w.n);

    ckpt_reader_t *r = NULL;
    st = ckpt_open(path, &r);
    EXPECT(st == RT_OK, "open: %s", rt_last_error());
    if (!r)
        return;
    const ckpt_meta_t *rm = ckpt_reader_meta(r);
    EXPECT(rm->format_version == CKPT_FORMAT_VERSION && rm->step == 123 && rm->epoch == 12 &&
           rm->world_size == 2 && rm->created_unix > 1600000000, "meta numbers");
    EXPECT(!strcmp(rm->model_spec, SPEC) && !strcmp(rm->config_json, m.config_json), "meta strings");
    EXPECT(ckpt_expect_spec(r, SPEC) == RT_OK, "same spec accepted");
    st = ckpt_expect_spec(r, "mlp:8,32,3");
    EXPECT(st == RT_ERR_MISMATCH && strstr(rt_last_error(), SPEC) && strstr(rt_last_error(), "mlp:8,32,3"),
           "spec mismatch names both: %s", rt_last_error());

    synth_state g;
    synth_layout(&g, 8, 16, 3);
    synth_alloc(&g);
    st = ckpt_read_arrays(r, g.arrays, g.n);
    EXPECT(st == RT_OK, "read: %s", rt_last_error());
    int which = -1;
    EXPECT(synth_check(&g, 123, &which) == -1, "values differ in array %d", which);
    EXPECT(ckpt_digest(rm, g.arrays, g.n) == wd, "digest of loaded state equals writer's");
    ((float *)g.arrays[0].data)[5] += 1.0f;
    EXPECT(ckpt_digest(rm, g.arrays, g.n) != wd, "digest sees a changed element");
    ckpt_meta_t other = *rm;
    other.step++;
    ((float *)g.arrays[0].data)[5] -= 1.0f;
    EXPECT(ckpt_digest(&other, g.arrays, g.n) != wd, "digest sees the step");

    rt_dtype t;
    int rank;
    int64_t dims[CKPT_MAX_RANK];
    EXPECT(ckpt_array_info(r, "params/fc1.weight", &t, &rank, dims) == RT_OK && t == RT_DTYPE_F32 && rank == 2 &&
           dims[0] == 16 && dims[1] == 8, "array info");
    EXPECT(ckpt_has_array(r, "rng/state") && !ckpt_has_array(r, "rng/nope") && !ckpt_has_array(r, "nope/x") &&
           !ckpt_has_array(r, "params"), "has_array");
    ckpt_array_t wrong = g.arrays[0];
    wrong.dims[0] = 17;
    st = ckpt_read_array(r, &wrong);
    EXPECT(st == RT_ERR_MISMATCH && strstr(rt_last_error(), "params/fc1.weight") && strstr(rt_last_error(), "[16,8]"),
           "shape mismatch: %s", rt_last_error());
    wrong = g.arrays[0];
    wrong.type = RT_DTYPE_F64;
    EXPECT(ckpt_read_array(r, &wrong) == RT_ERR_MISMATCH, "type mismatch");
    wrong.name = "params/fc9.weight";
    EXPECT(ckpt_read_array(r, &wrong) != RT_OK && strstr(rt_last_error(), "fc9"), "missing: %s", rt_last_error());
    ckpt_close(r);
    synth_free(&g);
    synth_free(&w);

    /* no temporary file left behind */
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s/.ckpt-00000123.h5.tmp.%ld", dir, (long)getpid());
    EXPECT(!file_exists(tmp), "temporary file removed");

    /* An empty array round-trips too. */
    float none = 0;
    ckpt_array_t e = {.name = "params/empty", .type = RT_DTYPE_F32, .data = &none, .rank = 1, .dims = {0}};
    m.step = 124;
    EXPECT(ckpt_write(dir, &m, &e, 1, path, sizeof path) == RT_OK, "empty write: %s", rt_last_error());
    EXPECT(ckpt_verify(path, NULL) == RT_OK, "empty verify: %s", rt_last_error());
}

typedef struct {
    int n;
    char text[8192];
} note_log;

static void note_collect(void *ctx, const char *line)
{
    note_log *log = ctx;
    size_t o = strlen(log->text);
    snprintf(log->text + o, sizeof log->text - o, "%s\n", line);
    log->n++;
}

/* Pruning deletes only what the run may delete (docs/CHECKPOINTS.md,
 * "Pruning"). The directory holds 40 (good), 50 (a flipped byte), 60
 * (truncated), 70 (not HDF5) and a stale temporary file. */
static void test_prune_rule(const char *dir, const char *p40, const char *p50, const char *p60,
                            const char *junk, const char *tmp)
{
    char p80[400], p90[400], p100[400], p110[400], p115[400], p120[400];
    ckpt_path_for_step(dir, 80, p80, sizeof p80);
    ckpt_path_for_step(dir, 90, p90, sizeof p90);
    ckpt_path_for_step(dir, 100, p100, sizeof p100);
    ckpt_path_for_step(dir, 110, p110, sizeof p110);
    ckpt_path_for_step(dir, 115, p115, sizeof p115);
    ckpt_path_for_step(dir, 120, p120, sizeof p120);

    /* A run that wrote nothing deletes no checkpoint, only the stale temp. */
    note_log log = {0, ""};
    ckpt_run_t a;
    ckpt_run_init(&a, 1, -1, note_collect, &log);
    int removed = -1;
    EXPECT(ckpt_prune(dir, &a, &removed) == RT_OK && removed == 1, "no own checkpoint: removed %d", removed);
    EXPECT(!file_exists(tmp) && file_exists(p40) && file_exists(p50) && file_exists(p60) && file_exists(junk),
           "no own checkpoint: only the temp went");

    /* A fresh run (no history) with --keep 1: the others are named once. */
    EXPECT(write_step(dir, 80, &a) == RT_OK, "write 80: %s", rt_last_error());
    EXPECT(log.n == 1 && strstr(log.text, "prune: left 4 checkpoints") && strstr(log.text, "ckpt-00000040.h5") &&
           strstr(log.text, "ckpt-00000070.h5") && strstr(log.text, "not written by this run"),
           "one line names 40..70: %s", log.text);
    EXPECT(write_step(dir, 90, &a) == RT_OK, "write 90: %s", rt_last_error());
    EXPECT(!file_exists(p80) && file_exists(p90) && file_exists(p40) && file_exists(junk),
           "own 80 pruned, the others kept");
    EXPECT(log.n == 1, "nothing new to name: %s", log.text);
    ckpt_run_free(&a);

    /* A run resumed from step 45 of this directory: 40 is its history and
     * verifies, so it goes; 50..90 are above its history and not its own. */
    memset(&log, 0, sizeof log);
    ckpt_run_t b;
    ckpt_run_init(&b, 1, 45, note_collect, &log);
    EXPECT(write_step(dir, 100, &b) == RT_OK, "write 100: %s", rt_last_error());
    EXPECT(!file_exists(p40) && file_exists(p50) && file_exists(p60) && file_exists(junk) && file_exists(p90) &&
           file_exists(p100), "history 40 pruned, 50..90 kept");
    EXPECT(log.n == 1 && strstr(log.text, "ckpt-00000090.h5") && !strstr(log.text, "ckpt-00000040.h5"),
           "one line, 90 named: %s", log.text);
    ckpt_run_free(&b);

    /* History that does not verify is kept and named with the reason; a
     * higher step too. */
    memset(&log, 0, sizeof log);
    ckpt_run_t c;
    ckpt_run_init(&c, 1, 95, note_collect, &log);
    EXPECT(write_step(dir, 110, &c) == RT_OK, "write 110: %s", rt_last_error());
    EXPECT(file_exists(p50) && file_exists(p60) && file_exists(junk) && !file_exists(p90) && file_exists(p100),
           "90 (history, verifies) pruned; 50, 60, 70 and 100 kept");
    EXPECT(log.n == 1 && strstr(log.text, "ckpt-00000050.h5 (does not verify") &&
           strstr(log.text, "ckpt-00000060.h5 (does not verify") &&
           strstr(log.text, "ckpt-00000070.h5 (does not verify"), "unverifiable history named: %s", log.text);
    ckpt_run_free(&c);

    /* The run's newest checkpoint is cut short: nothing is deleted. */
    memset(&log, 0, sizeof log);
    ckpt_run_t d;
    ckpt_run_init(&d, 1, -1, note_collect, &log);
    EXPECT(write_step(dir, 115, &d) == RT_OK, "write 115: %s", rt_last_error());
    EXPECT(write_step(dir, 120, NULL) == RT_OK && ckpt_run_add_own(&d, 120) == RT_OK, "write 120");
    struct stat sb;
    EXPECT(stat(p120, &sb) == 0 && truncate(p120, sb.st_size / 2) == 0, "truncate 120");
    EXPECT(ckpt_prune(dir, &d, &removed) == RT_OK && removed == 0, "cut newest own: removed %d", removed);
    EXPECT(file_exists(p115) && file_exists(p120) && file_exists(p110), "115 kept");
    EXPECT(strstr(log.text, "deleting nothing") && strstr(log.text, "ckpt-00000120.h5"), "says why: %s", log.text);
    ckpt_run_free(&d);

    /* The same step under another spelling is not the run's. */
    memset(&log, 0, sizeof log);
    ckpt_run_t e;
    ckpt_run_init(&e, 1, -1, note_collect, &log);
    char p130[400], p130b[400];
    ckpt_path_for_step(dir, 130, p130, sizeof p130);
    snprintf(p130b, sizeof p130b, "%s/ckpt-000000130.h5", dir);
    EXPECT(write_step(dir, 130, &e) == RT_OK && link(p130, p130b) == 0, "write 130, link");
    EXPECT(write_step(dir, 140, &e) == RT_OK, "write 140: %s", rt_last_error());
    EXPECT(!file_exists(p130) && file_exists(p130b), "own 130 pruned, ckpt-000000130.h5 kept");
    EXPECT(strstr(log.text, "ckpt-000000130.h5 (not written by this run)"), "and named: %s", log.text);
    ckpt_run_free(&e);
}

static void test_prune_and_latest(void)
{
    char dir[300], p40[400], p50[400], p60[400], junk[400], tmp[400];
    path_join(dir, sizeof dir, root, "latest");
    char none[400];
    int64_t step = -1;
    EXPECT(ckpt_find_latest(dir, none, sizeof none, &step, NULL, NULL) == RT_OK && none[0] == '\0',
           "missing dir: no checkpoint");
    ckpt_run_t run;
    ckpt_run_init(&run, 2, -1, NULL, NULL);
    for (int64_t s = 10; s <= 50; s += 10)
        EXPECT(write_step(dir, s, &run) == RT_OK, "write %" PRId64 ": %s", s, rt_last_error());
    ckpt_path_for_step(dir, 40, p40, sizeof p40);
    ckpt_path_for_step(dir, 50, p50, sizeof p50);
    char p30[400];
    ckpt_path_for_step(dir, 30, p30, sizeof p30);
    EXPECT(file_exists(p40) && file_exists(p50) && !file_exists(p30), "keep 2 kept 40 and 50 only");
    ckpt_run_free(&run);

    /* A flipped byte inside params/fc1.weight of the newest. */
    byte_flip(p50, (off_t)data_offset(p50, "params/fc1.weight") + 37);
    rt_status st = ckpt_verify(p50, NULL);
    EXPECT(st == RT_ERR_FORMAT && strstr(rt_last_error(), "params/fc1.weight") &&
           !strstr(rt_last_error(), "fc2"), "verify names the dataset: %s", rt_last_error());

    /* Reading the flipped dataset directly fails its checksum too. */
    {
        ckpt_reader_t *r = NULL;
        synth_state g;
        synth_layout(&g, 8, 16, 3);
        synth_alloc(&g);
        EXPECT(ckpt_open(p50, &r) == RT_OK, "open 50 (metadata intact): %s", rt_last_error());
        if (r) {
            EXPECT(ckpt_read_array(r, &g.arrays[1]) == RT_OK, "fc1.bias intact");
            st = ckpt_read_array(r, &g.arrays[0]);
            EXPECT(st == RT_ERR_FORMAT && strstr(rt_last_error(), "params/fc1.weight fails its checksum"),
                   "read names the dataset: %s", rt_last_error());
            ckpt_close(r);
        }
        synth_free(&g);
    }

    /* Newer still: a truncated file, a garbage file, an unfinished temp. */
    EXPECT(write_step(dir, 60, NULL) == RT_OK, "write 60");
    ckpt_path_for_step(dir, 60, p60, sizeof p60);
    struct stat sb;
    stat(p60, &sb);
    EXPECT(truncate(p60, sb.st_size / 2) == 0, "truncate");
    st = ckpt_verify(p60, NULL);
    EXPECT(st != RT_OK && strstr(rt_last_error(), "truncated"), "truncated: %s", rt_last_error());
    ckpt_path_for_step(dir, 70, junk, sizeof junk);
    FILE *f = fopen(junk, "w");
    fputs("not a checkpoint", f);
    fclose(f);
    snprintf(tmp, sizeof tmp, "%s/.ckpt-00000080.h5.tmp.999999999", dir);
    f = fopen(tmp, "w");
    fputs("partial", f);
    fclose(f);

    char got[400];
    step = -1;
    st = ckpt_find_latest(dir, got, sizeof got, &step, NULL, NULL);
    EXPECT(st == RT_OK && step == 40 && !strcmp(got, p40), "latest good is 40: %" PRId64 " %s", step, got);

    /* The reasons, via the callback. */
    skip_log log = {0, ""};
    ckpt_find_latest(dir, got, sizeof got, &step, skip_collect, &log);
    EXPECT(log.n == 4, "4 skipped (tmp, 70, 60, 50): %d\n%s", log.n, log.text);
    EXPECT(strstr(log.text, "ckpt-00000050.h5") && strstr(log.text, "params/fc1.weight"), "50 skipped for fc1: %s",
           log.text);
    EXPECT(strstr(log.text, "ckpt-00000060.h5") && strstr(log.text, "truncated"), "60 truncated: %s", log.text);
    EXPECT(strstr(log.text, "tmp.999999999") && strstr(log.text, "unfinished"), "temp reported: %s", log.text);

    test_prune_rule(dir, p40, p50, p60, junk, tmp);
}

/* HDF5 edit of a root integer attribute, as another tool might do. */
static void attr_set_i64(const char *path, const char *name, int64_t v)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    H5Fclose(f);
}

static void test_version_and_tamper(void)
{
    char dir[300], p[400];
    path_join(dir, sizeof dir, root, "version");
    EXPECT(write_step(dir, 5, NULL) == RT_OK, "write");
    ckpt_path_for_step(dir, 5, p, sizeof p);
    attr_set_i64(p, "format_version", 2);
    ckpt_reader_t *r = NULL;
    rt_status st = ckpt_open(p, &r);
    EXPECT(st == RT_ERR_FORMAT && strstr(rt_last_error(), "format_version 2") && r == NULL,
           "newer version refused with the version: %s", rt_last_error());
    attr_set_i64(p, "format_version", 1);
    EXPECT(ckpt_verify(p, NULL) == RT_OK, "restored: %s", rt_last_error());
    attr_set_i64(p, "step", 6);
    st = ckpt_open(p, &r);
    EXPECT(st == RT_ERR_FORMAT && strstr(rt_last_error(), "meta_crc32c"), "tampered step: %s", rt_last_error());
}

static void test_unwritable(void)
{
    char dir[300], p[400], bad[400];
    path_join(dir, sizeof dir, root, "full");
    EXPECT(write_step(dir, 1, NULL) == RT_OK, "write 1");
    ckpt_path_for_step(dir, 1, p, sizeof p);
    uint32_t before = file_crc(p);

    /* A directory that cannot exist: its parent is a regular file. */
    snprintf(bad, sizeof bad, "%s/ckpt-00000001.h5/sub", dir);
    rt_status st = write_step(bad, 2, NULL);
    EXPECT(st == RT_ERR_IO && strstr(rt_last_error(), "sub"), "unwritable dir: %s", rt_last_error());

    /* A file-size limit far below the checkpoint's size. */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 3000;
    setrlimit(RLIMIT_FSIZE, &lim);
    st = write_step(dir, 2, NULL);
    setrlimit(RLIMIT_FSIZE, &old);
    EXPECT(st != RT_OK && strstr(rt_last_error(), "ckpt-00000002.h5"), "size limit: %s", rt_last_error());
    printf("size-limit error: %s\n", rt_last_error());
    char p2[400], tmp[400];
    ckpt_path_for_step(dir, 2, p2, sizeof p2);
    snprintf(tmp, sizeof tmp, "%s/.ckpt-00000002.h5.tmp.%ld", dir, (long)getpid());
    EXPECT(!file_exists(p2) && !file_exists(tmp), "no partial file left");
    EXPECT(file_crc(p) == before && ckpt_verify(p, NULL) == RT_OK, "older checkpoint untouched");
}

/* Arrays of 8 MiB and more take the threaded paths (checksum beside the
 * write, O_DIRECT writes from 16 MiB, or block writes with early writeback
 * where O_DIRECT is not available, block reads with a checksum thread):
 * 2-D of 20 MB (3 write blocks, 2 read blocks), and
 * 1-D, then a flipped byte in the last block. */
static void test_large(void)
{
    char dir[300], path[400];
    path_join(dir, sizeof dir, root, "large");
    int64_t rows = 5000, cols = 1000, n1 = 3 * 1000 * 1000 + 7;
    float *w = malloc((size_t)(rows * cols) * sizeof *w), *v = malloc((size_t)n1 * sizeof *v);
    float *w2 = malloc((size_t)(rows * cols) * sizeof *w2), *v2 = malloc((size_t)n1 * sizeof *v2);
    uint32_t x = 1;
    for (int64_t i = 0; i < rows * cols; i++)
        w[i] = (float)((x = x * 1664525u + 1013904223u) >> 8);
    for (int64_t i = 0; i < n1; i++)
        v[i] = (float)i;
    ckpt_array_t arr[2] = {
        {.name = "params/big.weight", .type = RT_DTYPE_F32, .data = w, .rank = 2, .dims = {rows, cols}},
        {.name = "params/big.bias", .type = RT_DTYPE_F32, .data = v, .rank = 1, .dims = {n1}},
    };
    ckpt_meta_t m = synth_meta(7, SPEC);
    EXPECT(ckpt_write(dir, &m, arr, 2, path, sizeof path) == RT_OK, "large write: %s", rt_last_error());
    ckpt_array_t back[2] = {arr[0], arr[1]};
    back[0].data = w2;
    back[1].data = v2;
    ckpt_reader_t *r = NULL;
    EXPECT(ckpt_open(path, &r) == RT_OK && ckpt_read_arrays(r, back, 2) == RT_OK, "large read: %s",
           rt_last_error());
    ckpt_close(r);
    EXPECT(!memcmp(w, w2, (size_t)(rows * cols) * sizeof *w) && !memcmp(v, v2, (size_t)n1 * sizeof *v),
           "large arrays round-trip");
    EXPECT(ckpt_digest(&m, arr, 2) == ckpt_digest(&m, back, 2), "large digest");
    byte_flip(path, (off_t)data_offset(path, "params/big.weight") + (off_t)(rows * cols * 4) - 3);
    r = NULL;
    EXPECT(ckpt_open(path, &r) == RT_OK, "open");
    rt_status st = r ? ckpt_read_array(r, &back[0]) : RT_ERR_IO;
    EXPECT(st == RT_ERR_FORMAT && strstr(rt_last_error(), "params/big.weight fails its checksum"),
           "flip in the last block: %s", rt_last_error());
    EXPECT(r && ckpt_read_array(r, &back[1]) == RT_OK, "the other one reads");
    ckpt_close(r);
    EXPECT(ckpt_verify(path, NULL) == RT_ERR_FORMAT && strstr(rt_last_error(), "params/big.weight"),
           "verify: %s", rt_last_error());
    free(w);
    free(v);
    free(w2);
    free(v2);
}

/* The global-batch rule, against hand-worked cases. */
static void test_resume_batch(void)
{
    int64_t b = -1;
    EXPECT(ckpt_resume_batch(4, 64, 2, 0, &b) == RT_OK && b == 128, "4x64 on 2 ranks: %" PRId64, b);
    EXPECT(ckpt_resume_batch(4, 64, 8, 0, &b) == RT_OK && b == 32, "4x64 on 8 ranks: %" PRId64, b);
    EXPECT(ckpt_resume_batch(4, 64, 4, 64, &b) == RT_OK && b == 64, "same shape");
    EXPECT(ckpt_resume_batch(1, 100, 3, 0, &b) == RT_ERR_MISMATCH && strstr(rt_last_error(), "global batch 100") &&
           strstr(rt_last_error(), "3 ranks"), "100 over 3: %s", rt_last_error());
    EXPECT(ckpt_resume_batch(4, 64, 2, 64, &b) == RT_ERR_MISMATCH && strstr(rt_last_error(), "256") &&
           strstr(rt_last_error(), "gives 128") &&
           strstr(rt_last_error(), "use --batch 128"), "--batch 64 on 2 ranks: %s", rt_last_error());
    EXPECT(ckpt_resume_batch(4, 64, 2, 128, &b) == RT_OK && b == 128, "--batch 128 on 2 ranks");
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/test_ckpt_file.%ld", (long)getpid());
    test_roundtrip();
    EXPECT(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "HDF5 objects left open after %s: %ld", "test_roundtrip();", (long)H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL));
    test_prune_and_latest();
    EXPECT(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "HDF5 objects left open after %s: %ld", "test_prune_and_latest();", (long)H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL));
    test_version_and_tamper();
    EXPECT(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "HDF5 objects left open after %s: %ld", "test_version_and_tamper();", (long)H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL));
    test_unwritable();
    test_large();
    test_resume_batch();
    EXPECT(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "HDF5 objects left open after %s: %ld", "test_unwritable();", (long)H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL));
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (test_failed_count == 0 && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return TEST_EXIT();
}
