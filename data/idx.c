/* idx.c - the IDX reader: header checks, then exactly the promised bytes. */
/* POSIX 2008: pread, strdup, O_CLOEXEC, O_DIRECTORY */
#define _POSIX_C_SOURCE 200809L
#include "data/idx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common/check.h"

/* Reads exactly n bytes or fails with the reason zlib gives. */
static rt_status gz_read_exact(gzFile gz, const char *path, void *buf, size_t n, const char *what)
{
    char *p = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(gz, p, chunk);
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(gz, &zerr);
            return rt_fail(RT_ERR_FORMAT, "%s: corrupt data while reading %s: %s", path, what,
                           zerr == Z_ERRNO ? strerror(errno) : msg);
        }
        if (got == 0) {
            int zerr;
            const char *msg = gzerror(gz, &zerr);
            if (zerr != Z_OK && zerr != Z_STREAM_END)
                return rt_fail(RT_ERR_FORMAT, "%s: truncated while reading %s: %s", path, what,
                               msg);
            return rt_fail(RT_ERR_FORMAT, "%s: truncated: file ends before the %s", path, what);
        }
        p += got;
        n -= (size_t)got;
    }
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
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return rt_fail(RT_ERR_IO, "%s: %s", path, errno ? strerror(errno) : "cannot open");
    gzbuffer(gz, 1 << 17);

    rt_status st = RT_OK;
    uint8_t head[4];
    TRY_GOTO(st, gz_read_exact(gz, path, head, 4, "magic number"), done);
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
    TRY_GOTO(st, gz_read_exact(gz, path, dbuf, 4 * (size_t)dims, "dimensions"), done);
    int64_t total = 1;
    for (int i = 0; i < dims; i++) {
        out->shape[i] = be32(dbuf + 4 * i);
        if (out->shape[i] == 0 || out->shape[i] > INT32_MAX) {
            st = rt_fail(RT_ERR_FORMAT, "%s: dimension %d is %lld", path, i,
                         (long long)out->shape[i]);
            goto done;
        }
        total *= out->shape[i];
        if (total > (1LL << 40)) {
            st = rt_fail(RT_ERR_FORMAT, "%s: implausible size (more than 2^40 bytes)", path);
            goto done;
        }
    }
    out->dims = dims;
    out->count = out->shape[0];
    out->data = malloc((size_t)total);
    if (!out->data) {
        st = rt_fail(RT_ERR_NOMEM, "%s: %lld bytes", path, (long long)total);
        goto done;
    }
    TRY_GOTO(st, gz_read_exact(gz, path, out->data, (size_t)total, "data"), done);
    uint8_t extra;
    int more = gzread(gz, &extra, 1);
    if (more > 0) {
        st = rt_fail(RT_ERR_FORMAT, "%s: trailing bytes after %lld data bytes", path,
                     (long long)total);
        goto done;
    }
    if (more < 0) {
        int zerr;
        st = rt_fail(RT_ERR_FORMAT, "%s: corrupt data at the end: %s", path, gzerror(gz, &zerr));
        goto done;
    }
done:
    if (gzclose_r(gz) != Z_OK && st == RT_OK)
        st = rt_fail(RT_ERR_FORMAT, "%s: corrupt gzip stream", path);
    if (st != RT_OK)
        idx_free(out);
    return st;
}

void idx_free(idx_array_t *a)
{
    free(a->data);
    memset(a, 0, sizeof *a);
}
