/* safetensors.c - parameters to and from safetensors files (see
 * safetensors.h). The header is parsed by a small JSON reader for the
 * grammar a safetensors header uses (objects, arrays, strings, unsigned
 * integers; other values only skipped), so the format needs no JSON
 * library. */
#define _POSIX_C_SOURCE 200809L /* pread, fsync, O_CLOEXEC */
#include "trainer/ckpt/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/check.h"

/* The file's numbers are little-endian and are copied to and from memory
 * as they are; a big-endian host would need byte swaps everywhere. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define ST_MAX_DIMS 16
#define ST_MAX_DEPTH 64

/* ---- a growing text buffer ----------------------------------------------- */

typedef struct {
    char *s;
    size_t len, cap;
    bool nomem;
} sbuf_t;

static void sb_vprintf(sbuf_t *b, const char *fmt, va_list ap)
{
    if (b->nomem)
        return;
    for (;;) {
        va_list aq;
        va_copy(aq, ap);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, aq);
        va_end(aq);
        if (n < 0) {
            b->nomem = true;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len <= (size_t)n)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->nomem = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}

/* s as a JSON string literal: registry names and specs are plain ASCII,
 * but nothing breaks the header if one is not. */
static void sb_json_string(sbuf_t *b, const char *s)
{
    sb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_printf(b, "\\%c", *p);
        else if (*p < 0x20)
            sb_printf(b, "\\u%04x", *p);
        else
            sb_printf(b, "%c", *p);
    }
    sb_printf(b, "\"");
}

/* ---- dtypes ----------------------------------------------------------------- */

/* Element size of a safetensors dtype name; 0 for a name this reader does
 * not know (its size cannot be checked, and it cannot be a parameter). */
static size_t dtype_size(const char *dt)
{
    static const struct {
        const char *name;
        size_t size;
    } table[] = {
        {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"U64", 8},
        {"I32", 4}, {"U32", 4}, {"I16", 2}, {"U16", 2}, {"I8", 1},   {"U8", 1},
        {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(dt, table[i].name))
            return table[i].size;
    return 0;
}

static bool dtype_is_float(const char *dt)
{
    return !strcmp(dt, "F32") || !strcmp(dt, "F16") || !strcmp(dt, "BF16") || !strcmp(dt, "F64");
}

/* IEEE half to single, exactly (subnormals, infinities and NaNs included). */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while (!(man & 0x400u));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* n elements of dtype dt (raw file bytes) into float32. */
static void to_float(const char *dt, const void *raw, float *out, size_t n)
{
    if (!strcmp(dt, "F32")) {
        memcpy(out, raw, n * sizeof(float));
    } else if (!strcmp(dt, "F64")) {
        const unsigned char *p = raw;
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, sizeof d);
            out[i] = (float)d;
        }
    } else {
        const unsigned char *p = raw;
        bool bf16 = !strcmp(dt, "BF16");
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, sizeof h);
            if (bf16) {
                uint32_t bits = (uint32_t)h << 16;
                memcpy(&out[i], &bits, sizeof bits);
            } else {
                out[i] = half_to_float(h);
            }
        }
    }
}

/* ---- the header -------------------------------------------------------------- */

typedef struct {
    char *name;
    char dtype[16];
    int ndim;
    uint64_t shape[ST_MAX_DIMS];
    uint64_t begin, end;
} st_tensor_t;

typedef struct {
    st_tensor_t *t;
    int n, cap;
    char *model_spec;        /* __metadata__.model_spec, NULL when absent */
    uint64_t data_start;     /* 8 + N */
    uint64_t data_len;       /* file size - data_start */
} st_header_t;

static void header_free(st_header_t *h)
{
    for (int i = 0; i < h->n; i++)
        free(h->t[i].name);
    free(h->t);
    free(h->model_spec);
    memset(h, 0, sizeof *h);
}

/* The JSON reader: p moves through [start, end); the first error sticks. */
typedef struct {
    const char *start, *p, *end;
    bool bad, nomem;
    char why[256];
} jp_t;

