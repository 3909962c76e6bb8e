/* test_launch_argv.c - the launcher's pure parts against hand-written
 * expectations: the exact mpirun argv for given plans (hostfile,
 * oversubscription, forwarded environment, BLAS threads, passthrough,
 * restart with --resume auto), the shell-quoted rendering, the environment
 * selection, the job-argument scan, the newest checkpoint in a directory,
 * and the failure causes read from mpirun's real messages. */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "launch/launcher.h"
#include "test_util.h"

static void expect_argv(const launch_plan_t *p, const char *const *want, const char *what)
{
    launch_argv_t a;
    rt_status st = launch_argv_build(p, &a);
    EXPECT(st == RT_OK, "%s: build failed: %s", what, rt_last_error());
    if (st != RT_OK)
        return;
    int n = 0;
    while (want[n])
        n++;
    EXPECT(a.argc == n, "%s: argc %d, want %d", what, a.argc, n);
    for (int i = 0; i < n && i < a.argc; i++)
        EXPECT(!strcmp(a.argv[i], want[i]), "%s: argv[%d] '%s', want '%s'", what, i, a.argv[i],
               want[i]);
    EXPECT(a.argv[a.argc] == NULL, "%s: argv not NULL-terminated", what);
    launch_argv_free(&a);
}

static void test_argv(void)
{
    const char *job[] = {"train", "--model", "mlp:4,8,2", "--ckpt-dir", "/tmp/c d"};
    const char *env[] = {"OMPI_ALLOW_RUN_AS_ROOT", "RT_TEST_HANG_AT_STEP"};
    launch_plan_t p = {
        .mpirun = "mpirun", .np = 4, .hostfile = NULL, .oversubscribe = true,
        .blas_threads = 1, .grace_s = 20, .forward_env = env, .n_forward_env = 2,
        .ringtrain = "/opt/rt/ringtrain", .job_args = job, .n_job_args = 5,
    };
    const char *w1[] = {"mpirun", "-np", "4", "--oversubscribe", "--tag-output", "--bind-to",
                        "none", "--mca", "odls_base_sigkill_timeout", "20",
                        "-x", "OMPI_ALLOW_RUN_AS_ROOT", "-x", "RT_TEST_HANG_AT_STEP",
                        "-x", "OMP_NUM_THREADS=1", "-x", "OPENBLAS_NUM_THREADS=1",
                        "/opt/rt/ringtrain", "train", "--model", "mlp:4,8,2", "--ckpt-dir",
                        "/tmp/c d", NULL};
    expect_argv(&p, w1, "local");

    /* hostfile, no BLAS threads, user binding and passthrough, restart */
    const char *margs[] = {"--bind-to", "core", "--mca", "btl_tcp_if_include", "10.77.0.0/24"};
    p.hostfile = "hosts; rm -rf /"; /* never interpreted: one argv word */
    p.oversubscribe = false;
    p.blas_threads = 0;
    p.n_forward_env = 0;
    p.mpirun_args = margs;
    p.n_mpirun_args = 5;
    p.resume_auto = true;
    p.grace_s = 5;
    const char *w2[] = {"mpirun", "-np", "4", "--hostfile", "hosts; rm -rf /", "--tag-output",
                        "--mca", "odls_base_sigkill_timeout", "5", "--bind-to", "core", "--mca",
                        "btl_tcp_if_include", "10.77.0.0/24", "/opt/rt/ringtrain", "train",
                        "--model", "mlp:4,8,2", "--ckpt-dir", "/tmp/c d", "--resume", "auto",
                        NULL};
    expect_argv(&p, w2, "hostfile+restart");

    /* an existing --resume value is replaced, in both spellings */
    const char *job2[] = {"train", "--resume", "/x/ckpt-00000001.h5", "--steps", "9"};
    p.job_args = job2;
    p.n_job_args = 5;
    p.n_mpirun_args = 0;
    const char *w3[] = {"mpirun", "-np", "4", "--hostfile", "hosts; rm -rf /", "--tag-output",
                        "--bind-to", "none", "--mca", "odls_base_sigkill_timeout", "5",
                        "/opt/rt/ringtrain", "train", "--resume", "auto", "--steps", "9", NULL};
    expect_argv(&p, w3, "replace --resume");
    const char *job3[] = {"train", "--resume=never", "--steps", "9"};
    p.job_args = job3;
    p.n_job_args = 4;
    expect_argv(&p, w3, "replace --resume=");
    p.resume_auto = false;
    const char *w4[] = {"mpirun", "-np", "4", "--hostfile", "hosts; rm -rf /", "--tag-output",
                        "--bind-to", "none", "--mca", "odls_base_sigkill_timeout", "5",
                        "/opt/rt/ringtrain", "train", "--resume=never", "--steps", "9", NULL};
    expect_argv(&p, w4, "first run keeps --resume");

    launch_argv_t a;
    p.np = 0;
    EXPECT(launch_argv_build(&p, &a) != RT_OK, "np 0 accepted");
}

