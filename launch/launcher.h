/* launcher.h - `ringtrain launch`: builds the mpirun command line, runs it
 * without a shell, relays and reads its output to say which rank failed and
 * why, and restarts a failed job from its newest checkpoint.
 *
 * Split so that the decisions are pure functions with unit tests:
 * launcher_argv.c (the exact argv), launcher_ckpt.c (newest checkpoint in a
 * directory), launcher_run.c (fork/exec/wait, signal forwarding, causes,
 * the restart loop). */
#ifndef RT_LAUNCH_LAUNCHER_H
#define RT_LAUNCH_LAUNCHER_H

#include <stdbool.h>

#include "common/status.h"

/* Exit codes of `ringtrain launch` (docs/LAUNCH.md). */
enum {
    LAUNCH_EXIT_OK = 0,
    LAUNCH_EXIT_FAILED = 1,       /* the job failed and no restart was left */
    LAUNCH_EXIT_USAGE = 2,        /* bad launcher/train arguments or hostfile */
    LAUNCH_EXIT_NO_MPIRUN = 127,  /* mpirun could not be executed */
    /* 128+N: the launcher was stopped by signal N (forwarded to the job) */
};

/* Everything that decides the mpirun command line. */
typedef struct {
    const char *mpirun;               /* program, found on PATH by execvp */
    int np;                           /* ranks, >= 1 */
    const char *hostfile;             /* NULL: this host only */
    bool oversubscribe;
    int blas_threads;                 /* > 0: OMP/OPENBLAS_NUM_THREADS=k per rank */
    int grace_s;                      /* SIGTERM to SIGKILL, seconds (> 0) */
    const char *const *forward_env;   /* variable names passed with -x NAME */
    int n_forward_env;
    const char *const *mpirun_args;   /* --mpirun-arg values, in order */
    int n_mpirun_args;
    const char *ringtrain;            /* absolute path of the ringtrain binary */
    const char *const *job_args;      /* subcommand and its arguments: train ... */
    int n_job_args;
    bool resume_auto;                 /* restart: make the job resume (--resume auto) */
} launch_plan_t;

/* A NULL-terminated argv whose strings it owns. */
typedef struct {
    char **argv;
    int argc;
} launch_argv_t;

/* The exact argv for mpirun:
 *   MPIRUN -np N [--hostfile F] [--oversubscribe] --tag-output
 *          [--bind-to none] --mca odls_base_sigkill_timeout G
 *          -x NAME... [-x OMP_NUM_THREADS=k -x OPENBLAS_NUM_THREADS=k]
 *          MPIRUN_ARGS... RINGTRAIN JOB_ARGS... [--resume auto]
 * --bind-to none is left out when MPIRUN_ARGS choose a binding. With
 * resume_auto, an existing --resume value is replaced by auto, else
 * `--resume auto` is appended. */
rt_status launch_argv_build(const launch_plan_t *plan, launch_argv_t *out);
void launch_argv_free(launch_argv_t *a);

/* The argv as one line, each word quoted for a POSIX shell when it needs it
 * (for display and copy-paste only: the launcher itself never uses a shell).
 * Caller frees. */
char *launch_argv_render(const launch_argv_t *a);

/* Names of the environment variables the ranks need (sorted, no duplicates):
 * RT_* (but RT_MPIRUN), NCCL_*, OMPI_ALLOW_RUN_AS_ROOT, OMPI_ALLOW_RUN_AS_ROOT_CONFIRM,
 * OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, CUDA_VISIBLE_DEVICES (but not
 * inside a Slurm job, SLURM_JOB_ID set: Slurm sets it per node). envp is
 * "NAME=value" strings; names with characters outside [A-Za-z0-9_] are
 * skipped. Returns the count; out[] receives up to max pointers into storage
 * owned by the caller-provided buffer buf of size bufsize. */
int launch_env_select(char *const *envp, const char **out, int max, char *buf, int bufsize);

/* What the launcher needs to know about the job's own arguments. */
typedef struct {
    const char *resume;     /* value of --resume, NULL if absent */
    const char *ckpt_dir;   /* value of --ckpt-dir, NULL if absent */
} launch_job_info_t;

void launch_job_scan(int n, const char *const *args, launch_job_info_t *out);

/* The newest checkpoint file in dir: the largest step among names
 * "ckpt-<8 or more digits>.h5" (names starting with '.' are temporaries).
 * Writes its name (not the path) to name, or "" when there is none.
 * A missing directory is not an error (no checkpoint yet). */
rt_status launch_ckpt_newest(const char *dir, char *name, int size);

/* How one mpirun run ended. */
typedef struct {
    bool exec_failed;     /* mpirun could not be started */
    bool signaled;        /* mpirun was killed by a signal */
    int code;             /* exit code, or the signal number */
    int failed_rank;      /* from mpirun's or the ranks' messages; -1 unknown */
    char cause[512];      /* one line: what mpirun or the ranks said */
    int stop_signal;      /* SIGINT/SIGTERM the launcher received, else 0 */
    bool rank_said;       /* cause holds a rank's own failure line */
} launch_result_t;

/* Scans one line of mpirun's stderr for a failure cause and updates res:
 * "process rank N ... exited on signal S", "MPI_ABORT was invoked on rank N",
 * "Process name: [[J,S],N]", and the first failure line of a rank (tagged
 * "[J,N]<stderr>:" by --tag-output): a log line with " ERROR: " or a
 * command's report "ringtrain train: ...". */
void launch_cause_scan_line(const char *line, launch_result_t *res);

/* One-line description of a failed run ("rank 1 exited on signal 9 (Killed);
 * mpirun exit 137"). */
void launch_result_describe(const launch_result_t *res, char *out, int size);

/* Runs argv once (fork, PR_SET_PDEATHSIG(SIGTERM) so that it dies with the
 * launcher, setpgid, stdin from /dev/null, execvp), relays its
 * stderr to ours while scanning it, forwards SIGINT/SIGTERM (a second one
 * sends SIGKILL), and waits. When mpirun is still there stop_kill_s seconds
 * after a forwarded signal, its process group gets SIGKILL (stop_kill_s <= 0:
 * never). */
rt_status launch_run_once(const launch_argv_t *argv, double stop_kill_s, launch_result_t *res);

/* Makes the launcher the subreaper of its descendants
 * (PR_SET_CHILD_SUBREAPER): a process whose parent dies (a rank whose mpirun
 * was killed) becomes the launcher's child rather than init's. */
bool launch_become_subreaper(void);

/* After mpirun has exited and been reaped: SIGKILL to every remaining child
 * (processes of the job that outlived mpirun), reaping them, until none is
 * left or limit_s seconds have passed; names them on stderr. Returns how many
 * were killed. */
int launch_kill_leftovers(double limit_s);

/* The restart loop: runs the plan; a failure that is not a usage error
 * (exit 2), not an exec failure and not a stop by signal is started again
 * with resume_auto, up to max_restarts times, each restart logged on stderr
 * with its cause and the checkpoint it resumes from (ckpt_dir may be NULL).
 * Returns the process exit code (see the enum above). */
int launch_run(launch_plan_t *plan, int max_restarts, const char *ckpt_dir, bool dry_run);

#endif