static bool jfail(jp_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool jfail(jp_t *j, const char *fmt, ...)
{
    if (!j->bad) {
        va_list ap;
        va_start(ap, fmt);
        char what[200];
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        snprintf(j->why, sizeof j->why, "%s at byte %ld of the header", what, (long)(j->p - j->start));
        j->bad = true;
    }
    return false;
}

static void jws(jp_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool jeat(jp_t *j, char c)
{
    jws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

static bool jexpect(jp_t *j, char c)
{
    return jeat(j, c) || jfail(j, "expected '%c'", c);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool jhex4(jp_t *j, uint32_t *out)
{
    if (j->end - j->p < 4)
        return jfail(j, "short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(j->p[i]);
        if (h < 0)
            return jfail(j, "bad \\u escape");
        v = v << 4 | (uint32_t)h;
    }
    j->p += 4;
    *out = v;
    return true;
}

static void utf8_put(sbuf_t *b, uint32_t cp)
{
    if (cp < 0x80)
        sb_printf(b, "%c", (int)cp);
    else if (cp < 0x800)
        sb_printf(b, "%c%c", (int)(0xc0 | cp >> 6), (int)(0x80 | (cp & 0x3f)));
    else if (cp < 0x10000)
        sb_printf(b, "%c%c%c", (int)(0xe0 | cp >> 12), (int)(0x80 | (cp >> 6 & 0x3f)),
                  (int)(0x80 | (cp & 0x3f)));
    else
        sb_printf(b, "%c%c%c%c", (int)(0xf0 | cp >> 18), (int)(0x80 | (cp >> 12 & 0x3f)),
                  (int)(0x80 | (cp >> 6 & 0x3f)), (int)(0x80 | (cp & 0x3f)));
}

/* A string, decoded (escapes, \u with surrogate pairs) into a malloc'ed
 * C string; out may be NULL to skip it. A NUL in a string is refused: a
 * name with one could not be told apart from its prefix. */
static bool jstring(jp_t *j, char **out)
{
    if (!jexpect(j, '"'))
        return false;
    sbuf_t b = {0};
    sb_printf(&b, "%s", "");
    while (!j->bad) {
        if (j->p >= j->end) {
            jfail(j, "unterminated string");
            break;
        }
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"')
            break;
        if (c < 0x20) {
            j->p--;
            jfail(j, "control character in a string");
            break;
        }
        if (c != '\\') {
            sb_printf(&b, "%c", c);
            continue;
        }
        if (j->p >= j->end) {
            jfail(j, "unterminated string");
            break;
        }
        char e = *j->p++;
        uint32_t cp = 0, lo = 0;
        switch (e) {
        case '"': case '\\': case '/': sb_printf(&b, "%c", e); break;
        case 'b': sb_printf(&b, "\b"); break;
        case 'f': sb_printf(&b, "\f"); break;
        case 'n': sb_printf(&b, "\n"); break;
        case 'r': sb_printf(&b, "\r"); break;
        case 't': sb_printf(&b, "\t"); break;
        case 'u':
            if (!jhex4(j, &cp))
                break;
            if (cp >= 0xd800 && cp < 0xdc00) {
                if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u') {
                    jfail(j, "unpaired surrogate");
                    break;
                }
                j->p += 2;
                if (!jhex4(j, &lo))
                    break;
                if (lo < 0xdc00 || lo > 0xdfff) {
                    jfail(j, "unpaired surrogate");
                    break;
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                jfail(j, "unpaired surrogate");
                break;
            }
            if (cp == 0) {
                jfail(j, "\\u0000 in a string");
                break;
            }
            utf8_put(&b, cp);
            break;
        default:
            j->p--;
            jfail(j, "bad escape '\\%c'", e);
        }
    }
    if (b.nomem) {
        j->nomem = true;
        jfail(j, "out of memory");
    }
    if (j->bad || !out) {
        free(b.s);
        return !j->bad;
    }
    *out = b.s;
    return true;
}

/* An unsigned integer: digits only (no sign, fraction or exponent: sizes
 * and offsets are integers), at most UINT64_MAX. */
static bool juint(jp_t *j, uint64_t *out)
{
    jws(j);
    const char *s = j->p;
    uint64_t v = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        unsigned d = (unsigned)(*j->p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return jfail(j, "integer too large");
        v = v * 10 + d;
        j->p++;
    }
    if (j->p == s)
        return jfail(j, "expected an unsigned integer");
    if (j->p - s > 1 && *s == '0')
        return jfail(j, "integer with a leading zero");
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        return jfail(j, "expected an integer, not a fraction");
    *out = v;
    return true;
}

/* Any JSON value, skipped (keys of a tensor or of __metadata__ that this
 * reader does not use). */
static bool jskip(jp_t *j, int depth)
{
    if (depth > ST_MAX_DEPTH)
        return jfail(j, "nested too deeply");
    jws(j);
    if (j->p >= j->end)
        return jfail(j, "expected a value");
    char c = *j->p;
    if (c == '"')
        return jstring(j, NULL);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        if (jeat(j, close))
            return true;
        do {
            if (c == '{' && !(jstring(j, NULL) && jexpect(j, ':')))
                return false;
            if (!jskip(j, depth + 1))
                return false;
        } while (jeat(j, ','));
        return jexpect(j, close);
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(j->end - j->p) >= n && !memcmp(j->p, words[i], n)) {
            j->p += n;
            return true;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        if (c == '-')
            j->p++;
        const char *s = j->p;
        while (j->p < j->end && strchr("0123456789.eE+-", *j->p))
            j->p++;
        return j->p > s || jfail(j, "bad number");
    }
    return jfail(j, "unexpected character '%c'", c);
}

/* [u, u, ...] into v (at most max values). */
static bool juint_array(jp_t *j, uint64_t *v, int max, int *n)
{
    *n = 0;
    if (!jexpect(j, '['))
        return false;
    if (jeat(j, ']'))
        return true;
    do {
        if (*n == max)
            return jfail(j, "more than %d values", max);
        if (!juint(j, &v[(*n)++]))
            return false;
    } while (jeat(j, ','));
    return jexpect(j, ']');
}

static bool parse_tensor(jp_t *j, st_tensor_t *t)
{
    bool have_dtype = false, have_shape = false, have_offsets = false;
    if (!jexpect(j, '{'))
        return false;
    if (!jeat(j, '}')) {
        do {
            char *key = NULL;
            if (!jstring(j, &key) || !jexpect(j, ':')) {
                free(key);
                return false;
            }
            bool ok;
            if (!strcmp(key, "dtype")) {
                char *dt = NULL;
                ok = jstring(j, &dt);
                if (ok && strlen(dt) >= sizeof t->dtype)
                    ok = jfail(j, "dtype '%.20s...' too long", dt);
                if (ok)
                    snprintf(t->dtype, sizeof t->dtype, "%s", dt);
                free(dt);
                have_dtype = true;
            } else if (!strcmp(key, "shape")) {
                ok = juint_array(j, t->shape, ST_MAX_DIMS, &t->ndim);
                have_shape = true;
            } else if (!strcmp(key, "data_offsets")) {
                uint64_t v[2];
                int n = 0;
                ok = juint_array(j, v, 2, &n) && (n == 2 || jfail(j, "data_offsets needs 2 values"));
                t->begin = v[0];
                t->end = v[1];
                have_offsets = true;
            } else {
                ok = jskip(j, 1);
            }
            free(key);
            if (!ok)
                return false;
        } while (jeat(j, ','));
        if (!jexpect(j, '}'))
            return false;
    }
    if (!have_dtype || !have_shape || !have_offsets)
        return jfail(j, "tensor '%s' lacks %s", t->name,
                     !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
    return true;
}

static bool parse_metadata(jp_t *j, st_header_t *h)
{
    jws(j);
    if ((size_t)(j->end - j->p) >= 4 && !memcmp(j->p, "null", 4)) {
        j->p += 4;
        return true;
    }
    if (!jexpect(j, '{'))
        return false;
    if (jeat(j, '}'))
        return true;
    do {
        char *key = NULL, *val = NULL;
        bool ok = jstring(j, &key) && jexpect(j, ':');
        if (ok) {
            jws(j);
            ok = j->p < j->end && *j->p == '"' ? jstring(j, &val)
                                                : jfail(j, "__metadata__ values must be strings");
        }
        if (ok && !strcmp(key, "model_spec")) {
            free(h->model_spec);
            h->model_spec = val;
            val = NULL;
        }
        free(key);
        free(val);
        if (!ok)
            return false;
    } while (jeat(j, ','));
    return jexpect(j, '}');
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const st_tensor_t *)a)->name, ((const st_tensor_t *)b)->name);
}

static int cmp_begin(const void *a, const void *b)
{
    const st_tensor_t *x = *(const st_tensor_t *const *)a, *y = *(const st_tensor_t *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Sizes and offsets: every tensor's byte range has its shape's size, and
 * the ranges tile the data section exactly (the reference implementation's
 * rule: no gap, no overlap, nothing after the last). */
static rt_status check_layout(const char *path, st_header_t *h)
{
    for (int i = 0; i < h->n; i++) {
        st_tensor_t *t = &h->t[i];
        if (t->end < t->begin)
            return rt_fail(RT_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin",
                           path, t->name, (unsigned long long)t->begin, (unsigned long long)t->end);
        size_t es = dtype_size(t->dtype);
        if (!es)
            continue;  /* unknown dtype: a mismatch, reported by the caller */
        uint64_t bytes = es;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] && bytes > UINT64_MAX / t->shape[d])
                return rt_fail(RT_ERR_FORMAT, "%s: tensor '%s': shape too large", path, t->name);
            bytes *= t->shape[d];
        }
        if (t->end - t->begin != bytes)
            return rt_fail(RT_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes; %s of its shape needs %llu",
                           path, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                           (unsigned long long)(t->end - t->begin), t->dtype, (unsigned long long)bytes);
    }
    size_t count = h->n > 0 ? (size_t)h->n : 1;
    st_tensor_t **by = malloc(sizeof *by * count);
    CHECK_ALLOC(by, sizeof *by * count);
    for (int i = 0; i < h->n; i++)
        by[i] = &h->t[i];
    qsort(by, (size_t)h->n, sizeof *by, cmp_begin);
    uint64_t at = 0;
    const char *prev = NULL;
    rt_status st = RT_OK;
    for (int i = 0; i < h->n && st == RT_OK; i++) {
        if (by[i]->begin != at)
            st = rt_fail(RT_ERR_FORMAT, "%s: tensor data %s: %s%s%s ends at byte %llu, '%s' begins at %llu",
                         path, by[i]->begin > at ? "leaves a gap" : "overlaps", prev ? "'" : "",
                         prev ? prev : "the data section start", prev ? "'" : "", (unsigned long long)at,
                         by[i]->name, (unsigned long long)by[i]->begin);
        at = by[i]->end;
        prev = by[i]->name;
    }
    free(by);
    TRY(st);
    if (at != h->data_len)
        return rt_fail(RT_ERR_FORMAT, "%s: the tensors cover %llu bytes of data but the file has %llu after the header",
                       path, (unsigned long long)at, (unsigned long long)h->data_len);
    return RT_OK;
}