static void test_render(void)
{
    char *v[] = {"mpirun", "-x", "A=1", "it's", "a b", "$(id)", "", NULL};
    launch_argv_t a = {v, 7};
    char *s = launch_argv_render(&a);
    EXPECT(s && !strcmp(s, "mpirun -x A=1 'it'\\''s' 'a b' '$(id)' ''"), "render: %s", s);
    free(s);
}

static void test_env(void)
{
    char *envp[] = {"PATH=/bin", "RT_X=1", "NCCL_DEBUG=INFO", "OMPI_ALLOW_RUN_AS_ROOT=1",
                    "OMPI_MCA_btl=tcp", "OMP_NUM_THREADS=3", "RT_=x", "RT_A=2", "RT_X=dup",
                    "RT-BAD=1", "HOME=/root", "CUDA_VISIBLE_DEVICES=0", "noequals", NULL};
    const char *out[16];
    char buf[256];
    int n = launch_env_select(envp, out, 16, buf, sizeof buf);
    const char *want[] = {"CUDA_VISIBLE_DEVICES", "NCCL_DEBUG", "OMPI_ALLOW_RUN_AS_ROOT",
                          "OMP_NUM_THREADS", "RT_A", "RT_X"};
    EXPECT(n == 6, "selected %d names, want 6", n);
    for (int i = 0; i < n && i < 6; i++)
        EXPECT(!strcmp(out[i], want[i]), "env[%d] '%s', want '%s'", i, out[i], want[i]);

    /* inside a Slurm job Slurm gives each node its own GPUs: the batch
     * shell's CUDA_VISIBLE_DEVICES (the first node's) is not forwarded */
    char *slurm[] = {"CUDA_VISIBLE_DEVICES=2,3", "SLURM_JOB_ID=41", "RT_A=1", NULL};
    n = launch_env_select(slurm, out, 16, buf, sizeof buf);
    EXPECT(n == 1 && !strcmp(out[0], "RT_A"), "in a Slurm job: %d names, first '%s'", n,
           n ? out[0] : "");
    char *empty_id[] = {"SLURM_JOB_ID=", "CUDA_VISIBLE_DEVICES=1", NULL};
    n = launch_env_select(empty_id, out, 16, buf, sizeof buf);
    EXPECT(n == 1 && !strcmp(out[0], "CUDA_VISIBLE_DEVICES"), "empty SLURM_JOB_ID: %d names", n);
}

static void test_scan(void)
{
    const char *a1[] = {"--model", "m", "--ckpt-dir=/c", "--resume", "never", "--", "--resume", "x"};
    launch_job_info_t info;
    launch_job_scan(8, a1, &info);
    EXPECT(info.ckpt_dir && !strcmp(info.ckpt_dir, "/c"), "ckpt_dir %s", info.ckpt_dir);
    EXPECT(info.resume && !strcmp(info.resume, "never"), "resume %s", info.resume);
    const char *a2[] = {"--resumed", "x", "--ckpt-dir"};
    launch_job_scan(3, a2, &info);
    EXPECT(!info.resume && !info.ckpt_dir, "prefix or dangling flag taken as a value");
}

static void touch(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f)
        fclose(f);
}

