/* launcher_reap.c - the launcher as its job's subreaper: processes of the
 * job that outlive mpirun (ranks whose mpirun was killed) become the
 * launcher's children, and the launcher kills them before it restarts the
 * job or exits. Without this a rank lives on until Open MPI's client
 * notices its daemon is gone (1 s after the socket closes with 4.1.4, more
 * on a loaded machine, never for a process outside Open MPI's control),
 * holding the checkpoint directory's lock that the restarted job needs. */
#define _DEFAULT_SOURCE /* kill, nanosleep */
#include "launch/launcher.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/timer.h"

bool launch_become_subreaper(void)
{
    return prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
}

/* Parent pid and state of a process from /proc/PID/stat (the fields after
 * the command name, which may hold ')' or spaces). */
static bool proc_parent(long pid, int *ppid, char *state)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close = strrchr(buf, ')');
    return close && sscanf(close + 1, " %c %d", state, ppid) == 2;
}

/* The pids killed so far, each once, for the count and the message. */
typedef struct {
    long pid[64];
    int n, more;
} killed_t;

static void killed_add(killed_t *k, long pid)
{
    for (int i = 0; i < k->n; i++)
        if (k->pid[i] == pid)
            return;
    if (k->n < (int)(sizeof k->pid / sizeof k->pid[0]))
        k->pid[k->n++] = pid;
    else
        k->more++;
}

/* SIGKILL to every live child (a killed one may show here again until it
 * has become a zombie). */
static void kill_children(killed_t *k)
{
    DIR *d = opendir("/proc");
    if (!d)
        return;
    const int self = (int)getpid();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        const long pid = strtol(e->d_name, NULL, 10);
        int ppid;
        char state;
        if (!proc_parent(pid, &ppid, &state) || ppid != self || state == 'Z')
            continue;
        if (kill((pid_t)pid, SIGKILL) == 0)
            killed_add(k, pid);
    }
    closedir(d);
}

static void killed_list(const killed_t *k, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < k->n && len + 24 < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%ld", i ? " " : "", k->pid[i]);
    if (k->more && len + 24 < cap)
        snprintf(out + len, cap - len, " and %d more", k->more);
}

int launch_kill_leftovers(double limit_s)
{
    killed_t k = {.n = 0, .more = 0};
    char list[512];
    const double t0 = rt_now();
    for (;;) {
        /* a killed rank's own children are re-parented to us in turn */
        kill_children(&k);
        pid_t w;
        while ((w = waitpid(-1, NULL, WNOHANG)) > 0)
            ;
        if (w < 0 && errno == ECHILD)
            break; /* no child left, not even a zombie */
        if (rt_now() - t0 > limit_s) {
            killed_list(&k, list, sizeof list);
            fprintf(stderr, "ringtrain launch: processes of the job still there %.0f s after "
                    "SIGKILL (pids %s); going on\n", limit_s, list);
            break;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    const int killed = k.n + k.more;
    if (killed) {
        killed_list(&k, list, sizeof list);
        fprintf(stderr, "ringtrain launch: %d process%s of the job outlived mpirun (pid%s %s): "
                "killed\n", killed, killed == 1 ? "" : "es", killed == 1 ? "" : "s", list);
    }
    return killed;
}
