/* ckpt_lock.c - exclusive lock on a checkpoint directory (see ckpt_lock.h). */
#define _DEFAULT_SOURCE /* flock, gethostname */
#include "cluster/ckpt_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/check.h"

rt_status ckpt_dir_lock(const char *dir, int *fd_out)
{
    *fd_out = -1;
    CHECK_ARG(dir && *dir, "ckpt_dir_lock: empty directory name");
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return rt_fail(RT_ERR_IO, "cannot create checkpoint directory %s: %s", dir,
                       strerror(errno));
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/.lock", dir) >= (int)sizeof path)
        return rt_fail(RT_ERR_INVALID, "checkpoint directory name too long: %s", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return rt_fail(RT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        char holder[256] = "";
        ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
        close(fd);
        if (e != EWOULDBLOCK)
            return rt_fail(RT_ERR_IO, "cannot lock %s: %s", path, strerror(e));
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        return rt_fail(RT_ERR_USAGE, "checkpoint directory %s is in use by %s (%s); "
                       "wait for that job or use another --ckpt-dir", dir,
                       holder[0] ? holder : "another process", path);
    }
    char host[256] = "?";
    if (gethostname(host, sizeof host - 1) < 0)
        strcpy(host, "?");
    host[sizeof host - 1] = '\0';
    char text[320];
    int len = snprintf(text, sizeof text, "pid %ld on host %s\n", (long)getpid(), host);
    if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)len, 0) != len) {
        int e = errno;
        close(fd);
        return rt_fail(RT_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    *fd_out = fd;
    return RT_OK;
}

void ckpt_dir_unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}
