/* import_paths.c - refusing an importer output that is one of its inputs
 * (see import_paths.h): the output is written under a temporary name and
 * renamed over its path, which would replace the input itself. */
/* X/Open 7 (POSIX 2008 with XSI): realpath, strdup */
#define _XOPEN_SOURCE 700
#include "data/import_paths.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* What identifies a file: device and inode when it exists, else the
 * canonical path it would get (empty when even its directory is missing:
 * then it matches nothing, and creating it fails later with the reason). */
typedef struct {
    bool exists;
    dev_t dev;
    ino_t ino;
    char canon[PATH_MAX];
} file_id_t;

static void canonical(const char *path, char *out)
{
    out[0] = '\0';
    char *d = strdup(path), *b = strdup(path);
    if (d && b) {
        char dir[PATH_MAX];
        const char *base = basename(b);
        /* "." and ".." name a directory, never a file an importer writes */
        if (realpath(dirname(d), dir) && strcmp(base, ".") && strcmp(base, "..")) {
            size_t nd = strlen(dir), nb = strlen(base);
            if (nd == 1)  /* the root: "/" + base */
                nd = 0;
            if (nd + 1 + nb < PATH_MAX) {
                memcpy(out, dir, nd);
                out[nd] = '/';
                memcpy(out + nd + 1, base, nb + 1);
            }
        }
    }
    free(d);
    free(b);
}

static void identify(const char *path, file_id_t *id)
{
    struct stat sb;
    /* stat follows symlinks: a link to an input is that input */
    id->exists = stat(path, &sb) == 0;
    if (id->exists) {
        id->dev = sb.st_dev;
        id->ino = sb.st_ino;
        if (!realpath(path, id->canon))
            id->canon[0] = '\0';
    } else {
        canonical(path, id->canon);
    }
}

static bool same_file(const file_id_t *a, const file_id_t *b)
{
    if (a->exists && b->exists)
        return a->dev == b->dev && a->ino == b->ino;
    /* one does not exist (yet): only the paths can tell */
    return a->canon[0] && !strcmp(a->canon, b->canon);
}

rt_status import_check_paths(const import_path_t *inputs, int ninputs,
                             const import_path_t *outputs, int noutputs)
{
    rt_status st = RT_OK;
    file_id_t *ids = malloc(sizeof *ids * (size_t)(ninputs + noutputs + 1));
    if (!ids)
        return rt_fail(RT_ERR_NOMEM, "checking the output paths");
    for (int i = 0; i < ninputs; i++)
        if (inputs[i].path)
            identify(inputs[i].path, &ids[i]);
    for (int o = 0; o < noutputs && st == RT_OK; o++) {
        const import_path_t *out = &outputs[o];
        if (!out->path)
            continue;
        file_id_t *oid = &ids[ninputs + o];
        identify(out->path, oid);
        for (int i = 0; i < ninputs && st == RT_OK; i++)
            if (inputs[i].path && same_file(oid, &ids[i]))
                st = rt_fail(RT_ERR_USAGE,
                             "%s: --%s names the same file as --%s %s (it would overwrite the "
                             "input)", out->path, out->flag, inputs[i].flag, inputs[i].path);
        for (int e = 0; e < o && st == RT_OK; e++)
            if (outputs[e].path && same_file(oid, &ids[ninputs + e]))
                st = rt_fail(RT_ERR_USAGE, "%s: --%s and --%s name the same file (%s)",
                             out->path, outputs[e].flag, out->flag, outputs[e].path);
    }
    free(ids);
    return st;
}

rt_status import_check_outputs(const char *const *inputs, int ninputs, const char *out_path,
                               const char *val_path)
{
    import_path_t *ins = malloc(sizeof *ins * (size_t)(ninputs > 0 ? ninputs : 1));
    if (!ins)
        return rt_fail(RT_ERR_NOMEM, "checking the output paths");
    for (int i = 0; i < ninputs; i++)
        ins[i] = (import_path_t){"input", inputs[i]};
    const import_path_t outs[] = {{"out", out_path}, {"val-out", val_path}};
    rt_status st = import_check_paths(ins, ninputs, outs, 2);
    free(ins);
    return st;
}