static void test_ckpt(void)
{
    char dir[] = "/tmp/rt_launchckpt_XXXXXX";
    if (!mkdtemp(dir))
        return;
    char name[256];
    EXPECT(launch_ckpt_newest(dir, name, sizeof name) == RT_OK && !name[0], "empty dir: '%s'", name);
    const char *files[] = {"ckpt-00000040.h5", "ckpt-00000120.h5", ".ckpt-00000999.h5.tmp",
                           "ckpt-00000999.h5.tmp", "ckpt-999.h5", "ckpt-0000012x.h5",
                           "ckpt-00000080.h5", "other.h5"};
    for (int i = 0; i < 8; i++)
        touch(dir, files[i]);
    EXPECT(launch_ckpt_newest(dir, name, sizeof name) == RT_OK &&
           !strcmp(name, "ckpt-00000120.h5"), "newest '%s', want ckpt-00000120.h5", name);
    touch(dir, "ckpt-100000000.h5"); /* 9 digits: a later step */
    EXPECT(launch_ckpt_newest(dir, name, sizeof name) == RT_OK &&
           !strcmp(name, "ckpt-100000000.h5"), "newest '%s', want the 9-digit step", name);
    char p[512];
    for (int i = 0; i < 8; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/ckpt-100000000.h5", dir);
    unlink(p);
    rmdir(dir);
    EXPECT(launch_ckpt_newest(dir, name, sizeof name) == RT_OK && !name[0],
           "missing dir is not 'no checkpoint'");
}

static void scan_all(const char *const *lines, launch_result_t *r)
{
    memset(r, 0, sizeof *r);
    r->failed_rank = -1;
    for (int i = 0; lines[i]; i++)
        launch_cause_scan_line(lines[i], r);
}

static void test_cause(void)
{
    launch_result_t r;
    /* what Open MPI 4.1 printed here for kill -9 of rank 1 */
    const char *kill9[] = {
        "--------------------------------------------------------------------------",
        "Primary job  terminated normally, but 1 process returned",
        "mpirun noticed that process rank 1 with PID 0 on node vm exited on signal 9 (Killed).",
        NULL};
    scan_all(kill9, &r);
    r.code = 137;
    EXPECT(r.failed_rank == 1, "kill -9: rank %d", r.failed_rank);
    char d[700];
    launch_result_describe(&r, d, sizeof d);
    EXPECT(!strcmp(d, "rank 1 exited on signal 9 (Killed) (mpirun exit 137)"), "describe: %s", d);

    /* a collective timeout: the rank's ERROR line, then MPI_Abort */
    const char *timeout[] = {
        "[1,0]<stdout>:step 3 loss 0.5",
        "[1,2]<stderr>:[r2/4 vm] ring.c:88 ERROR: allreduce timed out after 10 s waiting for rank 3",
        "[1,0]<stderr>:[r0/4 vm] ring.c:88 ERROR: allreduce timed out after 10 s waiting for rank 3",
        "MPI_ABORT was invoked on rank 2 in communicator MPI_COMM_WORLD",
        NULL};
    scan_all(timeout, &r);
    EXPECT(r.failed_rank == 2, "timeout: rank %d", r.failed_rank);
    EXPECT(!strcmp(r.cause, "[r2/4 vm] ring.c:88 ERROR: allreduce timed out after 10 s waiting "
                   "for rank 3"), "timeout cause: %s", r.cause);

    /* kill after an error line: mpirun's statement first, the error added */
    const char *both[] = {
        "[1,3]<stderr>:[r3/4 vm] x.c:1 ERROR: disk full",
        "mpirun noticed that process rank 3 with PID 7 on node h2 exited on signal 6 (Aborted).",
        NULL};
    scan_all(both, &r);
    EXPECT(r.failed_rank == 3 && !strcmp(r.cause, "rank 3 exited on signal 6 (Aborted)"),
           "both: %d %s", r.failed_rank, r.cause);

    /* the trainer's own report of a collective timeout (cmd_report format) */
    const char *report[] = {
        "[1,0]<stdout>:step 10 loss 0.5",
        "[1,2]<stderr>:ringtrain train: rank 2: allreduce #12 timed out after 3.0 s waiting for "
        "rank 1; rank 1 never arrived",
        "[1,0]<stderr>:ringtrain train: rank 0: allreduce #12 timed out",
        "MPI_ABORT was invoked on rank 2 in communicator MPI_COMM_WORLD",
        NULL};
    scan_all(report, &r);
    EXPECT(r.failed_rank == 2 && strstr(r.cause, "ringtrain train: rank 2: allreduce #12 timed "
                                        "out after 3.0 s waiting for rank 1; rank 1 never arrived"),
           "report: %d %s", r.failed_rank, r.cause);
    /* a line a rank wrote in two pieces: mpirun tags each piece */
    const char *pieces[] = {
        "[1,2]<stderr>:ringtrain train: rank 2: timed out waiting for rank 1[1,2]<stderr>:", NULL};
    scan_all(pieces, &r);
    EXPECT(!strcmp(r.cause, "ringtrain train: rank 2: timed out waiting for rank 1"),
           "pieces: '%s'", r.cause);

    const char *notfail[] = {"[1,0]<stdout>:ringtrain train: 4 ranks", "ringtrain launch", NULL};
    scan_all(notfail, &r);
    EXPECT(!r.cause[0], "stdout or a bare name taken as a failure: %s", r.cause);

    const char *pname[] = {"  Process name: [[20393,1],5]", "  Exit code:    3", NULL};
    scan_all(pname, &r);
    r.code = 3;
    launch_result_describe(&r, d, sizeof d);
    EXPECT(r.failed_rank == 5 && !strcmp(d, "rank 5 failed (mpirun exit 3)"), "pname: %s", d);

    const char *none[] = {"hello", NULL};
    scan_all(none, &r);
    r.signaled = true;
    r.code = 9;
    launch_result_describe(&r, d, sizeof d);
    EXPECT(!strcmp(d, "mpirun killed by signal 9; no rank said why"), "none: %s", d);
}

int main(void)
{
    test_argv();
    test_render();
    test_env();
    test_scan();
    test_ckpt();
    test_cause();
    return TEST_EXIT();
}
