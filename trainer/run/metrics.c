/* metrics.c - the metrics file and its lines (see metrics.h). The lines are
 * built and printed with cJSON, and read back with it on resume, so that
 * every line is JSON a strict parser accepts: a value that is not finite
 * (a skipped step's loss with --skip-nonfinite) is written as null, never
 * as the bare nan or inf that printf would produce. */
#define _POSIX_C_SOURCE 200809L
#include "trainer/run/metrics.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* Whether one line of an earlier run's file stays: it parses as a JSON
 * object with a numeric "step" no later than keep_upto. A line that does
 * not parse, or has no step, is dropped with a warning that names it: the
 * file is to hold only lines a JSON reader accepts (an older build wrote
 * a bare nan there), and a line without its step cannot be placed before
 * or after the checkpoint. */
static bool keep_line(const char *path, long lineno, const char *line, size_t len,
                      int64_t keep_upto)
{
    if (strlen(line) != len) {
        LOG_WARN("metrics %s: line %ld holds a NUL byte; dropped", path, lineno);
        return false;
    }
    cJSON *obj = cJSON_ParseWithOpts(line, NULL, 1);
    if (!obj || !cJSON_IsObject(obj)) {
        LOG_WARN("metrics %s: line %ld is not a JSON object; dropped", path, lineno);
        cJSON_Delete(obj);
        return false;
    }
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(obj, "step");
    bool keep = false;
    if (!cJSON_IsNumber(step))
        LOG_WARN("metrics %s: line %ld has no numeric \"step\"; dropped", path, lineno);
    else
        keep = step->valuedouble <= (double)keep_upto;  /* later: the interrupted run's, redone now */
    cJSON_Delete(obj);
    return keep;
}

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
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    while ((n = getline(&line, &cap, old)) > 0) {
        lineno++;
        if (line[n - 1] != '\n') {
            /* the last line, cut off by a kill mid-write */
            LOG_WARN("metrics %s: line %ld is cut off (no newline); dropped", path, lineno);
            break;
        }
        if (keep_line(path, lineno, line, (size_t)n, keep_upto))
            fwrite(line, 1, (size_t)n, mem);  /* as it was written, byte for byte */
    }
    const int read_errno = ferror(old) ? (errno ? errno : EIO) : 0;
    free(line);
    fclose(old);
    const bool mem_ok = fclose(mem) == 0;
    if (read_errno || !mem_ok) {
        free(kept);
        errno = read_errno ? read_errno : ENOMEM;
        return NULL;
    }
    FILE *f = fopen(path, "w");
    if (f && kept_len)
        fwrite(kept, 1, kept_len, f);
    free(kept);
    return f;
}

/* A figure rounded to the digits the file has always carried (printf's
 * "%.7g" for a loss, "%.4f" for an epoch ...), then handed to cJSON as a
 * number: cJSON prints the shortest text that reads back as that double,
 * so the lines keep their width and the value read is the value meant.
 * Not finite: null. */
static bool add_real(cJSON *obj, const char *key, double v, const char *fmt)
{
    if (!isfinite(v))
        return cJSON_AddNullToObject(obj, key) != NULL;
    char text[400];  /* "%.4f" of the largest double: 309 digits and 5 more */
    snprintf(text, sizeof text, fmt, v);
    return cJSON_AddNumberToObject(obj, key, strtod(text, NULL)) != NULL;
}

/* cJSON numbers are doubles (exact only up to 2^53, printed as "%.15g"
 * whenever they pass INT_MAX); a count or a byte size goes in as the exact
 * decimal digits of the int64 instead. */
static bool add_int(cJSON *obj, const char *key, int64_t v)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)v);
    return cJSON_AddRawToObject(obj, key, text) != NULL;
}

/* Prints obj as one line, flushes (a line is on disk as soon as it is
 * written: a killed run's file ends with its last logged step) and frees
 * obj. ok false: an addition failed for want of memory. */
static rt_status put_line(FILE *f, cJSON *obj, bool ok)
{
    char *text = ok ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!text)
        return rt_fail(RT_ERR_NOMEM, "metrics: out of memory for a line");
    const bool written = fputs(text, f) >= 0 && fputc('\n', f) != EOF && fflush(f) == 0;
    cJSON_free(text);
    return written ? RT_OK : rt_fail(RT_ERR_IO, "metrics: write: %s", strerror(errno));
}

rt_status metrics_write_step(FILE *f, const metrics_step_t *m)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return rt_fail(RT_ERR_NOMEM, "metrics: out of memory for a line");
    bool ok = add_int(o, "step", m->step);
    ok = ok && add_real(o, "epoch", m->epoch, "%.4f");
    ok = ok && add_real(o, "loss", m->loss, "%.7g");
    ok = ok && add_real(o, "lr", m->lr, "%.7g");
    ok = ok && add_real(o, "samples_per_s", m->samples_per_s, "%.1f");
    if (!isnan(m->tokens_per_s))
        ok = ok && add_real(o, "tokens_per_s", m->tokens_per_s, "%.1f");
    if (!isnan(m->bits_per_byte))
        ok = ok && add_real(o, "bits_per_byte", m->bits_per_byte, "%.7g");
    if (!isnan(m->mfu))
        ok = ok && add_real(o, "mfu", m->mfu, "%.5f");
    if (!isnan(m->comm_exposed_ms))
        ok = ok && add_real(o, "comm_exposed_ms", m->comm_exposed_ms, "%.4f");
    if (m->optimizer_bytes > 0)
        ok = ok && add_int(o, "optimizer_bytes", m->optimizer_bytes);
    ok = ok && add_real(o, "grad_norm", m->grad_norm, "%.7g");
    return put_line(f, o, ok);
}

rt_status metrics_write_eval(FILE *f, int64_t step, double loss, double accuracy,
                             double bits_per_byte)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return rt_fail(RT_ERR_NOMEM, "metrics: out of memory for a line");
    bool ok = add_int(o, "step", step);
    ok = ok && add_real(o, "eval_loss", loss, "%.7g");
    if (!isnan(accuracy))
        ok = ok && add_real(o, "eval_accuracy", accuracy, "%.7g");
    if (!isnan(bits_per_byte))
        ok = ok && add_real(o, "eval_bits_per_byte", bits_per_byte, "%.7g");
    return put_line(f, o, ok);
}

rt_status metrics_write_checkpoint(FILE *f, int64_t step, const char *path, double stall_ms,
                                   double write_ms)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return rt_fail(RT_ERR_NOMEM, "metrics: out of memory for a line");
    bool ok = add_int(o, "step", step);
    ok = ok && cJSON_AddStringToObject(o, "checkpoint", path) != NULL;
    ok = ok && add_real(o, "ckpt_stall_ms", stall_ms, "%.1f");
    ok = ok && add_real(o, "ckpt_write_ms", write_ms, "%.1f");
    return put_line(f, o, ok);
}

rt_status metrics_write_final(FILE *f, int64_t step, double seconds, int64_t skipped, uint64_t hash)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return rt_fail(RT_ERR_NOMEM, "metrics: out of memory for a line");
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)hash);
    bool ok = add_int(o, "step", step);
    ok = ok && add_real(o, "train_seconds", seconds, "%.3f");
    ok = ok && add_int(o, "skipped_steps", skipped);
    ok = ok && cJSON_AddStringToObject(o, "params_hash", hex) != NULL;
    return put_line(f, o, ok);
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
