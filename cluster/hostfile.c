/* hostfile.c - strict parser for Open MPI hostfiles (see hostfile.h). */
#define _DEFAULT_SOURCE /* strdup */
#include "cluster/hostfile.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/check.h"

#define HOSTFILE_MAX_BYTES (1 << 20)
#define HOSTFILE_LINE_MAX 4096

/* Open MPI 4.1 takes node names of letters, digits, '.' and '-' only: its
 * node-name regex refuses anything else ('_', the ':' of an IPv6 address)
 * after the job has been set up (mpirun exit 1), so they are refused here. */
static bool host_char_ok(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-';
}

/* Parses a decimal int with an optional '-' (a value below 1 gets its own
 * message); returns false for anything else, '+' included: Open MPI's
 * hostfile parser reads "+2" as -1. */
static bool parse_count(const char *s, size_t len, long *out)
{
    if (len == 0 || len > 9)
        return false;
    long v = 0;
    size_t i = 0;
    bool neg = false;
    if (s[0] == '-') {
        neg = true;
        i = 1;
        if (len == 1)
            return false;
    }
    for (; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return true;
}

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
        p++;
    return p;
}

/* Parses one line [p, end) with comments already removed. Adds a host to
 * out, or nothing for a blank line. */
static rt_status parse_line(const char *name, int lineno, const char *p, const char *end,
                            hostfile_t *out, int *cap)
{
    p = skip_space(p, end);
    if (p == end)
        return RT_OK;
    const char *h = p;
    while (p < end && *p != ' ' && *p != '\t' && *p != '\r')
        p++;
    size_t hlen = (size_t)(p - h);
    if (hlen > HOSTFILE_HOST_MAX)
        return rt_fail(RT_ERR_USAGE, "%s:%d: host name longer than %d characters", name, lineno,
                       HOSTFILE_HOST_MAX);
    if (h[0] == '-')
        return rt_fail(RT_ERR_USAGE, "%s:%d: host name '%.*s' starts with '-'", name, lineno,
                       (int)hlen, h);
    for (size_t i = 0; i < hlen; i++)
        if (!host_char_ok(h[i])) {
            if (h[i] == '=')
                return rt_fail(RT_ERR_USAGE, "%s:%d: line starts with '%.*s', not a host name",
                               name, lineno, (int)hlen, h);
            if (h[i] == ':')
                return rt_fail(RT_ERR_USAGE, "%s:%d: '%.*s' is an IPv6 address, which Open MPI's "
                               "hostfile does not take; give the host's name", name, lineno,
                               (int)hlen, h);
            return rt_fail(RT_ERR_USAGE, "%s:%d: host name '%.*s' has a character outside "
                           "[A-Za-z0-9.-] (Open MPI takes node names of letters, digits, '.' and "
                           "'-' only)", name, lineno, (int)hlen, h);
        }
    for (int i = 0; i < out->count; i++)
        if (strlen(out->hosts[i].host) == hlen && !strncmp(out->hosts[i].host, h, hlen))
            return rt_fail(RT_ERR_USAGE, "%s:%d: duplicate host '%.*s' (first on line %d)", name,
                           lineno, (int)hlen, h, out->hosts[i].line);

    hostfile_entry_t e = {.slots = 0, .max_slots = 0, .line = lineno};
    memcpy(e.host, h, hlen);
    e.host[hlen] = '\0';
    bool seen_slots = false, seen_max = false;
    for (;;) {
        p = skip_space(p, end);
        if (p == end)
            break;
        /* key [ws] = [ws] value */
        const char *k = p;
        while (p < end && *p != '=' && *p != ' ' && *p != '\t' && *p != '\r')
            p++;
        size_t klen = (size_t)(p - k);
        p = skip_space(p, end);
        if (p == end || *p != '=')
            return rt_fail(RT_ERR_USAGE, "%s:%d: '%.*s' is not key=value", name, lineno,
                           (int)klen, k);
        p = skip_space(p + 1, end);
        const char *v = p;
        while (p < end && *p != ' ' && *p != '\t' && *p != '\r')
            p++;
        size_t vlen = (size_t)(p - v);
        bool is_slots = klen == 5 && !strncmp(k, "slots", 5);
        bool is_max = (klen == 9 && (!strncmp(k, "max_slots", 9) || !strncmp(k, "max-slots", 9)));
        if (!is_slots && !is_max)
            return rt_fail(RT_ERR_USAGE, "%s:%d: unknown key '%.*s' (expected slots or max_slots)",
                           name, lineno, (int)klen, k);
        if ((is_slots && seen_slots) || (is_max && seen_max))
            return rt_fail(RT_ERR_USAGE, "%s:%d: '%.*s' given twice", name, lineno, (int)klen, k);
        long n;
        if (vlen > 0 && v[0] == '+')
            return rt_fail(RT_ERR_USAGE, "%s:%d: %.*s='%.*s' has a sign; write %.*s=%.*s (Open "
                           "MPI's hostfile parser reads a '+' value as -1)", name, lineno,
                           (int)klen, k, (int)vlen, v, (int)klen, k, (int)vlen - 1, v + 1);
        if (!parse_count(v, vlen, &n))
            return rt_fail(RT_ERR_USAGE, "%s:%d: %.*s='%.*s' is not a number", name, lineno,
                           (int)klen, k, (int)vlen, v);
        if (n <= 0)
            return rt_fail(RT_ERR_USAGE, "%s:%d: %.*s=%ld must be at least 1", name, lineno,
                           (int)klen, k, n);
        if (is_slots) {
            e.slots = (int)n;
            seen_slots = true;
        } else {
            e.max_slots = (int)n;
            seen_max = true;
        }
    }
    if (!seen_slots)
        return rt_fail(RT_ERR_USAGE, "%s:%d: host '%s' has no slots=N (ringtrain needs the rank "
                       "count of every host)", name, lineno, e.host);
    if (seen_max && e.max_slots < e.slots)
        return rt_fail(RT_ERR_USAGE, "%s:%d: max_slots=%d is below slots=%d", name, lineno,
                       e.max_slots, e.slots);
    if (out->total_slots > INT_MAX - e.slots)
        return rt_fail(RT_ERR_USAGE, "%s:%d: too many slots in total", name, lineno);
    if (out->count == *cap) {
        int ncap = *cap ? *cap * 2 : 8;
        hostfile_entry_t *n2 = realloc(out->hosts, (size_t)ncap * sizeof *n2);
        CHECK_ALLOC(n2, (size_t)ncap * sizeof *n2);
        out->hosts = n2;
        *cap = ncap;
    }
    out->hosts[out->count++] = e;
    out->total_slots += e.slots;
    return RT_OK;
}

