/* cmd_launch.c - `ringtrain launch [-np N] [--hostfile F] [--max-restarts N]
 * [--mpirun-arg A]... [--oversubscribe] [--grace S] [--dry-run] -- train ARGS`:
 * checks the request and the hostfile, then hands the run to launcher.h. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cluster/hostfile.h"
#include "common/args.h"
#include "common/check.h"
#include "common/status.h"
#include "launch/commands.h"
#include "launch/launcher.h"

extern char **environ;

static int usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Prints "ringtrain launch: <message>" and returns the usage exit code. */
static int launch_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int launch_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ringtrain launch: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return LAUNCH_EXIT_USAGE;
}

/* mpirun refuses a hostfile with CRLF line endings (a parse error on line
 * 1), which the launcher accepts: mpirun gets a copy without the carriage
 * returns, an in-memory file it opens as /proc/<launcher pid>/fd/<n>
 * (path_out; the launcher holds it open, and nothing is left behind
 * however the launcher ends). A dry run only says so and prints the
 * user's file. */
static rt_status hostfile_copy_for_mpirun(const char *hostfile, bool dry_run, char *path_out,
                                          size_t len)
{
    path_out[0] = '\0';
    if (dry_run) {
        fprintf(stderr, "ringtrain launch: %s has CRLF line endings, which mpirun refuses; a run "
                "gives it a copy without them\n", hostfile);
        return RT_OK;
    }
    int fd = memfd_create("ringtrain-hostfile", MFD_CLOEXEC);
    if (fd < 0)
        return rt_fail(RT_ERR_IO, "%s has CRLF line endings, which mpirun refuses, and no copy "
                       "without them could be made (memfd_create: %s)", hostfile, strerror(errno));
    TRY(hostfile_write_lf(hostfile, fd));
    snprintf(path_out, len, "/proc/%ld/fd/%d", (long)getpid(), fd);
    fprintf(stderr, "ringtrain launch: %s has CRLF line endings, which mpirun refuses; it reads a "
            "copy without them (%s)\n", hostfile, path_out);
    return RT_OK;
}

