/* fuzz_tb_roundtrip.c - libFuzzer target: the TensorBoard event writer
 * (trainer/tensorboard/tb_writer.h) round-tripped through its reader
 * (tb_reader.h), and the reader on the raw input bytes.
 *
 * The input is a script of scalars: per scalar one control byte (its low 6
 * bits the tag's length, bit 6 "flush after it"), the tag's bytes (cut at
 * a NUL, as a C string is), 8 bytes of step and 8 bytes of a double value
 * (any bits: NaN, infinities, values that overflow a float). What the
 * reader delivers must be exactly what was written: the file_version
 * record then each scalar in order, with its step, its tag, the value as
 * the float the writer stores (compared bit for bit, NaN with NaN), and
 * a wall time within the seconds the writing took (a few seconds' slack:
 * it is the real-time clock). A last byte past the script, when there
 * is one, cuts the file at a fuzzed length: the reader must then deliver a
 * prefix of the scalars and report the cut (truncated, or a clean end
 * exactly at a record boundary). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "trainer/tensorboard/tb_reader.h"
#include "trainer/tensorboard/tb_writer.h"

#define MAX_SCALARS 256

typedef struct {
    int64_t step;
    char tag[64];
    float value;
} scalar_t;

typedef struct {
    const scalar_t *want;
    int n_want;
    int got;
    double wall_from, wall_to;
} check_t;

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int same_float(float a, float b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

static void on_scalar(void *ctx, int64_t step, double wall_time, const char *tag, float value)
{
    check_t *c = ctx;
    if (c->got >= c->n_want) {
        fprintf(stderr, "tb: more scalars read back than written (%d)\n", c->n_want);
        abort();
    }
    const scalar_t *w = &c->want[c->got];
    if (step != w->step || strcmp(tag, w->tag) != 0 || !same_float(value, w->value) ||
        !(wall_time >= c->wall_from && wall_time <= c->wall_to)) {
        fprintf(stderr, "tb: scalar %d read back as step %lld tag '%s' value %a at %.3f, "
                "written as step %lld tag '%s' value %a\n", c->got, (long long)step, tag,
                value, wall_time, (long long)w->step, w->tag, w->value);
        abort();
    }
    c->got++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char raw[512];
    tb_read_info_t info;
    /* the reader on arbitrary bytes: any status, no crash */
    (void)tb_read_file(fuzz_file("raw.tfevents", data, size, raw, sizeof raw), NULL, NULL, &info);

    static scalar_t want[MAX_SCALARS];
    char dir[512];
    fuzz_path("tb", dir, sizeof dir);
    tb_writer_t *w = NULL;
    if (tb_writer_open(&w, dir) != RT_OK) {
        fprintf(stderr, "tb: %s\n", rt_last_error());
        abort();
    }
    const double t0 = (double)time(NULL) - 5;
    char path[1024];
    snprintf(path, sizeof path, "%s", tb_writer_path(w));
    size_t pos = 0;
    int n = 0;
    while (n < MAX_SCALARS && pos < size) {
        const unsigned ctl = data[pos];
        const size_t len = ctl & 63;
        if (size - pos - 1 < len + 16)
            break;
        scalar_t *s = &want[n];
        memcpy(s->tag, data + pos + 1, len);
        s->tag[len] = '\0';
        s->step = (int64_t)le64(data + pos + 1 + len);
        const uint64_t bits = le64(data + pos + 1 + len + 8);
        double v;
        memcpy(&v, &bits, sizeof v);
        s->value = (float)v;
        if (tb_writer_scalar(w, s->step, s->tag, v) != RT_OK ||
            ((ctl & 64) && tb_writer_flush(w) != RT_OK)) {
            fprintf(stderr, "tb: writing: %s\n", rt_last_error());
            abort();
        }
        n++;
        pos += 1 + len + 16;
    }
    if (tb_writer_close(w) != RT_OK) {
        fprintf(stderr, "tb: closing: %s\n", rt_last_error());
        abort();
    }

    check_t c = {.want = want, .n_want = n, .wall_from = t0, .wall_to = (double)time(NULL) + 5};
    rt_status st = tb_read_file(path, on_scalar, &c, &info);
    if (st != RT_OK || c.got != n || info.scalars != n || info.records != n + 1 ||
        info.truncated || strcmp(info.file_version, TB_FILE_VERSION) != 0) {
        fprintf(stderr, "tb: read back %d of %d scalars, %lld records, version '%s': %s\n",
                c.got, n, (long long)info.records, info.file_version,
                st == RT_OK ? "ok" : rt_last_error());
        abort();
    }

    /* a cut: the reader delivers a prefix and says where it stopped */
    if (pos < size) {
        struct stat sb;
        if (stat(path, &sb) != 0)
            abort();
        const int64_t whole = (int64_t)sb.st_size, good = info.good_bytes;
        const int64_t cut = whole > 0 ? (int64_t)(data[size - 1] * (uint64_t)whole / 256) : 0;
        if (good != whole || truncate(path, (off_t)cut) != 0)
            abort();
        check_t p = c;
        p.got = 0;
        st = tb_read_file(path, on_scalar, &p, &info);
        const bool clean = st == RT_OK && !info.truncated && info.good_bytes == cut;
        const bool cut_off = st != RT_OK && info.truncated && info.good_bytes <= cut;
        if (!(clean || cut_off) || p.got > n || info.records > n + 1 ||
            p.got != (info.records > 0 ? info.records - 1 : 0)) {
            fprintf(stderr, "tb: file cut at %lld of %lld: status %d truncated %d good %lld, "
                    "%d scalars\n", (long long)cut, (long long)whole, (int)st,
                    (int)info.truncated, (long long)info.good_bytes, p.got);
            abort();
        }
    }
    unlink(path);
    return 0;
}
