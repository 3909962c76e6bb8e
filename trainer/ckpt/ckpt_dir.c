/* ckpt_dir.c - the checkpoint directory: file names, choosing the newest
 * checkpoint that verifies (with reasons for the ones passed over), and
 * pruning what a run may delete (docs/CHECKPOINTS.md, "Pruning"). Only
 * names of ckpt_name.h's grammar count; temporary files (.ckpt-*.h5.tmp.<pid>) are never read as checkpoints. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
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

void ckpt_run_init(ckpt_run_t *run, int keep, int64_t history_step, ckpt_note_fn note, void *ctx)
{
    memset(run, 0, sizeof *run);
    run->keep = keep;
    run->history_step = history_step;
    run->note = note;
    run->note_ctx = ctx;
}

void ckpt_run_free(ckpt_run_t *run)
{
    if (!run)
        return;
    for (int i = 0; i < run->nnoted; i++)
        free(run->noted[i]);
    free(run->noted);
    free(run->own);
    memset(run, 0, sizeof *run);
}

static bool run_owns(const ckpt_run_t *run, int64_t step)
{
    for (int i = 0; i < run->nown; i++)
        if (run->own[i] == step)
            return true;
    return false;
}

/* Records a step the run wrote (ascending, no duplicates). */
rt_status ckpt_run_add_own(ckpt_run_t *run, int64_t step)
{
    if (run_owns(run, step))
        return RT_OK;
    if (run->nown == run->own_cap) {
        int cap = run->own_cap ? 2 * run->own_cap : 8;
        int64_t *n = realloc(run->own, (size_t)cap * sizeof *n);
        CHECK_ALLOC(n, (size_t)cap * sizeof *n);
        run->own = n;
        run->own_cap = cap;
    }
    int i = run->nown++;
    for (; i > 0 && run->own[i - 1] > step; i--)
        run->own[i] = run->own[i - 1];
    run->own[i] = step;
    return RT_OK;
}

static void run_drop_own(ckpt_run_t *run, int64_t step)
{
    int j = 0;
    for (int i = 0; i < run->nown; i++)
        if (run->own[i] != step)
            run->own[j++] = run->own[i];
    run->nown = j;
}

static bool run_noted(const ckpt_run_t *run, const char *name)
{
    for (int i = 0; i < run->nnoted; i++)
        if (!strcmp(run->noted[i], name))
            return true;
    return false;
}

/* The files a prune leaves alone for the first time, gathered into the one
 * line the run's note receives. */
typedef struct {
    char text[2048];
    size_t len;
    int count, listed;
} note_line;

#define NOTE_LIST_MAX 10

static rt_status note_add(ckpt_run_t *run, note_line *nl, const char *name, const char *why)
{
    if (run_noted(run, name))
        return RT_OK;
    if (run->nnoted == run->noted_cap) {
        int cap = run->noted_cap ? 2 * run->noted_cap : 8;
        char **n = realloc(run->noted, (size_t)cap * sizeof *n);
        CHECK_ALLOC(n, (size_t)cap * sizeof *n);
        run->noted = n;
        run->noted_cap = cap;
    }
    run->noted[run->nnoted] = strdup(name);
    CHECK_ALLOC(run->noted[run->nnoted], strlen(name) + 1);
    run->nnoted++;
    nl->count++;
    if (nl->listed < NOTE_LIST_MAX && nl->len < sizeof nl->text) {
        int n = snprintf(nl->text + nl->len, sizeof nl->text - nl->len, "%s%s (%s)",
                         nl->listed ? ", " : "", name, why);
        nl->len += n > 0 ? (size_t)n : 0;
        if (nl->len >= sizeof nl->text)
            nl->len = sizeof nl->text - 1;
        nl->listed++;
    }
    return RT_OK;
}

static void note_send(const ckpt_run_t *run, const note_line *nl, const char *dir)
{
    if (!run->note || nl->count == 0)
        return;
    char line[2600];
    snprintf(line, sizeof line, "prune: left %d checkpoint%s in %s alone (not this run's to delete; "
             "remove %s by hand when no longer needed): %s%s", nl->count, nl->count == 1 ? "" : "s",
             dir, nl->count == 1 ? "it" : "them", nl->text,
             nl->count > nl->listed ? ", and more" : "");
    run->note(run->note_ctx, line);
}

/* Whether the run's own newest checkpoint is still in place and complete:
 * it opens (HDF5 refuses a file shorter than its recorded end), its
 * metadata checksum holds and its step is the one written. The data's
 * checksums were computed from memory as it was written; reading them back
 * at every checkpoint would cost as much as the write itself. */
