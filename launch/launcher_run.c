/* launcher_run.c - runs mpirun (fork + execvp, never a shell; it gets
 * SIGTERM if the launcher dies), relays its stderr while reading the
 * failure cause from it, forwards SIGINT/SIGTERM, and restarts a failed job
 * from its newest checkpoint once every process of the old run is gone
 * (launcher_reap.c). */
#define _DEFAULT_SOURCE /* kill, setpgid, sigaction, sigprocmask */
#include "launch/launcher.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/check.h"
#include "common/timer.h"

static volatile sig_atomic_t g_child = 0;
static volatile sig_atomic_t g_stop_signal = 0;

/* First SIGINT/SIGTERM: forwarded to mpirun, which passes SIGTERM to the
 * ranks and SIGKILLs them after the grace period. A second one: SIGKILL. */
static void on_stop_signal(int sig)
{
    pid_t child = (pid_t)g_child;
    if (g_stop_signal == 0) {
        g_stop_signal = sig;
        if (child > 0)
            kill(child, sig);
    } else if (child > 0) {
        kill(-child, SIGKILL); /* mpirun's process group, ranks left behind included */
        kill(child, SIGKILL);
    }
}

static int parse_rank_after(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    if (!p)
        return -1;
    p += strlen(key);
    if (*p < '0' || *p > '9')
        return -1;
    return atoi(p);
}

/* Length of an output tag "[J,R]<stderr>:" or "[J,R]<stdout>:" at p, else 0. */
static size_t tag_len(const char *p)
{
    const char *q = p;
    if (*q++ != '[')
        return 0;
    for (int part = 0; part < 2; part++) {
        if (*q < '0' || *q > '9')
            return 0;
        while (*q >= '0' && *q <= '9')
            q++;
        if (*q++ != (part == 0 ? ',' : ']'))
            return 0;
    }
    if (!strncmp(q, "<stderr>:", 9) || !strncmp(q, "<stdout>:", 9))
        return (size_t)(q + 9 - p);
    return 0;
}

/* Copies text without the tags that mpirun inserts where a rank wrote one
 * line in several pieces ("...arrived[1,2]<stderr>:"). */
static void set_cause(launch_result_t *res, const char *text)
{
    size_t o = 0;
    for (const char *p = text; *p && o < sizeof res->cause - 1;) {
        size_t t = tag_len(p);
        if (t) {
            p += t;
            continue;
        }
        res->cause[o++] = *p++;
    }
    res->cause[o] = '\0';
}

void launch_cause_scan_line(const char *line, launch_result_t *res)
{
    int r;
    /* mpirun: "mpirun noticed that process rank 1 with PID 0 on node vm exited
     * on signal 9 (Killed)." - the most precise statement: always wins. */
    if ((r = parse_rank_after(line, "noticed that process rank ")) >= 0) {
        const char *on = strstr(line, " exited on signal ");
        char buf[256];
        if (on)
            snprintf(buf, sizeof buf, "rank %d%.200s", r, on);
        else
            snprintf(buf, sizeof buf, "rank %d failed: %.200s", r, line);
        size_t n = strlen(buf);
        while (n && (buf[n - 1] == '.' || buf[n - 1] == '\n'))
            buf[--n] = '\0';
        res->failed_rank = r;
        set_cause(res, buf);
        return;
    }
    if (res->failed_rank < 0 && (r = parse_rank_after(line, "MPI_ABORT was invoked on rank ")) >= 0) {
        res->failed_rank = r;
        if (!res->cause[0]) {
            char buf[64];
            snprintf(buf, sizeof buf, "rank %d called MPI_Abort", r);
            set_cause(res, buf);
        }
        return;
    }
    /* "Process name: [[20393,1],1]" in mpirun's non-zero-exit report */
    const char *pn = strstr(line, "Process name: [[");
    if (res->failed_rank < 0 && pn) {
        const char *close = strstr(pn, "],");
        if (close && close[2] >= '0' && close[2] <= '9')
            res->failed_rank = atoi(close + 2);
        return;
    }
    /* The first failure line of a rank: a log line with " ERROR: " or a
     * command's final report "ringtrain train: ...", tagged "[1,3]<stderr>:"
     * by --tag-output. */
    const char *text = strstr(line, "<stderr>:");
    text = text ? text + 9 : line;
    bool is_error = strstr(text, " ERROR: ") != NULL ||
                    (!strncmp(text, "ringtrain ", 10) && strstr(text + 10, ": ") != NULL);
    if (is_error && !res->rank_said) {
        int tagged = -1;
        if (line[0] == '[') {
            const char *comma = strchr(line, ',');
            if (comma && comma[1] >= '0' && comma[1] <= '9')
                tagged = atoi(comma + 1);
        }
        char buf[512];
        if (res->cause[0]) /* keep mpirun's statement first, add the rank's own words */
            snprintf(buf, sizeof buf, "%.200s; first error: %.290s", res->cause, text);
        else
            snprintf(buf, sizeof buf, "%.500s", text);
        set_cause(res, buf);
        res->rank_said = true;
        if (res->failed_rank < 0)
            res->failed_rank = tagged;
    }
}

