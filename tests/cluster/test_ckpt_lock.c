/* test_ckpt_lock.c - two processes and one checkpoint directory: while a
 * child holds the lock the parent is refused with a message naming the
 * child's pid; after the child is killed with SIGKILL the lock is free. */
#define _DEFAULT_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster/ckpt_lock.h"
#include "test_util.h"

int main(void)
{
    char dir[] = "/tmp/rt_ckptlock_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char sub[256];
    snprintf(sub, sizeof sub, "%s/ckpt", dir); /* created by the lock */

    int ready[2];
    if (pipe(ready) < 0)
        return 1;
    pid_t child = fork();
    if (child == 0) {
        int fd;
        close(ready[0]);
        char ok = ckpt_dir_lock(sub, &fd) == RT_OK ? 'y' : 'n';
        if (write(ready[1], &ok, 1) != 1)
            _exit(3);
        for (;;)
            pause(); /* hold the lock until killed */
    }
    close(ready[1]);
    char ok = 0;
    EXPECT(read(ready[0], &ok, 1) == 1 && ok == 'y', "child could not take the lock");

    int fd = -1;
    rt_status st = ckpt_dir_lock(sub, &fd);
    EXPECT(st == RT_ERR_USAGE, "second job was not refused (status %d)", st);
    char want[64];
    snprintf(want, sizeof want, "pid %ld on host", (long)child);
    EXPECT(strstr(rt_last_error(), want) && strstr(rt_last_error(), sub),
           "refusal '%s' does not name holder '%s' and the directory", rt_last_error(), want);
    EXPECT(fd == -1, "fd set on refusal");

    char lockpath[300];
    snprintf(lockpath, sizeof lockpath, "%s/.lock", sub);
    struct stat sb;
    EXPECT(stat(lockpath, &sb) == 0 && !(sb.st_mode & S_IWOTH), "lock file world-writable");

    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    st = ckpt_dir_lock(sub, &fd);
    EXPECT(st == RT_OK, "lock not free after the holder died: %s", rt_last_error());
    /* a lock held by this process also refuses a second open in this process */
    int fd2 = -1;
    EXPECT(ckpt_dir_lock(sub, &fd2) == RT_ERR_USAGE, "same-process second lock accepted");
    snprintf(want, sizeof want, "pid %ld on host", (long)getpid());
    EXPECT(strstr(rt_last_error(), want) != NULL, "holder not named: %s", rt_last_error());
    ckpt_dir_unlock(fd);
    EXPECT(ckpt_dir_lock(sub, &fd2) == RT_OK, "lock not free after unlock: %s", rt_last_error());
    ckpt_dir_unlock(fd2);

    unlink(lockpath);
    rmdir(sub);
    rmdir(dir);
    return TEST_EXIT();
}