int cmd_launch(int argc, char **argv)
{
    /* Split at "--": launcher flags before, the job after. */
    int split = -1;
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--")) {
            split = i;
            break;
        }
    int nflags = split < 0 ? argc : split;
    /* -np (Open MPI's spelling) and -n are accepted for --np. */
    char **flags = calloc((size_t)nflags + 1, sizeof *flags);
    if (!flags)
        return cmd_report("launch", rt_fail(RT_ERR_NOMEM, "out of memory"));
    for (int i = 0; i < nflags; i++)
        flags[i] = (!strcmp(argv[i], "-np") || !strcmp(argv[i], "-n")) ? "--np" : argv[i];

    int np = 0, max_restarts = 0, grace = 3;
    const char *hostfile = NULL;
    bool dry_run = false, oversubscribe = false;
    arg_list_t mpirun_args = {0};
    arg_spec specs[] = {
        {"np", ARG_INT, &np, "N", "ranks to start (default: the hostfile's slots); also -np", false, false},
        {"hostfile", ARG_STRING, &hostfile, "F", "Open MPI hostfile (host slots=N [max_slots=M])", false, false},
        {"max-restarts", ARG_INT, &max_restarts, "N", "restart a failed job up to N times with --resume auto (default 0)", false, false},
        {"mpirun-arg", ARG_LIST, &mpirun_args, "A", "pass A to mpirun (repeatable; one argv word each)", false, false},
        {"oversubscribe", ARG_FLAG, &oversubscribe, NULL, "allow more ranks than slots", false, false},
        {"grace", ARG_INT, &grace, "S", "seconds mpirun waits before SIGTERM and again before SIGKILL when stopping ranks (default 3)", false, false},
        {"dry-run", ARG_FLAG, &dry_run, NULL, "print the mpirun command and exit", false, false},
    };
    arg_command cmd = {
        .prog = "ringtrain launch",
        .summary = "Run a ringtrain command on N ranks with mpirun (no shell), restarting a "
                   "failed training job from its newest checkpoint.\n"
                   "usage: ringtrain launch [-np N] [--hostfile F] [options] -- train ARGS...\n"
                   "exit codes: 0 done, 1 job failed (restarts used up), 2 usage error, "
                   "127 mpirun not found, 128+N stopped by signal N",
        .positional = NULL, .max_positional = 0,
    };
    rt_status st = args_parse(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), nflags, flags);
    free(flags);
    if (st != RT_OK)
        return cmd_report("launch", st);

    if (split < 0 || split + 1 >= argc)
        return launch_usage("no command to run: give it after --, e.g. "
                            "ringtrain launch -np 4 -- train --model ...");
    int njob = argc - split - 1;
    const char *const *job = (const char *const *)argv + split + 1;
    if (!strcmp(job[0], "launch"))
        return launch_usage("cannot launch 'launch' itself");
    if (max_restarts < 0)
        return launch_usage("--max-restarts must be >= 0");
    if (grace < 1 || grace > 3600)
        return launch_usage("--grace must be between 1 and 3600 seconds");
    launch_job_info_t info;
    launch_job_scan(njob - 1, job + 1, &info);
    if (max_restarts > 0) {
        if (strcmp(job[0], "train") != 0)
            return launch_usage("--max-restarts applies to 'train' only, not '%s'", job[0]);
        if (info.resume && !strcmp(info.resume, "never"))
            return launch_usage("--max-restarts %d with --resume never: a restart could not "
                                "resume, it would start over; drop one of them", max_restarts);
        if (!info.ckpt_dir)
            return launch_usage("--max-restarts needs --ckpt-dir in the train arguments, so "
                                "that a restart can resume from a checkpoint");
    }

    hostfile_t hf = {0};
    int cpus = usable_cpus();
    static char hostfile_lf[64];
    if (hostfile) {
        if (hostfile_load(hostfile, &hf) != RT_OK)
            return cmd_report("launch", RT_ERR_USAGE);
        if (np == 0)
            np = hf.total_slots;
        st = hostfile_check_np(&hf, np, oversubscribe);
        bool crlf = hf.has_cr;
        hostfile_free(&hf);
        if (st != RT_OK)
            return cmd_report("launch", st);
        if (crlf && (st = hostfile_copy_for_mpirun(hostfile, dry_run, hostfile_lf, sizeof hostfile_lf)) != RT_OK)
            return cmd_report("launch", st);
        if (hostfile_lf[0])
            hostfile = hostfile_lf;
    } else {
        if (!specs[0].seen)
            return launch_usage("give -np N (ranks on this host) or --hostfile F");
        if (np < 1)
            return launch_usage("-np must be at least 1");
        if (np > cpus && !oversubscribe)
            return launch_usage("-np %d exceeds the %d slots (CPUs) of this host; pass "
                                "--oversubscribe to run more ranks than slots", np, cpus);
    }

    /* Environment the ranks need on other hosts (local ranks inherit it). */
    static const char *env_names[256];
    static char env_buf[16384];
    int nenv = launch_env_select(environ, env_names, 256, env_buf, sizeof env_buf);
    /* BLAS threads per rank: on this host, CPUs / ranks unless the user chose.
     * With a hostfile each rank's trainer uses its own node's CPUs / local
     * ranks (OMPI_COMM_WORLD_LOCAL_SIZE), which the launcher cannot know. */
    int blas = 0;
    if (!hostfile && !getenv("OMP_NUM_THREADS") && !getenv("OPENBLAS_NUM_THREADS"))
        blas = cpus / np > 0 ? cpus / np : 1;

    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return cmd_report("launch", rt_fail(RT_ERR_IO, "cannot find the ringtrain binary "
                                            "(/proc/self/exe)"));
    self[n] = '\0';
    const char *mpirun = getenv("RT_MPIRUN");
    launch_plan_t plan = {
        .mpirun = mpirun && *mpirun ? mpirun : "mpirun",
        .np = np,
        .hostfile = hostfile,
        .oversubscribe = oversubscribe,
        .blas_threads = blas,
        .grace_s = grace,
        .forward_env = env_names,
        .n_forward_env = nenv,
        .mpirun_args = mpirun_args.items,
        .n_mpirun_args = mpirun_args.count,
        .ringtrain = self,
        .job_args = job,
        .n_job_args = njob,
        .resume_auto = false,
    };
    return launch_run(&plan, max_restarts, info.ckpt_dir, dry_run);
}