void launch_result_describe(const launch_result_t *res, char *out, int size)
{
    char how[96];
    if (res->exec_failed)
        snprintf(how, sizeof how, "mpirun could not be started");
    else if (res->signaled)
        snprintf(how, sizeof how, "mpirun killed by signal %d", res->code);
    else
        snprintf(how, sizeof how, "mpirun exit %d", res->code);
    if (res->cause[0])
        snprintf(out, (size_t)size, "%s (%s)", res->cause, how);
    else if (res->failed_rank >= 0)
        snprintf(out, (size_t)size, "rank %d failed (%s)", res->failed_rank, how);
    else
        snprintf(out, (size_t)size, "%s; no rank said why", how);
}

static void child_exec(const launch_argv_t *a, int err_fd, int report_fd, pid_t launcher)
{
    /* mpirun dies with the launcher: a launcher killed with SIGKILL (an OOM
     * kill, a scheduler's) cannot forward anything, and an orphaned mpirun
     * would keep its ranks running and the checkpoint directory locked.
     * SIGTERM gives mpirun its usual stop sequence (ranks write a final
     * checkpoint). The setting survives exec; if the launcher died before
     * it was made, the child is already orphaned and must not start. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != launcher)
        _exit(128 + SIGTERM);
    setpgid(0, 0); /* our own group: a terminal's ^C reaches mpirun once, through us */
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) {
        dup2(null_fd, STDIN_FILENO);
        close(null_fd);
    }
    dup2(err_fd, STDERR_FILENO);
    close(err_fd);
    execvp(a->argv[0], a->argv);
    int e = errno;
    if (write(report_fd, &e, sizeof e) < 0) {
        /* nothing more to do: the parent sees exit 127 */
    }
    _exit(127);
}

/* Relays and scans one chunk; keeps a partial line in line/len. */
static void relay_chunk(const char *buf, ssize_t n, char *line, size_t *len, size_t cap,
                        launch_result_t *res)
{
    size_t off = 0;
    while (off < (size_t)n) {
        ssize_t w = write(STDERR_FILENO, buf + off, (size_t)n - off);
        if (w <= 0 && errno != EINTR)
            break;
        if (w > 0)
            off += (size_t)w;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n' || *len == cap - 1) {
            line[*len] = '\0';
            launch_cause_scan_line(line, res);
            *len = 0;
        }
        if (buf[i] != '\n')
            line[(*len)++] = buf[i];
    }
}

