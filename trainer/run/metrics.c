/* metrics.c - the metrics file and its lines (see metrics.h). */
#define _POSIX_C_SOURCE 200809L
#include "trainer/run/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

FILE *metrics_open(const char *path, int64_t keep_upto)
{
    if (keep_upto < 0)
        return fopen(path, "w");
    FILE *old = fopen(path, "r");
    if (!old)
        return errno == ENOENT ? fopen(path, "w") : NULL;
    char *kept = NULL;
    size_t kept_len = 0;
    FILE *mem = open_memstream(&kept, &kept_len);
    if (!mem) {
        fclose(old);
        return NULL;
    }
    char line[4096];
    bool drop = false;
    while (fgets(line, sizeof line, old)) {
        long long step;
        bool whole = strchr(line, '\n') != NULL;
        if (!drop && sscanf(line, "{\"step\":%lld", &step) == 1 && step > keep_upto)
            drop = true;  /* the interrupted run's lines past the checkpoint */
        if (!drop && whole)
            fputs(line, mem);
        if (!whole)
            break;  /* a cut-off last line (killed mid-write) */
    }
    fclose(old);
    fclose(mem);
    FILE *f = fopen(path, "w");
    if (f && kept_len)
        fwrite(kept, 1, kept_len, f);
    free(kept);
    return f;
}

void metrics_write_step(FILE *f, const metrics_step_t *m)
{
    fprintf(f, "{\"step\":%lld,\"epoch\":%.4f,\"loss\":%.7g,\"lr\":%.7g,\"samples_per_s\":%.1f",
            (long long)m->step, m->epoch, m->loss, m->lr, m->samples_per_s);
    if (!isnan(m->tokens_per_s))
        fprintf(f, ",\"tokens_per_s\":%.1f", m->tokens_per_s);
    if (!isnan(m->bits_per_byte))
        fprintf(f, ",\"bits_per_byte\":%.7g", m->bits_per_byte);
    if (!isnan(m->mfu))
        fprintf(f, ",\"mfu\":%.5f", m->mfu);
    if (!isnan(m->comm_exposed_ms))
        fprintf(f, ",\"comm_exposed_ms\":%.4f", m->comm_exposed_ms);
    if (m->optimizer_bytes > 0)
        fprintf(f, ",\"optimizer_bytes\":%lld", (long long)m->optimizer_bytes);
    fprintf(f, ",\"grad_norm\":%.7g}\n", m->grad_norm);
    fflush(f);
}

void metrics_write_eval(FILE *f, int64_t step, double loss, double accuracy,
                        double bits_per_byte)
{
    fprintf(f, "{\"step\":%lld,\"eval_loss\":%.7g", (long long)step, loss);
    if (!isnan(accuracy))
        fprintf(f, ",\"eval_accuracy\":%.7g", accuracy);
    if (!isnan(bits_per_byte))
        fprintf(f, ",\"eval_bits_per_byte\":%.7g", bits_per_byte);
    fprintf(f, "}\n");
    fflush(f);
}

void metrics_write_final(FILE *f, int64_t step, double seconds, int64_t skipped, uint64_t hash)
{
    fprintf(f, "{\"step\":%lld,\"train_seconds\":%.3f,\"skipped_steps\":%lld,"
               "\"params_hash\":\"%016llx\"}\n",
            (long long)step, seconds, (long long)skipped, (unsigned long long)hash);
    fflush(f);
}

void format_duration(double s, char *buf, size_t size)
{
    if (!(s >= 0) || s > 1e7)
        snprintf(buf, size, "?");
    else if (s >= 3600)
        snprintf(buf, size, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60)
        snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, size, "%.1fs", s);
}
