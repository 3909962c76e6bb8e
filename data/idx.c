/* idx.c - the IDX reader: header checks, then exactly the promised bytes. */
/* POSIX 2008: pread, strdup, O_CLOEXEC, O_DIRECTORY */
#define _POSIX_C_SOURCE 200809L
#include "data/idx.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common/check.h"

/* A file read either as it is or, when it starts with the gzip magic,
 * through inflate. gzread is not used because it reports a gzip stream cut
 * inside its trailer as a clean end of file; here a stream must reach its
 * end (Z_STREAM_END, CRC checked) before end of file. */
typedef struct {
    FILE *f;
    const char *path;
    bool gz;
    bool stream_end;     /* the current gzip member is complete */
    z_stream zs;
    unsigned char in[1 << 16];
} byte_source;

static rt_status src_open(byte_source *s, const char *path)
{
    memset(s, 0, sizeof *s);
    s->path = path;
    s->f = fopen(path, "rb");
    if (!s->f)
        return rt_fail(RT_ERR_IO, "%s: %s", path, strerror(errno));
    int c0 = getc(s->f), c1 = getc(s->f);
    rewind(s->f);
    if (c0 == 0x1f && c1 == 0x8b) {
        s->gz = true;
        if (inflateInit2(&s->zs, 15 + 16) != Z_OK) {
            fclose(s->f);
            s->f = NULL;
            return rt_fail(RT_ERR_NOMEM, "%s: inflateInit2 failed", path);
        }
    }
    return RT_OK;
}

static void src_close(byte_source *s)
{
    if (s->gz)
        inflateEnd(&s->zs);
    if (s->f)
        fclose(s->f);
    s->f = NULL;
}

/* Reads up to n bytes; *got < n only at the true end of the data. */
static rt_status src_read(byte_source *s, void *buf, size_t n, size_t *got)
{
    *got = 0;
    if (!s->gz) {
        *got = fread(buf, 1, n, s->f);
        if (*got < n && ferror(s->f))
            return rt_fail(RT_ERR_IO, "%s: read: %s", s->path, strerror(errno));
        return RT_OK;
    }
    unsigned char *out = buf;
    while (*got < n) {
        if (s->zs.avail_in == 0) {
            size_t k = fread(s->in, 1, sizeof s->in, s->f);
            if (k == 0 && ferror(s->f))
                return rt_fail(RT_ERR_IO, "%s: read: %s", s->path, strerror(errno));
            if (k == 0) {
                if (s->stream_end)
                    return RT_OK; /* the end of the last gzip member */
                return rt_fail(RT_ERR_FORMAT,
                               "%s: truncated gzip stream (unexpected end of file)", s->path);
            }
            s->zs.next_in = s->in;
            s->zs.avail_in = (uInt)k;
        }
        if (s->stream_end) {
            /* more bytes after a member: another gzip member must follow */
            inflateReset(&s->zs);
            s->stream_end = false;
        }
        size_t want = n - *got;
        s->zs.next_out = out + *got;
        s->zs.avail_out = want > (1u << 30) ? (1u << 30) : (uInt)want;
        uInt before = s->zs.avail_out;
        int ret = inflate(&s->zs, Z_NO_FLUSH);
        *got += before - s->zs.avail_out;
        if (ret == Z_STREAM_END)
            s->stream_end = true;
        else if (ret != Z_OK && ret != Z_BUF_ERROR)
            return rt_fail(RT_ERR_FORMAT, "%s: corrupt gzip data: %s", s->path,
                           s->zs.msg ? s->zs.msg : zError(ret));
    }
    return RT_OK;
}

/* Reads exactly n bytes or fails saying what was cut short. */
static rt_status read_exact(byte_source *s, void *buf, size_t n, const char *what)
{
    size_t got;
    TRY(src_read(s, buf, n, &got));
    if (got < n)
        return rt_fail(RT_ERR_FORMAT, "%s: truncated: the file ends inside the %s (%zu of %zu bytes)",
                       s->path, what, got, n);
    return RT_OK;
}