rt_status hostfile_parse_text(const char *name, const char *text, hostfile_t *out)
{
    memset(out, 0, sizeof *out);
    out->path = strdup(name);
    CHECK_ALLOC(out->path, strlen(name) + 1);
    int cap = 0, lineno = 0;
    rt_status st = RT_OK;
    const char *p = text;
    while (*p) {
        lineno++;
        const char *nl = strchr(p, '\n');
        const char *end = nl ? nl : p + strlen(p);
        if (end - p > HOSTFILE_LINE_MAX) {
            st = rt_fail(RT_ERR_USAGE, "%s:%d: line longer than %d characters", name, lineno,
                         HOSTFILE_LINE_MAX);
            goto fail;
        }
        const char *hash = memchr(p, '#', (size_t)(end - p));
        TRY_GOTO(st, parse_line(name, lineno, p, hash ? hash : end, out, &cap), fail);
        p = nl ? nl + 1 : end;
    }
    if (out->count == 0) {
        st = rt_fail(RT_ERR_USAGE, "%s:%d: no hosts in the hostfile (%d line%s, all blank or "
                     "comments)", name, lineno ? lineno : 1, lineno, lineno == 1 ? "" : "s");
        goto fail;
    }
    return RT_OK;
fail:
    hostfile_free(out);
    return st;
}

/* The whole file into a malloc'ed, NUL-terminated buffer: a text hostfile
 * of at most HOSTFILE_MAX_BYTES without NUL bytes (RT_ERR_USAGE otherwise). */