static bool own_intact(const char *path, int64_t step, char *why, size_t len)
{
    ckpt_meta_t m;
    if (ckpt_read_meta(path, &m) != RT_OK) {
        snprintf(why, len, "is not complete: %.160s", rt_last_error());
        rt_clear_error();
        return false;
    }
    bool ok = m.step == step;
    if (!ok)
        snprintf(why, len, "has step attribute %" PRId64, m.step);
    ckpt_meta_free(&m);
    return ok;
}

/* Whether path verifies as the checkpoint of step; why receives the reason
 * when it does not. */
static bool verifies(const char *path, int64_t step, char *why, size_t len)
{
    ckpt_verify_info_t info;
    rt_status st = ckpt_verify(path, &info);
    if (st == RT_OK && info.step == step)
        return true;
    if (st == RT_OK)
        snprintf(why, len, "does not verify: its step attribute is %" PRId64, info.step);
    else
        snprintf(why, len, "does not verify: %.160s", rt_last_error());
    rt_clear_error();
    return false;
}

/* Whether name is the one the writer gives step (ckpt_path_for_step): a
 * "ckpt-000000010.h5" beside the run's ckpt-00000010.h5 is not the run's. */
static bool written_name(const char *name, int64_t step)
{
    char mine[64];
    snprintf(mine, sizeof mine, "ckpt-%08" PRId64 ".h5", step);
    return strcmp(name, mine) == 0;
}

rt_status ckpt_prune(const char *dir, ckpt_run_t *run, int *removed)
{
    CHECK_ARG(dir && run, "ckpt_prune: no directory or run");
    if (removed)
        *removed = 0;
    dir_listing l;
    int missing;
    TRY(listing_read(dir, &l, &missing));
    if (missing)
        return RT_OK;
    rt_status st = RT_OK;
    char path[CKPT_PATH_MAX], why[256];
    /* the run's own checkpoints that someone else removed are no longer its */
    for (int i = 0; i < run->nown;) {
        bool present = false;
        for (int j = 0; j < l.count && !present; j++)
            present = l.items[j].step == run->own[i] && written_name(l.items[j].name, run->own[i]);
        if (present)
            i++;
        else
            run_drop_own(run, run->own[i]);
    }
    if (run->keep > 0 && run->nown > 0) {
        const int64_t newest_own = run->own[run->nown - 1];
        note_line nl = {.len = 0};
        int kept = 0;          /* own and history checkpoints kept, newest first */
        int may_delete = -1;   /* unknown until the first deletion needs it */
        for (int i = 0; i < l.count; i++) {
            const int64_t step = l.items[i].step;
            const char *name = l.items[i].name;
            snprintf(path, sizeof path, "%s/%s", dir, name);
            const bool own = run_owns(run, step) && written_name(name, step);
            const bool history = !own && run->history_step >= 0 && step <= run->history_step;
            if (!own && !history) {
                TRY_GOTO(st, note_add(run, &nl, name, step > newest_own ? "a step above this run's newest"
                                                                        : "not written by this run"), done);
                continue;
            }
            if (kept < run->keep) {
                kept++;
                continue;
            }
            if (history && run_noted(run, name))
                continue;  /* judged before: it does not verify */
            if (history && !verifies(path, step, why, sizeof why)) {
                TRY_GOTO(st, note_add(run, &nl, name, why), done);
                continue;
            }
            /* Nothing goes unless the run's newest checkpoint is in place
             * and complete: otherwise the newest good checkpoint could be
             * the one deleted. */
            if (may_delete < 0) {
                char newest[CKPT_PATH_MAX];
                TRY_GOTO(st, ckpt_path_for_step(dir, newest_own, newest, sizeof newest), done);
                may_delete = own_intact(newest, newest_own, why, sizeof why);
                if (!may_delete && run->note) {
                    char line[CKPT_PATH_MAX + 320];
                    snprintf(line, sizeof line, "prune: deleting nothing: this run's newest checkpoint %s %s",
                             newest, why);
                    run->note(run->note_ctx, line);
                }
            }
            if (!may_delete)
                break;
            if (unlink(path) < 0 && errno != ENOENT) {
                st = rt_fail(RT_ERR_IO, "cannot remove old checkpoint %s: %s", path, strerror(errno));
                goto done;
            }
            if (own)
                run_drop_own(run, step);
            if (removed)
                (*removed)++;
        }
        note_send(run, &nl, dir);
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
