/* launcher_argv.c - the exact mpirun argv for a launch plan, the
 * environment forwarded to the ranks, and what the launcher reads from the
 * job's own arguments. Pure functions: no process, file or shell. */
#define _DEFAULT_SOURCE /* strdup */
#include "launch/launcher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"

typedef struct {
    char **v;
    int n, cap;
    bool oom;
} vec_t;

static void vec_push(vec_t *a, const char *s)
{
    if (a->oom)
        return;
    if (a->n + 2 > a->cap) {
        int ncap = a->cap ? a->cap * 2 : 32;
        char **nv = realloc(a->v, (size_t)ncap * sizeof *nv);
        if (!nv) {
            a->oom = true;
            return;
        }
        a->v = nv;
        a->cap = ncap;
    }
    char *c = strdup(s);
    if (!c) {
        a->oom = true;
        return;
    }
    a->v[a->n++] = c;
    a->v[a->n] = NULL;
}

static void vec_pushf_int(vec_t *a, const char *fmt, int v)
{
    char buf[128];
    snprintf(buf, sizeof buf, fmt, v);
    vec_push(a, buf);
}

static bool is_flag(const char *arg, const char *flag, const char **value_eq)
{
    size_t n = strlen(flag);
    if (strncmp(arg, flag, n) != 0)
        return false;
    if (arg[n] == '\0') {
        *value_eq = NULL;
        return true;
    }
    if (arg[n] == '=') {
        *value_eq = arg + n + 1;
        return true;
    }
    return false;
}

void launch_job_scan(int n, const char *const *args, launch_job_info_t *out)
{
    out->resume = NULL;
    out->ckpt_dir = NULL;
    for (int i = 0; i < n; i++) {
        const char *eq;
        const char **dst = NULL;
        if (is_flag(args[i], "--resume", &eq))
            dst = &out->resume;
        else if (is_flag(args[i], "--ckpt-dir", &eq))
            dst = &out->ckpt_dir;
        else if (!strcmp(args[i], "--"))
            break;
        if (!dst)
            continue;
        if (eq)
            *dst = eq;
        else if (i + 1 < n)
            *dst = args[++i];
    }
}

static bool chooses_binding(const launch_plan_t *p)
{
    for (int i = 0; i < p->n_mpirun_args; i++) {
        const char *a = p->mpirun_args[i];
        if (!strncmp(a, "--bind-to", 9) || !strncmp(a, "-bind-to", 8) ||
            strstr(a, "hwloc_base_binding_policy"))
            return true;
    }
    return false;
}

rt_status launch_argv_build(const launch_plan_t *p, launch_argv_t *out)
{
    out->argv = NULL;
    out->argc = 0;
    CHECK_ARG(p->mpirun && *p->mpirun, "launch: no mpirun program");
    CHECK_ARG(p->np >= 1, "launch: np %d < 1", p->np);
    CHECK_ARG(p->ringtrain && *p->ringtrain, "launch: no ringtrain path");
    CHECK_ARG(p->n_job_args >= 1, "launch: no subcommand after --");
    CHECK_ARG(p->grace_s >= 1, "launch: grace period %d s < 1", p->grace_s);
    vec_t a = {0};
    vec_push(&a, p->mpirun);
    vec_push(&a, "-np");
    vec_pushf_int(&a, "%d", p->np);
    if (p->hostfile) {
        vec_push(&a, "--hostfile");
        vec_push(&a, p->hostfile);
    }
    if (p->oversubscribe)
        vec_push(&a, "--oversubscribe");
    vec_push(&a, "--tag-output");
    if (!chooses_binding(p)) {
        vec_push(&a, "--bind-to");
        vec_push(&a, "none");
    }
    vec_push(&a, "--mca");
    vec_push(&a, "odls_base_sigkill_timeout");
    vec_pushf_int(&a, "%d", p->grace_s);
    for (int i = 0; i < p->n_forward_env; i++) {
        vec_push(&a, "-x");
        vec_push(&a, p->forward_env[i]);
    }
    if (p->blas_threads > 0) {
        vec_push(&a, "-x");
        vec_pushf_int(&a, "OMP_NUM_THREADS=%d", p->blas_threads);
        vec_push(&a, "-x");
        vec_pushf_int(&a, "OPENBLAS_NUM_THREADS=%d", p->blas_threads);
    }
    for (int i = 0; i < p->n_mpirun_args; i++)
        vec_push(&a, p->mpirun_args[i]);
    vec_push(&a, p->ringtrain);
    bool replaced = false;
    for (int i = 0; i < p->n_job_args; i++) {
        const char *eq;
        if (p->resume_auto && !replaced && is_flag(p->job_args[i], "--resume", &eq)) {
            vec_push(&a, "--resume");
            vec_push(&a, "auto");
            if (!eq)
                i++; /* skip the old value */
            replaced = true;
            continue;
        }
        vec_push(&a, p->job_args[i]);
    }
    if (p->resume_auto && !replaced) {
        vec_push(&a, "--resume");
        vec_push(&a, "auto");
    }
    out->argv = a.v;
    out->argc = a.n;
    if (a.oom) {
        launch_argv_free(out);
        return rt_fail(RT_ERR_NOMEM, "launch: out of memory building the mpirun command");
    }
    return RT_OK;
}

