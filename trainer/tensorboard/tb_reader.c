/* tb_reader.c - the event-file reader of tb_reader.h. Records are read one
 * by one with stdio; the length is trusted only after its own CRC. */
#include "trainer/tensorboard/tb_reader.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "trainer/tensorboard/tb_writer.h"
#include "event.pb-c.h"

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static rt_status deliver(const char *path, int64_t at, const unsigned char *data, size_t n,
                         tb_scalar_fn fn, void *ctx, tb_read_info_t *info)
{
    Tensorflow__Event *ev = tensorflow__event__unpack(NULL, n, data);
    if (!ev)
        return rt_fail(RT_ERR_FORMAT, "%s: record at byte %lld is not an Event message", path,
                       (long long)at);
    if (ev->what_case == TENSORFLOW__EVENT__WHAT_FILE_VERSION && !info->file_version[0])
        snprintf(info->file_version, sizeof info->file_version, "%s", ev->file_version);
    if (ev->what_case == TENSORFLOW__EVENT__WHAT_SUMMARY && ev->summary) {
        for (size_t i = 0; i < ev->summary->n_value; i++) {
            const Tensorflow__Summary__Value *v = ev->summary->value[i];
            if (v->value_case != TENSORFLOW__SUMMARY__VALUE__VALUE_SIMPLE_VALUE)
                continue;
            info->scalars++;
            if (fn)
                fn(ctx, ev->step, ev->wall_time, v->tag, v->simple_value);
        }
    }
    tensorflow__event__free_unpacked(ev, NULL);
    return RT_OK;
}

static rt_status walk(FILE *f, const char *path, tb_scalar_fn fn, void *ctx, tb_read_info_t *info,
                      unsigned char **data)
{
    for (;;) {
        const int64_t at = info->good_bytes;
        unsigned char head[12];
        const size_t got = fread(head, 1, sizeof head, f);
        if (got == 0 && feof(f))
            return RT_OK;
        if (got < sizeof head) {
            if (ferror(f))
                return rt_fail(RT_ERR_IO, "read %s: %s", path, strerror(errno));
            info->truncated = true;
            return rt_fail(RT_ERR_CORRUPT,
                           "%s: truncated last record at byte %lld (%zu of its 12 header bytes)", path,
                           (long long)at, got);
        }
        if ((uint32_t)get_le(head + 8, 4) != tb_masked_crc32c(head, 8))
            return rt_fail(RT_ERR_CORRUPT, "%s: record at byte %lld: length CRC mismatch", path,
                           (long long)at);
        const uint64_t n = get_le(head, 8);
        if (n > ((uint64_t)1 << 30))
            return rt_fail(RT_ERR_FORMAT, "%s: record at byte %lld: implausible length %llu", path,
                           (long long)at, (unsigned long long)n);
        unsigned char *p = realloc(*data, (size_t)n + 4);
        CHECK_ALLOC(p, (size_t)n + 4);
        *data = p;
        const size_t body = fread(p, 1, (size_t)n + 4, f);
        if (body < (size_t)n + 4) {
            if (ferror(f))
                return rt_fail(RT_ERR_IO, "read %s: %s", path, strerror(errno));
            info->truncated = true;
            return rt_fail(RT_ERR_CORRUPT,
                           "%s: truncated last record at byte %lld (%llu bytes of data and CRC "
                           "expected, %zu present)",
                           path, (long long)at, (unsigned long long)n + 4, body);
        }
        if ((uint32_t)get_le(p + n, 4) != tb_masked_crc32c(p, (size_t)n))
            return rt_fail(RT_ERR_CORRUPT, "%s: record at byte %lld: data CRC mismatch", path,
                           (long long)at);
        TRY(deliver(path, at, p, (size_t)n, fn, ctx, info));
        info->records++;
        info->good_bytes = at + 12 + (int64_t)n + 4;
    }
}

rt_status tb_read_file(const char *path, tb_scalar_fn fn, void *ctx, tb_read_info_t *info)
{
    memset(info, 0, sizeof *info);
    FILE *f = fopen(path, "rb");
    if (!f)
        return rt_fail(RT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    unsigned char *data = NULL;
    rt_status st = walk(f, path, fn, ctx, info, &data);
    free(data);
    fclose(f);
    return st;
}
