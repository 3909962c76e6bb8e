/* ckpt_driver.c - a small program that writes and loads checkpoints of
 * synthetic state (synth_state.h), for the kill, corruption, h5py and
 * disk-full tests and the checkpoint bench.
 *
 *   ckpt_driver write DIR STEP [--in I --hidden H --out O] [--keep N]
 *                     [--spec S] [--fsize-limit BYTES]
 *   ckpt_driver load DIR|FILE [--in I --hidden H --out O] [--spec S]
 *   ckpt_driver verify FILE
 *
 * write prints "wrote PATH bytes B seconds T digest D"; load picks the
 * newest checkpoint that verifies when given a directory, prints each skip
 * ("skip PATH: reason"), checks every value against the closed form, and
 * prints "loaded step S from PATH seconds T digest D" (exit 0), "no
 * checkpoint" (exit 3), or the error (exit 1). */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "common/timer.h"
#include "synth_state.h"

typedef struct {
    int64_t in, hidden, out;
    int keep;
    const char *spec;
    long long fsize_limit;
} driver_opts;

static int opts_parse(int argc, char **argv, int first, driver_opts *o, char *spec_buf, size_t spec_len)
{
    o->in = 8;
    o->hidden = 16;
    o->out = 3;
    o->keep = 0;
    o->spec = NULL;
    o->fsize_limit = 0;
    for (int i = first; i < argc; i++) {
        if (i + 1 >= argc) {
            fprintf(stderr, "ckpt_driver: %s needs a value\n", argv[i]);
            return -1;
        }
        const char *f = argv[i], *v = argv[++i];
        if (!strcmp(f, "--in")) o->in = atoll(v);
        else if (!strcmp(f, "--hidden")) o->hidden = atoll(v);
        else if (!strcmp(f, "--out")) o->out = atoll(v);
        else if (!strcmp(f, "--keep")) o->keep = atoi(v);
        else if (!strcmp(f, "--spec")) o->spec = v;
        else if (!strcmp(f, "--fsize-limit")) o->fsize_limit = atoll(v);
        else {
            fprintf(stderr, "ckpt_driver: unknown flag %s\n", f);
            return -1;
        }
    }
    if (!o->spec) {
        snprintf(spec_buf, spec_len, "mlp:%" PRId64 ",%" PRId64 ",%" PRId64, o->in, o->hidden, o->out);
        o->spec = spec_buf;
    }
    return 0;
}

static void skip_print(void *ctx, const char *path, const char *reason)
{
    (void)ctx;
    printf("skip %s: %s\n", path, reason);
}

static int do_write(const char *dir, int64_t step, const driver_opts *o)
{
    synth_state s;
    synth_layout(&s, o->in, o->hidden, o->out);
    if (synth_alloc(&s) != 0) {
        fprintf(stderr, "ckpt_driver: out of memory\n");
        return 1;
    }
    synth_fill(&s, step);
    if (o->fsize_limit > 0) {
        /* A write past the limit then fails with EFBIG instead of a signal. */
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {(rlim_t)o->fsize_limit, (rlim_t)o->fsize_limit};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) {
            perror("setrlimit");
            return 1;
        }
    }
    ckpt_meta_t m = synth_meta(step, o->spec);
    char path[4096];
    double t0 = rt_now();
    /* --keep: this write continues the directory's history (every lower
     * step), so pruning may delete what it does not need to keep N */
    ckpt_run_t run;
    ckpt_run_init(&run, o->keep, step - 1, NULL, NULL);
    rt_status st = ckpt_save(dir, o->keep > 0 ? &run : NULL, &m, s.arrays, s.n, path, sizeof path);
    ckpt_run_free(&run);
    double t1 = rt_now();
    if (st != RT_OK) {
        fprintf(stderr, "ckpt_driver: %s\n", rt_last_error());
        synth_free(&s);
        return 1;
    }
    struct stat sb;
    stat(path, &sb);
    printf("wrote %s bytes %lld seconds %.3f digest 0x%016" PRIx64 "\n", path, (long long)sb.st_size, t1 - t0,
           ckpt_digest(&m, s.arrays, s.n));
    synth_free(&s);
    return 0;
}

static int do_load(const char *target, const driver_opts *o)
{
    char path[4096];
    struct stat sb;
    if (stat(target, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        int64_t step;
        if (ckpt_find_latest(target, path, sizeof path, &step, skip_print, NULL) != RT_OK) {
            fprintf(stderr, "ckpt_driver: %s\n", rt_last_error());
            return 1;
        }
        if (!path[0]) {
            printf("no checkpoint\n");
            return 3;
        }
    } else {
        snprintf(path, sizeof path, "%s", target);
    }
    /* Buffers are allocated and touched before the clock starts, as a
     * trainer's state is, so the time is the checkpoint's alone. */
    synth_state s;
    synth_layout(&s, o->in, o->hidden, o->out);
    if (synth_alloc(&s) != 0) {
        fprintf(stderr, "ckpt_driver: out of memory\n");
        return 1;
    }
    for (int i = 0; i < s.n; i++)
        memset(s.arrays[i].data, 0xA5, (size_t)ckpt_array_count(&s.arrays[i]) * rt_dtype_size(s.arrays[i].type));
    double t0 = rt_now();
    ckpt_reader_t *r;
    if (ckpt_open(path, &r) != RT_OK) {
        fprintf(stderr, "ckpt_driver: %s\n", rt_last_error());
        synth_free(&s);
        return 1;
    }
    int rc = 1;
    if (ckpt_expect_spec(r, o->spec) != RT_OK || ckpt_read_arrays(r, s.arrays, s.n) != RT_OK) {
        fprintf(stderr, "ckpt_driver: %s\n", rt_last_error());
        goto free_state;
    }
    double t1 = rt_now();
    const ckpt_meta_t *m = ckpt_reader_meta(r);
    int which = -1;
    int64_t k = synth_check(&s, m->step, &which);
    if (k >= 0) {
        fprintf(stderr, "ckpt_driver: %s element %" PRId64 " differs from step %" PRId64 "'s value\n",
                s.arrays[which].name, k, m->step);
        goto free_state;
    }
    printf("loaded step %" PRId64 " from %s seconds %.3f digest 0x%016" PRIx64 "\n", m->step, path, t1 - t0,
           ckpt_digest(m, s.arrays, s.n));
    rc = 0;
free_state:
    ckpt_close(r);
    synth_free(&s);
    return rc;
}

int main(int argc, char **argv)
{
    char spec[128];
    driver_opts o;
    if (argc >= 4 && !strcmp(argv[1], "write")) {
        if (opts_parse(argc, argv, 4, &o, spec, sizeof spec) != 0)
            return 2;
        return do_write(argv[2], atoll(argv[3]), &o);
    }
    if (argc >= 3 && !strcmp(argv[1], "load")) {
        if (opts_parse(argc, argv, 3, &o, spec, sizeof spec) != 0)
            return 2;
        return do_load(argv[2], &o);
    }
    if (argc == 3 && !strcmp(argv[1], "verify")) {
        ckpt_verify_info_t info;
        double t0 = rt_now();
        if (ckpt_verify(argv[2], &info) != RT_OK) {
            fprintf(stderr, "ckpt_driver: %s\n", rt_last_error());
            return 1;
        }
        printf("verified %s bytes %" PRId64 " seconds %.3f\n", argv[2], info.bytes, rt_now() - t0);
        return 0;
    }
    fprintf(stderr, "usage: ckpt_driver write DIR STEP [flags] | load DIR|FILE [flags] | verify FILE\n");
    return 2;
}