void launch_argv_free(launch_argv_t *a)
{
    if (a->argv)
        for (int i = 0; i < a->argc; i++)
            free(a->argv[i]);
    free(a->argv);
    a->argv = NULL;
    a->argc = 0;
}

static bool shell_safe(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                    "_-+=.,/:@%", *s))
            return false;
    return true;
}

char *launch_argv_render(const launch_argv_t *a)
{
    size_t len = 1;
    for (int i = 0; i < a->argc; i++)
        len += 4 * strlen(a->argv[i]) + 3; /* worst case: every char a quote */
    char *out = malloc(len);
    if (!out)
        return NULL;
    char *w = out;
    for (int i = 0; i < a->argc; i++) {
        if (i)
            *w++ = ' ';
        const char *s = a->argv[i];
        if (shell_safe(s)) {
            w += sprintf(w, "%s", s);
            continue;
        }
        *w++ = '\'';
        for (; *s; s++) {
            if (*s == '\'') {
                memcpy(w, "'\\''", 4);
                w += 4;
            } else {
                *w++ = *s;
            }
        }
        *w++ = '\'';
    }
    *w = '\0';
    return out;
}

static bool env_wanted(const char *name, size_t n)
{
    static const char *const exact[] = {
        "OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
    };
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    if (n == 9 && !strncmp(name, "RT_MPIRUN", 9)) /* the launcher's own setting */
        return false;
    if ((n > 3 && !strncmp(name, "RT_", 3)) || (n > 5 && !strncmp(name, "NCCL_", 5)))
        return true;
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strlen(exact[i]) == n && !strncmp(exact[i], name, n))
            return true;
    return false;
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* Whether envp holds a non-empty SLURM_JOB_ID: the launcher runs inside a
 * Slurm allocation. */
static bool in_slurm_job(char *const *envp)
{
    for (int i = 0; envp && envp[i]; i++)
        if (!strncmp(envp[i], "SLURM_JOB_ID=", 13) && envp[i][13] != '\0')
            return true;
    return false;
}

int launch_env_select(char *const *envp, const char **out, int max, char *buf, int bufsize)
{
    int count = 0, used = 0;
    /* Inside a Slurm job each node's daemons get that node's GPUs in their
     * own CUDA_VISIBLE_DEVICES from slurmd; the batch shell's value names
     * the first node's, which on a shared node may be another job's GPUs. */
    bool keep_visible_devices = !in_slurm_job(envp);
    for (int i = 0; envp && envp[i]; i++) {
        const char *eq = strchr(envp[i], '=');
        if (!eq || eq == envp[i])
            continue;
        size_t n = (size_t)(eq - envp[i]);
        if (!env_wanted(envp[i], n) || count >= max || used + (int)n + 1 > bufsize)
            continue;
        if (!keep_visible_devices && n == 20 && !strncmp(envp[i], "CUDA_VISIBLE_DEVICES", n))
            continue;
        char *name = buf + used;
        memcpy(name, envp[i], n);
        name[n] = '\0';
        used += (int)n + 1;
        bool dup = false;
        for (int k = 0; k < count; k++)
            dup = dup || !strcmp(out[k], name);
        if (dup) {
            used -= (int)n + 1;
            continue;
        }
        out[count++] = name;
    }
    qsort(out, (size_t)count, sizeof *out, cmp_str);
    return count;
}
