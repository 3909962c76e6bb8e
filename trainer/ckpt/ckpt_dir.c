/* ckpt_dir.c - the checkpoint directory: file names, choosing the newest
 * checkpoint that verifies (with reasons for the ones passed over), and
 * pruning to the newest N. Only names of ckpt_name.h's grammar count;
 * temporary files (.ckpt-*.h5.tmp.<pid>) are never read as checkpoints. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/check.h"
#include "trainer/ckpt/ckpt_internal.h"

#define CKPT_PATH_MAX 4096

/* The pid of a temporary file ".ckpt-<step>.h5.tmp.<pid>", or 0. */
static long tmp_name_pid(const char *base)
{
    if (strncmp(base, ".ckpt-", 6) != 0)
        return 0;
    const char *t = strstr(base, ".h5.tmp.");
    if (!t)
        return 0;
    char *end;
    long pid = strtol(t + 8, &end, 10);
    return (*end == '\0' && pid > 0) ? pid : 0;
}

typedef struct {
    int64_t step;
    char *name;
} ckpt_entry;

typedef struct {
    ckpt_entry *items;
    int count;
    char **tmps; /* temporary files, for reporting and pruning */
    int ntmp;
} dir_listing;

static void listing_free(dir_listing *l)
{
    for (int i = 0; i < l->count; i++)
        free(l->items[i].name);
    for (int i = 0; i < l->ntmp; i++)
        free(l->tmps[i]);
    free(l->items);
    free(l->tmps);
    memset(l, 0, sizeof *l);
}

static int entry_newest_first(const void *a, const void *b)
{
    int64_t sa = ((const ckpt_entry *)a)->step, sb = ((const ckpt_entry *)b)->step;
    return (sa < sb) - (sa > sb);
}

/* Lists dir; *missing is set when dir does not exist. */
static rt_status listing_read(const char *dir, dir_listing *l, int *missing)
{
    memset(l, 0, sizeof *l);
    *missing = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) {
            *missing = 1;
            return RT_OK;
        }
        return rt_fail(RT_ERR_IO, "cannot list checkpoint directory %s: %s", dir, strerror(errno));
    }
    int cap = 0, tcap = 0;
    rt_status st = RT_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t step;
        if (ckpt_name_parse(e->d_name, &step)) {
            if (l->count == cap) {
                cap = cap ? 2 * cap : 16;
                ckpt_entry *n = realloc(l->items, (size_t)cap * sizeof *n);
                if (!n)
                    goto nomem;
                l->items = n;
            }
            l->items[l->count].step = step;
            l->items[l->count].name = strdup(e->d_name);
            if (!l->items[l->count].name)
                goto nomem;
            l->count++;
        } else if (tmp_name_pid(e->d_name)) {
            if (l->ntmp == tcap) {
                tcap = tcap ? 2 * tcap : 4;
                char **n = realloc(l->tmps, (size_t)tcap * sizeof *n);
                if (!n)
                    goto nomem;
                l->tmps = n;
            }
            l->tmps[l->ntmp] = strdup(e->d_name);
            if (!l->tmps[l->ntmp])
                goto nomem;
            l->ntmp++;
        }
    }
    closedir(d);
    if (l->count > 1)  /* qsort(NULL, 0, ...) is undefined (UBSan) */
        qsort(l->items, (size_t)l->count, sizeof *l->items, entry_newest_first);
    return RT_OK;
nomem:
    closedir(d);
    listing_free(l);
    st = rt_fail(RT_ERR_NOMEM, "out of memory listing %s", dir);
    return st;
}

rt_status ckpt_find_latest(const char *dir, char *path_out, size_t path_len, int64_t *step_out,
                           ckpt_skip_fn skip, void *ctx)
{
    CHECK_ARG(dir && path_out && path_len > 0, "ckpt_find_latest: no directory or output buffer");
    path_out[0] = '\0';
    dir_listing l;
    int missing;
    TRY(listing_read(dir, &l, &missing));
    if (missing)
        return RT_OK;
    char path[CKPT_PATH_MAX];
    for (int i = 0; i < l.ntmp && skip; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, l.tmps[i]);
        skip(ctx, path, "unfinished write (temporary file), never a checkpoint");
    }
    rt_status st = RT_OK;
    for (int i = 0; i < l.count; i++) {
        int n = snprintf(path, sizeof path, "%s/%s", dir, l.items[i].name);
        if (n < 0 || (size_t)n >= sizeof path) {
            st = rt_fail(RT_ERR_INVALID, "checkpoint path in %s is too long", dir);
            break;
        }
        ckpt_verify_info_t info;
        rt_status vst = ckpt_verify(path, &info);
        char reason[1100];
        if (vst == RT_OK && info.step != l.items[i].step) {
            snprintf(reason, sizeof reason, "its step attribute is %" PRId64 " but its name says %" PRId64,
                     info.step, l.items[i].step);
        } else if (vst == RT_OK) {
            if ((size_t)n >= path_len) {
                st = rt_fail(RT_ERR_INVALID, "ckpt_find_latest: path buffer of %zu bytes too small", path_len);
                break;
            }
            memcpy(path_out, path, (size_t)n + 1);
            if (step_out)
                *step_out = l.items[i].step;
            break;
        } else {
            snprintf(reason, sizeof reason, "%s", rt_last_error());
        }
        if (skip)
            skip(ctx, path, reason);
    }
    rt_clear_error();
    listing_free(&l);
    return st;
}

rt_status ckpt_prune(const char *dir, int keep, int *removed)
{
    CHECK_ARG(dir, "ckpt_prune: no directory");
    if (removed)
        *removed = 0;
    dir_listing l;
    int missing;
    TRY(listing_read(dir, &l, &missing));
    if (missing)
        return RT_OK;
    rt_status st = RT_OK;
    char path[CKPT_PATH_MAX];
    for (int i = keep > 0 ? keep : l.count; i < l.count; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, l.items[i].name);
        if (unlink(path) < 0 && errno != ENOENT) {
            st = rt_fail(RT_ERR_IO, "cannot remove old checkpoint %s: %s", path, strerror(errno));
            goto done;
        }
        if (removed)
            (*removed)++;
    }
    /* A temporary file whose writer is gone on this host is garbage. */
    for (int i = 0; i < l.ntmp; i++) {
        long pid = tmp_name_pid(l.tmps[i]);
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, l.tmps[i]);
        if (unlink(path) == 0 && removed)
            (*removed)++;
    }
done:
    listing_free(&l);
    return st;
}