static rt_status read_all(int fd, void *buf, size_t n, uint64_t off, const char *path)
{
    unsigned char *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return rt_fail(RT_ERR_IO, "%s: read: %s", path, strerror(errno));
        if (r == 0)
            return rt_fail(RT_ERR_FORMAT, "%s: file ends early (at byte %llu)", path, (unsigned long long)off);
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return RT_OK;
}

/* Opens path and parses its header (tensors sorted by name, names unique,
 * layout checked); *fd stays open for the data. */
static rt_status header_read(const char *path, st_header_t *h, int *fd_out)
{
    memset(h, 0, sizeof *h);
    *fd_out = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rt_fail(RT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    rt_status st = RT_OK;
    char *text = NULL;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = rt_fail(RT_ERR_FORMAT, "%s: not a regular file", path);
        goto out;
    }
    uint64_t size = (uint64_t)sb.st_size, n = 0;
    unsigned char len8[8];
    if (size < 8) {
        st = rt_fail(RT_ERR_FORMAT, "%s: not a safetensors file (%llu bytes, shorter than the 8-byte header length)",
                     path, (unsigned long long)size);
        goto out;
    }
    TRY_GOTO(st, read_all(fd, len8, 8, 0, path), out);
    for (int i = 7; i >= 0; i--)
        n = n << 8 | len8[i];
    if (n > SAFETENSORS_MAX_HEADER || n > size - 8) {
        st = rt_fail(RT_ERR_FORMAT, "%s: not a safetensors file: header length %llu %s", path,
                     (unsigned long long)n,
                     n > SAFETENSORS_MAX_HEADER ? "is over the 100 MB limit" : "runs past the end of the file");
        goto out;
    }
    text = malloc(n ? n : 1);
    if (!text) {
        st = rt_fail(RT_ERR_NOMEM, "cannot allocate %llu bytes", (unsigned long long)n);
        goto out;
    }
    TRY_GOTO(st, read_all(fd, text, n, 8, path), out);
    h->data_start = 8 + n;
    h->data_len = size - h->data_start;

    jp_t j = {.start = text, .p = text, .end = text + n};
    bool meta = false;
    if (jexpect(&j, '{') && !jeat(&j, '}')) {
        do {
            char *key = NULL;
            if (!jstring(&j, &key) || !jexpect(&j, ':')) {
                free(key);
                break;
            }
            if (!strcmp(key, "__metadata__")) {
                free(key);
                if (meta) {
                    jfail(&j, "a second __metadata__");
                    break;
                }
                meta = true;
                if (!parse_metadata(&j, h))
                    break;
                continue;
            }
            if (h->n == h->cap) {
                int cap = h->cap ? 2 * h->cap : 64;
                st_tensor_t *t = realloc(h->t, sizeof *t * (size_t)cap);
                if (!t) {
                    free(key);
                    j.nomem = true;
                    jfail(&j, "out of memory");
                    break;
                }
                h->t = t;
                h->cap = cap;
            }
            st_tensor_t *t = &h->t[h->n++];
            memset(t, 0, sizeof *t);
            t->name = key;
            if (!parse_tensor(&j, t))
                break;
        } while (jeat(&j, ','));
        if (!j.bad)
            jexpect(&j, '}');
    }
    jws(&j);
    if (!j.bad && j.p != j.end)
        jfail(&j, "text after the header's object");
    if (j.bad) {
        st = rt_fail(j.nomem ? RT_ERR_NOMEM : RT_ERR_FORMAT, "%s: not a safetensors file: bad JSON header: %s",
                     path, j.why);
        goto out;
    }
    qsort(h->t, (size_t)h->n, sizeof *h->t, cmp_name);
    for (int i = 1; i < h->n; i++)
        if (!strcmp(h->t[i - 1].name, h->t[i].name)) {
            st = rt_fail(RT_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", path, h->t[i].name);
            goto out;
        }
    st = check_layout(path, h);
out:
    free(text);
    if (st != RT_OK) {
        close(fd);
        header_free(h);
        return st;
    }
    *fd_out = fd;
    return RT_OK;
}

static st_tensor_t *header_find(const st_header_t *h, const char *name)
{
    st_tensor_t key = {.name = (char *)name};
    return h->n ? bsearch(&key, h->t, (size_t)h->n, sizeof *h->t, cmp_name) : NULL;
}

rt_status safetensors_read_spec(const char *path, char *buf, size_t size)
{
    st_header_t h;
    int fd;
    TRY(header_read(path, &h, &fd));
    close(fd);
    snprintf(buf, size, "%s", h.model_spec ? h.model_spec : "");
    header_free(&h);
    return RT_OK;
}

/* ---- reading ------------------------------------------------------------------ */

static void shape_text(char *buf, size_t size, int ndim, const uint64_t *u, const int64_t *s)
{
    size_t o = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && o < size; d++)
        o += (size_t)snprintf(buf + o, size - o, "%s%lld", d ? ", " : "",
                              u ? (long long)u[d] : (long long)s[d]);
    if (o < size)
        snprintf(buf + o, size - o, "]");
}

