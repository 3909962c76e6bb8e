/* launcher_ckpt.c - the newest checkpoint in a directory, named in the
 * restart log. The trainer verifies checkpoints when it resumes (and says if
 * it falls back to an older one); the launcher only reports the newest name. */
#include "launch/launcher.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/check.h"

/* Step of a "ckpt-<8+ digits>.h5" name, or -1. */
static long long ckpt_step(const char *name)
{
    if (strncmp(name, "ckpt-", 5) != 0)
        return -1;
    const char *d = name + 5;
    size_t nd = 0;
    long long step = 0;
    while (isdigit((unsigned char)d[nd])) {
        if (nd >= 18)
            return -1;
        step = step * 10 + (d[nd] - '0');
        nd++;
    }
    if (nd < 8 || strcmp(d + nd, ".h5") != 0)
        return -1;
    return step;
}

rt_status launch_ckpt_newest(const char *dir, char *name, int size)
{
    name[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return RT_OK;
        return rt_fail(RT_ERR_IO, "cannot list checkpoint directory %s: %s", dir, strerror(errno));
    }
    long long best = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long long s = ckpt_step(e->d_name);
        if (s > best && (int)strlen(e->d_name) < size) {
            best = s;
            snprintf(name, (size_t)size, "%s", e->d_name);
        }
    }
    closedir(d);
    return RT_OK;
}