rt_status launch_run_once(const launch_argv_t *a, double stop_kill_s, launch_result_t *res)
{
    memset(res, 0, sizeof *res);
    res->failed_rank = -1;
    int errp[2], rep[2];
    if (pipe(errp) < 0)
        return rt_fail(RT_ERR_IO, "pipe: %s", strerror(errno));
    if (pipe(rep) < 0) {
        int e = errno;
        close(errp[0]);
        close(errp[1]);
        return rt_fail(RT_ERR_IO, "pipe: %s", strerror(e));
    }
    /* the child must not keep the read ends; rep's write end closes on exec */
    fcntl(errp[0], F_SETFD, FD_CLOEXEC);
    fcntl(rep[0], F_SETFD, FD_CLOEXEC);
    fcntl(rep[1], F_SETFD, FD_CLOEXEC);
    /* SIGINT/SIGTERM wait until g_child names the child, so that none is lost
     * between fork and exec */
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, &old);
    const pid_t self = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        sigprocmask(SIG_SETMASK, &old, NULL);
        close(errp[0]); close(errp[1]); close(rep[0]); close(rep[1]);
        return rt_fail(RT_ERR_IO, "fork: %s", strerror(e));
    }
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        close(rep[0]);
        child_exec(a, errp[1], rep[1], self);
    }
    setpgid(pid, pid); /* also here, so that the group exists before any kill */
    g_child = pid;
    if (g_stop_signal) /* a signal that arrived before this run started */
        kill(pid, (int)g_stop_signal);
    sigprocmask(SIG_SETMASK, &old, NULL); /* pending signals reach on_stop_signal now */
    close(errp[1]);
    close(rep[1]);
    int exec_errno = 0;
    ssize_t rn;
    do
        rn = read(rep[0], &exec_errno, sizeof exec_errno);
    while (rn < 0 && errno == EINTR);
    close(rep[0]);
    if (rn == (ssize_t)sizeof exec_errno) {
        res->exec_failed = true;
        res->code = 127;
        snprintf(res->cause, sizeof res->cause, "cannot execute %s: %s", a->argv[0],
                 strerror(exec_errno));
    }

    char line[1024], buf[4096];
    size_t len = 0;
    int status = 0;
    bool reaped = false, eof = false;
    double reaped_at = 0, stop_at = 0;
    bool escalated = false;
    /* Relay until mpirun has exited and its stderr is drained; a daemon that
     * keeps the pipe open (an rsh agent) gets 2 s after mpirun's exit. */
    while (!(reaped && (eof || rt_now() - reaped_at > 2.0))) {
        if (!eof) {
            struct pollfd pfd = {.fd = errp[0], .events = POLLIN};
            int pr = poll(&pfd, 1, 200);
            if (pr > 0) {
                ssize_t n = read(errp[0], buf, sizeof buf);
                if (n > 0)
                    relay_chunk(buf, n, line, &len, sizeof line, res);
                else if (n == 0 || (errno != EINTR && errno != EAGAIN))
                    eof = true;
            }
        } else if (!reaped) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (!reaped && g_stop_signal && stop_kill_s > 0 && !escalated) {
            if (stop_at == 0)
                stop_at = rt_now();
            else if (rt_now() - stop_at > stop_kill_s) {
                fprintf(stderr, "ringtrain launch: mpirun still running %.0f s after signal "
                        "%d: sending SIGKILL\n", stop_kill_s, (int)g_stop_signal);
                kill(-pid, SIGKILL);
                kill(pid, SIGKILL);
                escalated = true;
            }
        }
        if (!reaped) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid) {
                reaped = true;
                reaped_at = rt_now();
            }
        }
    }
    if (len) {
        line[len] = '\0';
        launch_cause_scan_line(line, res);
    }
    close(errp[0]);
    g_child = 0;
    if (!res->exec_failed) {
        if (WIFSIGNALED(status)) {
            res->signaled = true;
            res->code = WTERMSIG(status);
        } else {
            res->code = WEXITSTATUS(status);
        }
    }
    res->stop_signal = (int)g_stop_signal;
    return RT_OK;
}

static void install_handlers(struct sigaction *old_int, struct sigaction *old_term)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, old_int);
    sigaction(SIGTERM, &sa, old_term);
}