static uint32_t be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

rt_status idx_read(const char *path, int want_dims, idx_array_t *out)
{
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return rt_fail(RT_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return rt_fail(RT_ERR_IO, "%s: not a regular file", path);
    if (sb.st_size == 0)
        return rt_fail(RT_ERR_FORMAT, "%s: empty file (not an IDX file)", path);
    byte_source *src = malloc(sizeof *src);
    CHECK_ALLOC(src, sizeof *src);
    rt_status st = src_open(src, path);
    if (st != RT_OK) {
        free(src);
        return st;
    }
    uint8_t head[4];
    TRY_GOTO(st, read_exact(src, head, 4, "magic number"), done);
    uint32_t magic = be32(head);
    if (head[0] != 0 || head[1] != 0) {
        st = rt_fail(RT_ERR_FORMAT, "%s: wrong magic number 0x%08x (not an IDX file)", path, magic);
        goto done;
    }
    if (head[2] != 0x08) {
        st = rt_fail(RT_ERR_FORMAT,
                     "%s: IDX element type 0x%02x is not supported (only 0x08, unsigned byte)",
                     path, head[2]);
        goto done;
    }
    int dims = head[3];
    if (dims < 1 || dims > IDX_MAX_DIMS || (want_dims && dims != want_dims)) {
        st = rt_fail(RT_ERR_FORMAT, "%s: wrong magic number 0x%08x: %d dimensions, expected %d",
                     path, magic, dims, want_dims);
        goto done;
    }
    uint8_t dbuf[4 * IDX_MAX_DIMS];
    TRY_GOTO(st, read_exact(src, dbuf, 4 * (size_t)dims, "dimensions"), done);
    int64_t total = 1;
    for (int i = 0; i < dims; i++) {
        out->shape[i] = be32(dbuf + 4 * i);
        if (out->shape[i] == 0 || out->shape[i] > INT32_MAX) {
            st = rt_fail(RT_ERR_FORMAT, "%s: dimension %d is %lld", path, i,
                         (long long)out->shape[i]);
            goto done;
        }
        /* checked before multiplying: the product must not overflow */
        if (out->shape[i] > (1LL << 40) / total) {
            st = rt_fail(RT_ERR_FORMAT, "%s: implausible size (more than 2^40 bytes)", path);
            goto done;
        }
        total *= out->shape[i];
    }
    /* The header's size against what the file can hold, before allocating
     * it: a plain file holds exactly its remaining bytes; deflate expands
     * at most 1032:1 (zlib's documented limit), so a small gzip file cannot
     * hold gigabytes (found by fuzzing: a 36-byte file asked for 6 GB). */
    const int64_t header = 4 + 4 * (int64_t)dims;
    const int64_t room = src->gz ? (int64_t)sb.st_size * 1032 : (int64_t)sb.st_size - header;
    if (total > room) {
        st = rt_fail(RT_ERR_FORMAT,
                     "%s: truncated: the header's dimensions need %lld data bytes, the file %s %lld",
                     path, (long long)total, src->gz ? "can hold at most" : "holds",
                     (long long)(room > 0 ? room : 0));
        goto done;
    }
    out->dims = dims;
    out->count = out->shape[0];
    out->data = malloc((size_t)total);
    if (!out->data) {
        st = rt_fail(RT_ERR_NOMEM, "%s: %lld bytes", path, (long long)total);
        goto done;
    }
    TRY_GOTO(st, read_exact(src, out->data, (size_t)total, "data"), done);
    uint8_t extra;
    size_t more;
    TRY_GOTO(st, src_read(src, &extra, 1, &more), done);
    if (more > 0)
        st = rt_fail(RT_ERR_FORMAT, "%s: trailing bytes after the %lld data bytes", path,
                     (long long)total);
done:
    src_close(src);
    free(src);
    if (st != RT_OK)
        idx_free(out);
    return st;
}

void idx_free(idx_array_t *a)
{
    free(a->data);
    memset(a, 0, sizeof *a);
}