static bool same_shape(const st_tensor_t *t, const param_entry_t *e)
{
    if (t->ndim != e->ndim)
        return false;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] != (uint64_t)e->shape[d])
            return false;
    return true;
}

static bool transposed(const st_tensor_t *t, const param_entry_t *e)
{
    return t->ndim == 2 && e->ndim == 2 && t->shape[0] == (uint64_t)e->shape[1] &&
           t->shape[1] == (uint64_t)e->shape[0];
}

/* One tensor's data as float32 into out (numel elements). */
static rt_status read_tensor(int fd, const st_header_t *h, const st_tensor_t *t, float *out,
                             size_t numel, const char *path)
{
    uint64_t off = h->data_start + t->begin;
    if (!strcmp(t->dtype, "F32"))
        return read_all(fd, out, numel * sizeof(float), off, path);
    size_t bytes = (size_t)(t->end - t->begin);
    void *raw = malloc(bytes ? bytes : 1);
    CHECK_ALLOC(raw, bytes);
    rt_status st = read_all(fd, raw, bytes, off, path);
    if (st == RT_OK)
        to_float(t->dtype, raw, out, numel);
    free(raw);
    return st;
}

static const param_entry_t *tie_target(const param_registry_t *reg, const safetensors_tie_t *ties,
                                       int nties, const char *alias)
{
    for (int i = 0; i < nties; i++)
        if (!strcmp(ties[i].alias, alias)) {
            int k = param_find(reg, ties[i].name);
            return k >= 0 ? &reg->entries[k] : NULL;
        }
    return NULL;
}

