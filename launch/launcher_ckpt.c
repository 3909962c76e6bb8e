/* launcher_ckpt.c - the newest checkpoint in a directory (by the file-name
 * grammar of trainer/ckpt/ckpt_name.h), named in the restart log. The
 * trainer verifies checkpoints when it resumes (and says if it falls back to
 * an older one); the launcher only reports the newest name. */
#include "launch/launcher.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/check.h"
#include "trainer/ckpt/ckpt_name.h"

rt_status launch_ckpt_newest(const char *dir, char *name, int size)
{
    name[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return RT_OK;
        return rt_fail(RT_ERR_IO, "cannot list checkpoint directory %s: %s", dir, strerror(errno));
    }
    int64_t best = -1, s = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (ckpt_name_parse(e->d_name, &s) && s > best && (int)strlen(e->d_name) < size) {
            best = s;
            snprintf(name, (size_t)size, "%s", e->d_name);
        }
    }
    closedir(d);
    return RT_OK;
}