static rt_status read_text(const char *path, char **text, size_t *len)
{
    *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return rt_fail(RT_ERR_USAGE, "%s: cannot open hostfile: %s", path, strerror(errno));
    char *buf = malloc(HOSTFILE_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return rt_fail(RT_ERR_NOMEM, "cannot allocate %d bytes", HOSTFILE_MAX_BYTES + 1);
    }
    size_t n = fread(buf, 1, HOSTFILE_MAX_BYTES + 1, f);
    int err = ferror(f);
    fclose(f);
    rt_status st = RT_OK;
    if (err)
        st = rt_fail(RT_ERR_USAGE, "%s: read error", path);
    else if (n > HOSTFILE_MAX_BYTES)
        st = rt_fail(RT_ERR_USAGE, "%s: larger than %d bytes", path, HOSTFILE_MAX_BYTES);
    else if (memchr(buf, '\0', n))
        st = rt_fail(RT_ERR_USAGE, "%s: contains a NUL byte (not a text hostfile)", path);
    if (st != RT_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return RT_OK;
}

rt_status hostfile_load(const char *path, hostfile_t *out)
{
    memset(out, 0, sizeof *out);
    char *buf;
    size_t n;
    TRY(read_text(path, &buf, &n));
    rt_status st = hostfile_parse_text(path, buf, out);
    if (st == RT_OK)
        out->has_cr = memchr(buf, '\r', n) != NULL;
    free(buf);
    return st;
}

rt_status hostfile_write_lf(const char *path, int fd)
{
    char *buf;
    size_t n;
    TRY(read_text(path, &buf, &n));
    bool bad = false;
    /* "\r\n" becomes "\n"; any other '\r' a blank, as the parser reads it */
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\r' && i + 1 < n && buf[i + 1] == '\n')
            continue;
        buf[o++] = buf[i] == '\r' ? ' ' : buf[i];
    }
    for (size_t w = 0; !bad && w < o;) {
        ssize_t k = write(fd, buf + w, o - w);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            bad = true;
        else
            w += (size_t)k;
    }
    int e = errno;
    free(buf);
    if (bad)
        return rt_fail(RT_ERR_IO, "%s: cannot copy the hostfile without carriage returns: %s", path,
                       strerror(e));
    return RT_OK;
}

void hostfile_free(hostfile_t *hf)
{
    free(hf->path);
    free(hf->hosts);
    memset(hf, 0, sizeof *hf);
}

rt_status hostfile_check_np(const hostfile_t *hf, int np, bool oversubscribe)
{
    if (np < 1)
        return rt_fail(RT_ERR_USAGE, "-np %d: need at least 1 rank", np);
    long max_total = 0;
    bool all_max = true;
    for (int i = 0; i < hf->count; i++) {
        if (hf->hosts[i].max_slots == 0)
            all_max = false;
        max_total += hf->hosts[i].max_slots;
    }
    if (all_max && np > max_total) {
        const hostfile_entry_t *l = &hf->hosts[hf->count - 1];
        return rt_fail(RT_ERR_USAGE, "-np %d exceeds the %ld max_slots of %s (last host '%s' "
                       "on %s:%d); max_slots is a hard limit, even with --oversubscribe", np,
                       max_total, hf->path, l->host, hf->path, l->line);
    }
    if (np > hf->total_slots && !oversubscribe) {
        char hosts[512];
        size_t off = 0;
        hosts[0] = '\0';
        for (int i = 0; i < hf->count && off < sizeof hosts - 64; i++)
            off += (size_t)snprintf(hosts + off, sizeof hosts - off, "%s%s:%d %s slots=%d",
                                    i ? ", " : "", hf->path, hf->hosts[i].line,
                                    hf->hosts[i].host, hf->hosts[i].slots);
        return rt_fail(RT_ERR_USAGE, "-np %d exceeds the %d slots of the hostfile (%s); pass "
                       "--oversubscribe to run more ranks than slots", np, hf->total_slots,
                       hosts);
    }
    return RT_OK;
}