rt_status safetensors_read(const char *path, const param_registry_t *reg, float *arena,
                           const safetensors_tie_t *ties, int nties, safetensors_report_t *report)
{
    memset(report, 0, sizeof *report);
    st_header_t h;
    int fd;
    TRY(header_read(path, &h, &fd));
    sbuf_t prob = {0};
    char a[128], b[128];
    /* the model's parameters, in its order */
    for (int i = 0; i < reg->count; i++) {
        const param_entry_t *e = &reg->entries[i];
        const st_tensor_t *t = header_find(&h, e->name);
        shape_text(b, sizeof b, e->ndim, NULL, e->shape);
        if (!t) {
            sb_printf(&prob, "missing: %s (the model's shape %s)\n", e->name, b);
            report->nproblems++;
            continue;
        }
        shape_text(a, sizeof a, t->ndim, t->shape, NULL);
        if (!dtype_is_float(t->dtype)) {
            sb_printf(&prob, "wrong dtype: %s is %s in the file; F32, F16, BF16 or F64 is read\n", e->name,
                      t->dtype);
            report->nproblems++;
        }
        if (!same_shape(t, e)) {
            sb_printf(&prob, "wrong shape: %s is %s in the file, the model's is %s%s\n", e->name, a, b,
                      transposed(t, e) ? " (transposed: weights are [out, in])" : "");
            report->nproblems++;
        }
    }
    /* the file's tensors the model does not have, in name order */
    for (int i = 0; i < h.n; i++) {
        const st_tensor_t *t = &h.t[i];
        if (param_find(reg, t->name) >= 0)
            continue;
        shape_text(a, sizeof a, t->ndim, t->shape, NULL);
        const param_entry_t *e = tie_target(reg, ties, nties, t->name);
        if (!e) {
            sb_printf(&prob, "unexpected: %s %s %s (the model has no such parameter)\n", t->name, t->dtype, a);
            report->nproblems++;
        } else if (!dtype_is_float(t->dtype) || !same_shape(t, e)) {
            shape_text(b, sizeof b, e->ndim, NULL, e->shape);
            sb_printf(&prob, "wrong shape or dtype: %s is %s %s in the file; it is tied to %s, %s\n", t->name,
                      t->dtype, a, e->name, b);
            report->nproblems++;
        }
    }
    rt_status st = RT_OK;
    if (prob.nomem) {
        st = rt_fail(RT_ERR_NOMEM, "cannot allocate the list of mismatches");
        goto out;
    }
    if (report->nproblems) {
        st = rt_fail(RT_ERR_MISMATCH, "%s: %d mismatch%s against the model's parameters", path,
                     report->nproblems, report->nproblems > 1 ? "es" : "");
        goto out;
    }
    for (int i = 0; i < reg->count && st == RT_OK; i++) {
        const param_entry_t *e = &reg->entries[i];
        const st_tensor_t *t = header_find(&h, e->name);
        st = read_tensor(fd, &h, t, arena + e->offset, (size_t)e->numel, path);
        report->converted += strcmp(t->dtype, "F32") != 0;
    }
    /* an alias holds the same values as its parameter, or the file is not
     * the tied model's */
    for (int i = 0; i < h.n && st == RT_OK; i++) {
        const st_tensor_t *t = &h.t[i];
        const param_entry_t *e = param_find(reg, t->name) < 0 ? tie_target(reg, ties, nties, t->name) : NULL;
        if (!e)
            continue;
        float *tmp = malloc(sizeof(float) * (size_t)(e->numel ? e->numel : 1));
        if (!tmp) {
            st = rt_fail(RT_ERR_NOMEM, "cannot allocate %zu bytes", sizeof(float) * (size_t)e->numel);
            break;
        }
        st = read_tensor(fd, &h, t, tmp, (size_t)e->numel, path);
        if (st == RT_OK && memcmp(tmp, arena + e->offset, sizeof(float) * (size_t)e->numel) != 0) {
            sb_printf(&prob, "tied: %s differs from %s (the model holds one tensor for both)\n", t->name,
                      e->name);
            report->nproblems++;
            st = rt_fail(RT_ERR_MISMATCH, "%s: 1 mismatch against the model's parameters", path);
        }
        free(tmp);
    }
out:
    close(fd);
    header_free(&h);
    report->problems = prob.s;
    if (!report->nproblems) {
        free(report->problems);
        report->problems = NULL;
    }
    return st;
}