int launch_run(launch_plan_t *plan, int max_restarts, const char *ckpt_dir, bool dry_run)
{
    launch_argv_t a;
    if (launch_argv_build(plan, &a) != RT_OK) {
        fprintf(stderr, "ringtrain launch: %s\n", rt_last_error());
        return LAUNCH_EXIT_FAILED;
    }
    char *text = launch_argv_render(&a);
    if (dry_run) {
        printf("%s\n", text ? text : "(out of memory)");
        free(text);
        launch_argv_free(&a);
        return LAUNCH_EXIT_OK;
    }
    /* Ranks inherit this: nothing the job creates is group- or world-writable
     * unless the user's umask already was stricter. */
    mode_t old = umask(0);
    umask(old | 022);

    /* ranks that outlive a killed mpirun become our children: killed below
     * before a restart (they hold the checkpoint directory's lock) */
    if (!launch_become_subreaper())
        fprintf(stderr, "ringtrain launch: cannot become the job's subreaper (%s); ranks "
                "of a killed mpirun are left to Open MPI\n", strerror(errno));
    struct sigaction old_int, old_term;
    g_stop_signal = 0;
    install_handlers(&old_int, &old_term);
    int rc = LAUNCH_EXIT_FAILED;
    for (int attempt = 0;; attempt++) {
        fprintf(stderr, "ringtrain launch: running: %s\n", text ? text : a.argv[0]);
        fflush(stderr);
        launch_result_t res;
        double t0 = rt_now();
        /* mpirun's stop sequence takes up to 2 x grace; 5 s more for its own exit */
        if (launch_run_once(&a, 2.0 * plan->grace_s + 5.0, &res) != RT_OK) {
            fprintf(stderr, "ringtrain launch: %s\n", rt_last_error());
            rc = LAUNCH_EXIT_FAILED;
            break;
        }
        launch_kill_leftovers(5.0);
        char what[700];
        launch_result_describe(&res, what, sizeof what);
        if (res.exec_failed) {
            fprintf(stderr, "ringtrain launch: %s\n", res.cause);
            rc = LAUNCH_EXIT_NO_MPIRUN;
            break;
        }
        if (!res.signaled && res.code == 0 && !res.stop_signal) {
            fprintf(stderr, "ringtrain launch: job finished (%.1f s%s)\n", rt_now() - t0,
                    attempt ? ", after restarts" : "");
            rc = LAUNCH_EXIT_OK;
            break;
        }
        if (res.stop_signal) {
            fprintf(stderr, "ringtrain launch: stopped by signal %d (%s); not restarting\n",
                    res.stop_signal, strsignal(res.stop_signal));
            rc = 128 + res.stop_signal;
            break;
        }
        if (!res.signaled && res.code == LAUNCH_EXIT_USAGE) {
            fprintf(stderr, "ringtrain launch: job failed with a usage error (exit 2); "
                    "not restarting: %s\n", what);
            rc = LAUNCH_EXIT_USAGE;
            break;
        }
        fprintf(stderr, "ringtrain launch: job failed: %s\n", what);
        if (attempt >= max_restarts) {
            if (max_restarts > 0)
                fprintf(stderr, "ringtrain launch: giving up after %d restart%s\n",
                        max_restarts, max_restarts == 1 ? "" : "s");
            rc = LAUNCH_EXIT_FAILED;
            break;
        }
        char newest[256] = "";
        char from[600];
        if (ckpt_dir && launch_ckpt_newest(ckpt_dir, newest, sizeof newest) != RT_OK)
            snprintf(from, sizeof from, "checkpoint unknown (%s)", rt_last_error());
        else if (newest[0])
            snprintf(from, sizeof from, "resuming from %s/%s", ckpt_dir, newest);
        else
            snprintf(from, sizeof from, "no checkpoint in %s yet: starting from step 0",
                     ckpt_dir ? ckpt_dir : "(no --ckpt-dir)");
        fprintf(stderr, "ringtrain launch: restart %d of %d after: %s; %s\n", attempt + 1,
                max_restarts, what, from);
        fflush(stderr);
        if (!plan->resume_auto) {
            plan->resume_auto = true;
            launch_argv_free(&a);
            free(text);
            if (launch_argv_build(plan, &a) != RT_OK) {
                fprintf(stderr, "ringtrain launch: %s\n", rt_last_error());
                text = NULL;
                rc = LAUNCH_EXIT_FAILED;
                break;
            }
            text = launch_argv_render(&a);
        }
        /* a short pause lets the old job's ports and files go */
        struct timespec ts = {1, 0};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !g_stop_signal)
            ;
        if (g_stop_signal) {
            rc = 128 + (int)g_stop_signal;
            fprintf(stderr, "ringtrain launch: stopped by signal %d before the restart\n",
                    (int)g_stop_signal);
            break;
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free(text);
    launch_argv_free(&a);
    return rc;
}