void safetensors_report_free(safetensors_report_t *report)
{
    free(report->problems);
    memset(report, 0, sizeof *report);
}

/* ---- writing ------------------------------------------------------------------ */

static rt_status write_all(int fd, const void *buf, size_t n, const char *path)
{
    const unsigned char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return rt_fail(RT_ERR_IO, "%s: write: %s", path, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return RT_OK;
}

/* fsync of the directory that holds path, so that the rename is durable;
 * a file system that cannot fsync a directory is not a failure. */
static rt_status fsync_parent(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return rt_fail(RT_ERR_IO, "%s: open for fsync: %s", dir, strerror(errno));
    int rc = fsync(fd), e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL && e != ENOTSUP)
        return rt_fail(RT_ERR_IO, "%s: fsync: %s", dir, strerror(e));
    return RT_OK;
}

rt_status safetensors_write(const param_registry_t *reg, const float *arena,
                            const char *model_spec, const char *path)
{
    CHECK_ARG(reg && arena && model_spec && path && *path, "safetensors_write: bad arguments");
    sbuf_t hdr = {0};
    sb_printf(&hdr, "{");
    uint64_t at = 0;
    for (int i = 0; i < reg->count; i++) {
        const param_entry_t *e = &reg->entries[i];
        uint64_t bytes = (uint64_t)e->numel * sizeof(float);
        sb_json_string(&hdr, e->name);
        sb_printf(&hdr, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++)
            sb_printf(&hdr, "%s%lld", d ? "," : "", (long long)e->shape[d]);
        sb_printf(&hdr, "],\"data_offsets\":[%llu,%llu]},", (unsigned long long)at,
                  (unsigned long long)(at + bytes));
        at += bytes;
    }
    sb_printf(&hdr, "\"__metadata__\":{\"format\":\"pt\",\"model_spec\":");
    sb_json_string(&hdr, model_spec);
    sb_printf(&hdr, "}}");
    /* spaces up to the next multiple of 8, so that the data (and every
     * float32 tensor in it) starts aligned in a mapped file */
    while ((8 + hdr.len) % 8)
        sb_printf(&hdr, " ");
    if (hdr.nomem) {
        free(hdr.s);
        return rt_fail(RT_ERR_NOMEM, "cannot allocate the safetensors header");
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)hdr.len >> (8 * i));

    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) {
        free(hdr.s);
        return rt_fail(RT_ERR_NOMEM, "cannot allocate %zu bytes", tlen);
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    rt_status st = RT_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = rt_fail(RT_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    TRY_GOTO(st, write_all(fd, len8, sizeof len8, tmp), fail);
    TRY_GOTO(st, write_all(fd, hdr.s, hdr.len, tmp), fail);
    for (int i = 0; i < reg->count; i++) {
        const param_entry_t *e = &reg->entries[i];
        TRY_GOTO(st, write_all(fd, arena + e->offset, (size_t)e->numel * sizeof(float), tmp), fail);
    }
    if (fsync(fd) != 0) {
        st = rt_fail(RT_ERR_IO, "%s: fsync: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        st = rt_fail(RT_ERR_IO, "%s: close: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        st = rt_fail(RT_ERR_IO, "rename %s to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    st = fsync_parent(path);
    goto out;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
out:
    free(tmp);
    free(hdr.s);
    return st;
}
