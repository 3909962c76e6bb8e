/* hdf5_vlen_check.c - checks, from the file's own bytes, the global heap
 * collection that a variable-length string attribute points at, before
 * H5Aread is asked to follow it.
 *
 * Why: libhdf5 1.10.8 (Debian 12) parses a collection in
 * H5HG__cache_heap_deserialize with a loop that advances by each object's
 * stored size; an object 0 (the free space) whose size is 0 makes it loop
 * forever, inside H5Aread, on a damaged file. No HDF5 call reads a
 * variable-length attribute without that parse, so this file finds the
 * heap ID itself: the object header of the attribute's owner (version 1
 * or 2, with its continuation chunks), the attribute message of that name,
 * the heap address in its data; then walks the collection as HDF5 would
 * and refuses one on which that walk would not advance or would run past
 * its end. Anything it cannot follow (a shared or densely stored
 * attribute, a header that does not parse) is refused too: ringtrain and
 * h5py write neither for these attributes, and refusing is the safe side.
 * Layouts: the HDF5 File Format Specification, version 2/3 (object
 * headers IV.A.1, attribute message IV.A.2.m, global heap III.E). */
#define _POSIX_C_SOURCE 200809L
#include "common/hdf5_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/check.h"

#define OH_MAX_CHUNKS 64 /* a bound: continuation messages may form a cycle */
#define MSG_CONTINUATION 0x10
#define MSG_ATTRIBUTE 0x0C
#define MSG_ATTR_INFO 0x15
#define GCOL_HDR_FIXED 8 /* "GCOL", version, 3 reserved; then the size */
#define FH_MAX_BLOCKS 4096 /* a bound on the fractal heap blocks scanned */

typedef struct {
    FILE *f;
    uint64_t file_size;
    uint64_t base;   /* file offset of address 0 (the user block's size) */
    unsigned sa, ss; /* sizes of addresses and lengths */
    const char *attr;
    int found;           /* attribute messages of that name checked */
    uint64_t dense_heap; /* the Attribute Info message's fractal heap, or 0 */
    int blocks;          /* fractal heap blocks scanned */
} vctx_t;

static uint64_t get_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

static rt_status refuse(const vctx_t *c, const char *why)
{
    /* the callers name the file */
    return rt_fail(RT_ERR_FORMAT, "string attribute '%s': %s", c->attr, why);
}

/* n bytes at file address addr (relative to the base) into a new buffer. */
static rt_status read_at(const vctx_t *c, uint64_t addr, uint64_t n, uint8_t **out)
{
    *out = NULL;
    if (addr > c->file_size || c->base > c->file_size - addr ||
        n > c->file_size - c->base - addr)
        return refuse(c, "points past the end of the file");
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return rt_fail(RT_ERR_NOMEM, "attribute '%s': checking its value", c->attr);
    if (fseeko(c->f, (off_t)(c->base + addr), SEEK_SET) != 0 ||
        (n && fread(buf, 1, n, c->f) != n)) {
        free(buf);
        return rt_fail(RT_ERR_IO, "attribute '%s': reading the file to check it", c->attr);
    }
    *out = buf;
    return RT_OK;
}

/* Walks the global heap collection at addr as libhdf5's parser does. */
static rt_status check_collection(const vctx_t *c, uint64_t addr)
{
    uint8_t *hdr = NULL;
    uint64_t hdr_len = GCOL_HDR_FIXED + c->ss;
    TRY(read_at(c, addr, hdr_len, &hdr));
    if (memcmp(hdr, "GCOL", 4) != 0 || hdr[4] != 1) {
        free(hdr);
        return refuse(c, "its global heap collection is damaged (no GCOL header)");
    }
    uint64_t size = get_le(hdr + GCOL_HDR_FIXED, c->ss);
    free(hdr);
    if (size < hdr_len)
        return refuse(c, "its global heap collection is shorter than its header");
    uint8_t *col = NULL;
    TRY(read_at(c, addr, size, &col));
    /* an object: index (2), references (2), reserved (4), size (ss), data
     * aligned to 8; object 0, the free space, counts its header in its size */
    uint64_t objhdr = 8 + (uint64_t)c->ss;
    uint64_t pos = hdr_len;
    rt_status st = RT_OK;
    while (pos < size) {
        if (size - pos < objhdr)
            break; /* a tail too small for an object: free space */
        unsigned idx = (unsigned)get_le(col + pos, 2);
        uint64_t osize = get_le(col + pos + 8, c->ss);
        uint64_t need;
        if (idx > 0)
            need = osize > size ? size : objhdr + (osize + 7) / 8 * 8; /* too big: refused below */
        else
            need = osize;
        if (need == 0) {
            st = refuse(c, "its global heap collection has an empty free-space object "
                           "(libhdf5 would loop forever on it)");
            break;
        }
        if (need > size - pos) {
            st = refuse(c, "an object in its global heap collection runs past the collection");
            break;
        }
        pos += need;
    }
    free(col);
    return st;
}

/* An attribute message at m (len bytes available): if it is the attribute
 * c->attr, the collection its value points at is checked and counted in
 * c->found. strict: m is known to be an attribute message (an object
 * header's), so one that does not parse is refused; otherwise m is a
 * candidate position in a fractal heap block and a mismatch is skipped. */
static rt_status attr_message(vctx_t *c, const uint8_t *m, uint64_t len, bool strict)
{
    if (len < 8)
        return strict ? refuse(c, "a short attribute message") : RT_OK;
    unsigned version = m[0]; /* m[1]: reserved (v1) or sharing flags */
    uint64_t name_sz = get_le(m + 2, 2), dt_sz = get_le(m + 4, 2), ds_sz = get_le(m + 6, 2);
    uint64_t off = version == 3 ? 9 : 8;
    if (version < 1 || version > 3)
        return strict ? refuse(c, "an attribute message of an unknown version") : RT_OK;
    /* version 1 pads name, datatype and dataspace to multiples of 8 */
    uint64_t pad_name = version == 1 ? (name_sz + 7) / 8 * 8 : name_sz;
    uint64_t pad_dt = version == 1 ? (dt_sz + 7) / 8 * 8 : dt_sz;
    uint64_t pad_ds = version == 1 ? (ds_sz + 7) / 8 * 8 : ds_sz;
    size_t want = strlen(c->attr);
    if (off + name_sz > len)
        return strict ? refuse(c, "an attribute message shorter than its name") : RT_OK;
    if (name_sz != want + 1 || memcmp(m + off, c->attr, want + 1) != 0)
        return RT_OK;
    uint64_t data = off + pad_name + pad_dt + pad_ds;
    /* one element of a variable-length type on disk: its length (4 bytes),
     * then the global heap ID: the collection's address and an index */
    if (data > len || len - data < 4 + (uint64_t)c->sa + 4) {
        if (!strict && data > len)
            return RT_OK;
        return refuse(c, "its value is shorter than a variable-length string");
    }
    uint64_t heap = get_le(m + data + 4, c->sa);
    c->found++;
    /* address 0 is HDF5's null sequence: H5Aread does not follow it */
    return heap ? check_collection(c, heap) : RT_OK;
}

/* Walks the messages of one object header chunk [p, end): attribute
 * messages (checked), the Attribute Info message (dense storage: its
 * fractal heap kept in c->dense_heap), continuations (appended to cont). */
static rt_status walk_chunk(vctx_t *c, int oh_version, bool crt_order_flags, const uint8_t *p,
                            const uint8_t *end, uint64_t cont[][2], int *ncont)
{
    for (;;) {
        unsigned type, mflags;
        uint64_t size;
        if (oh_version == 1) {
            if (end - p < 8)
                return RT_OK;
            type = (unsigned)get_le(p, 2);
            size = get_le(p + 2, 2);
            mflags = p[4];
            p += 8;
        } else {
            unsigned hdr = crt_order_flags ? 6 : 4;
            if (end - p < hdr)
                return RT_OK; /* a gap at the chunk's end */
            type = p[0];
            size = get_le(p + 1, 2);
            mflags = p[3];
            p += hdr;
        }
        if (size > (uint64_t)(end - p))
            return refuse(c, "an object header message runs past its chunk");
        if (type == MSG_CONTINUATION) {
            if (size < (uint64_t)c->sa + c->ss)
                return refuse(c, "a short continuation message");
            if (*ncont == OH_MAX_CHUNKS)
                return refuse(c, "too many object header chunks");
            cont[*ncont][0] = get_le(p, c->sa);
            cont[*ncont][1] = get_le(p + c->sa, c->ss);
            ++*ncont;
        } else if (type == MSG_ATTRIBUTE) {
            /* shared: stored elsewhere, its name unknown from here */
            if (mflags & 0x02)
                return refuse(c, "a shared attribute message (not written by ringtrain or h5py)");
            TRY(attr_message(c, p, size, true));
        } else if (type == MSG_ATTR_INFO) {
            /* version 0, flags, [max creation index (2)], fractal heap address */
            uint64_t at = size >= 2 && (p[1] & 0x01) ? 4 : 2;
            if (size < at + c->sa)
                return refuse(c, "a short attribute info message");
            c->dense_heap = get_le(p + at, c->sa);
        }
        p += size;
    }
}

/* Every attribute message of loc's object header, version 1 or 2. */
static rt_status walk_header(vctx_t *c, uint64_t oh_addr)
{
    uint64_t cont[OH_MAX_CHUNKS][2];
    int ncont = 0;
    uint8_t *pre = NULL;
    /* the longest version 2 prefix: 4+1+1+16+4+8 bytes */
    uint64_t pre_len = 34;
    uint64_t avail = oh_addr <= c->file_size && c->base <= c->file_size - oh_addr
                         ? c->file_size - oh_addr - c->base
                         : 0;
    if (avail < pre_len)
        pre_len = avail;
    TRY(read_at(c, oh_addr, pre_len, &pre));
    int version;
    bool crt = false;
    uint64_t start, len;
    if (pre_len >= 16 && pre[0] == 1) {
        version = 1;
        len = get_le(pre + 8, 4);
        start = oh_addr + 16; /* a 12-byte prefix aligned to 8 */
    } else if (pre_len >= 7 && memcmp(pre, "OHDR", 4) == 0 && pre[4] == 2) {
        version = 2;
        unsigned flags = pre[5];
        crt = flags & 0x04;
        uint64_t off = 6 + (flags & 0x20 ? 16 : 0) + (flags & 0x10 ? 4 : 0);
        unsigned w = 1u << (flags & 0x03);
        if (off + w > pre_len) {
            free(pre);
            return refuse(c, "a truncated object header");
        }
        len = get_le(pre + off, w);
        start = oh_addr + off + w;
    } else {
        free(pre);
        return refuse(c, "an object header of an unknown version");
    }
    free(pre);
    for (int chunk = 0;; chunk++) {
        uint8_t *buf = NULL;
        TRY(read_at(c, start, len, &buf));
        const uint8_t *p = buf, *end = buf + len;
        if (version == 2 && chunk > 0) {
            /* a continuation chunk: "OCHK", messages, a checksum */
            if (len < 8 || memcmp(buf, "OCHK", 4) != 0) {
                free(buf);
                return refuse(c, "a damaged object header continuation");
            }
            p += 4;
            end -= 4;
        }
        rt_status st = walk_chunk(c, version, crt, p, end, cont, &ncont);
        free(buf);
        if (st != RT_OK)
            return st;
        if (chunk >= ncont)
            return RT_OK;
        start = cont[chunk][0];
        len = cont[chunk][1];
    }
}

/* ---- dense attribute storage: a fractal heap ------------------------------ */

typedef struct {
    unsigned width;         /* blocks per row */
    uint64_t start_size;    /* the first rows' direct block size */
    unsigned max_dir_rows;  /* rows of direct blocks */
    unsigned off_bytes;     /* a block's "block offset" field */
    unsigned csum;          /* direct blocks carry a checksum */
} fheap_t;

static unsigned log2u(uint64_t v)
{
    unsigned r = 0;
    while (v >>= 1)
        r++;
    return r;
}

static bool defined_addr(const vctx_t *c, uint64_t a)
{
    return c->sa == 8 ? a != UINT64_MAX : a != (((uint64_t)1 << (8 * c->sa)) - 1);
}

/* Every position of a direct block that could start the attribute's
 * message: the heap packs objects without separators, so each offset is
 * tried (a real message is one of them; a spurious match must point at a
 * good collection too, which errs on the side of refusing). */
static rt_status scan_direct(vctx_t *c, const fheap_t *h, uint64_t addr, uint64_t size)
{
    if (++c->blocks > FH_MAX_BLOCKS)
        return refuse(c, "too many fractal heap blocks");
    uint8_t *b = NULL;
    TRY(read_at(c, addr, size, &b));
    rt_status st = RT_OK;
    if (size < 5 + (uint64_t)c->sa + h->off_bytes || memcmp(b, "FHDB", 4) != 0) {
        st = refuse(c, "a damaged fractal heap direct block");
    } else {
        uint64_t first = 5 + c->sa + h->off_bytes + h->csum;
        for (uint64_t i = first; i < size && st == RT_OK; i++)
            st = attr_message(c, b + i, size - i, false);
    }
    free(b);
    return st;
}

/* An indirect block of nrows rows and its children. */
static rt_status scan_indirect(vctx_t *c, const fheap_t *h, uint64_t addr, unsigned nrows,
                               int depth)
{
    if (depth > 16 || ++c->blocks > FH_MAX_BLOCKS || nrows > 64)
        return refuse(c, "a damaged fractal heap (too deep or too many blocks)");
    uint64_t n = (uint64_t)nrows * h->width;
    uint64_t hdr = 5 + (uint64_t)c->sa + h->off_bytes;
    uint8_t *b = NULL;
    TRY(read_at(c, addr, hdr + n * c->sa, &b));
    if (memcmp(b, "FHIB", 4) != 0) {
        free(b);
        return refuse(c, "a damaged fractal heap indirect block");
    }
    rt_status st = RT_OK;
    for (unsigned r = 0; r < nrows && st == RT_OK; r++) {
        uint64_t row_size = r == 0 ? h->start_size : h->start_size << (r - 1);
        for (unsigned k = 0; k < h->width && st == RT_OK; k++) {
            uint64_t child = get_le(b + hdr + ((uint64_t)r * h->width + k) * c->sa, c->sa);
            if (!defined_addr(c, child))
                continue;
            if (r < h->max_dir_rows)
                st = scan_direct(c, h, child, row_size);
            else /* an indirect child: rows enough for its size */
                st = scan_indirect(c, h, child,
                                   log2u(row_size) - log2u(h->start_size * h->width) + 1,
                                   depth + 1);
        }
    }
    free(b);
    return st;
}

/* The attribute messages stored in the fractal heap at addr. */
static rt_status scan_dense(vctx_t *c, uint64_t addr)
{
    /* the header up to the root block's row count */
    uint64_t fixed = 4 + 1 + 2 + 2 + 1 + 4;
    uint64_t len = fixed + 12 * (uint64_t)c->ss + 3 * (uint64_t)c->sa + 2 + 2 + 2 + 2;
    uint8_t *b = NULL;
    TRY(read_at(c, addr, len, &b));
    if (memcmp(b, "FRHP", 4) != 0 || b[4] != 0) {
        free(b);
        return refuse(c, "a damaged fractal heap header (dense attribute storage)");
    }
    unsigned io_filters = (unsigned)get_le(b + 7, 2), flags = b[9];
    const uint8_t *p = b + fixed;
    p += c->ss + c->sa + c->ss + c->sa + 8 * (uint64_t)c->ss; /* counters, skipped */
    fheap_t h = {.width = (unsigned)get_le(p, 2), .csum = flags & 0x02 ? 4 : 0};
    p += 2;
    h.start_size = get_le(p, c->ss);
    uint64_t max_direct = get_le(p + c->ss, c->ss);
    unsigned max_bits = (unsigned)get_le(p + 2 * c->ss, 2);
    p += 2 * c->ss + 2 + 2; /* and the starting row count */
    uint64_t root = get_le(p, c->sa);
    unsigned root_rows = (unsigned)get_le(p + c->sa, 2);
    free(b);
    if (io_filters)
        return refuse(c, "a filtered fractal heap (not written by ringtrain or h5py)");
    if (h.width == 0 || h.width > 65536 || h.start_size == 0 || max_direct < h.start_size ||
        (h.start_size & (h.start_size - 1)) || (max_direct & (max_direct - 1)) ||
        max_bits == 0 || max_bits > 64)
        return refuse(c, "a damaged fractal heap header (dense attribute storage)");
    h.max_dir_rows = log2u(max_direct) - log2u(h.start_size) + 2;
    h.off_bytes = (max_bits + 7) / 8;
    if (!defined_addr(c, root))
        return RT_OK; /* an empty heap */
    if (root_rows == 0)
        return scan_direct(c, &h, root, h.start_size);
    return scan_indirect(c, &h, root, root_rows, 0);
}

rt_status h5_vlen_attr_check(hid_t loc, const char *name)
{
    vctx_t c = {.attr = name};
    char path[4096];
    ssize_t n = H5Fget_name(loc, path, sizeof path);
    if (n < 0 || (size_t)n >= sizeof path)
        return rt_fail(RT_ERR_HDF5, "attribute '%s': cannot get the file's name", name);
    hid_t file = H5Iget_file_id(loc);
    CHECK_HDF5(file);
    hid_t fcpl = H5Fget_create_plist(file);
    H5Fclose(file);
    CHECK_HDF5(fcpl);
    size_t sa = 0, ss = 0;
    hsize_t userblock = 0;
    herr_t e1 = H5Pget_sizes(fcpl, &sa, &ss), e2 = H5Pget_userblock(fcpl, &userblock);
    H5Pclose(fcpl);
    if (e1 < 0 || e2 < 0)
        return rt_hdf5_error("H5Pget_sizes", __FILE__, __LINE__);
    if (sa < 2 || sa > 8 || ss < 2 || ss > 8)
        return refuse(&c, "the file's address or length size is not 2 to 8 bytes");
    c.sa = (unsigned)sa;
    c.ss = (unsigned)ss;
    c.base = userblock;
    uint64_t oh_addr;
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t oi;
    haddr_t a;
    if (H5Oget_info3(loc, &oi, H5O_INFO_BASIC) < 0 ||
        H5VLnative_token_to_addr(loc, oi.token, &a) < 0)
        return rt_hdf5_error("H5Oget_info3", __FILE__, __LINE__);
    oh_addr = a;
#else
    H5O_info_t oi;
    if (H5Oget_info2(loc, &oi, H5O_INFO_BASIC) < 0)
        return rt_hdf5_error("H5Oget_info2", __FILE__, __LINE__);
    oh_addr = oi.addr;
#endif
    c.f = fopen(path, "rb");
    if (!c.f)
        return rt_fail(RT_ERR_IO, "attribute '%s': cannot open the file to check it: %s", name,
                       strerror(errno));
    struct stat sb;
    rt_status st = RT_OK;
    if (fstat(fileno(c.f), &sb) != 0) {
        st = rt_fail(RT_ERR_IO, "attribute '%s': cannot stat the file: %s", name, strerror(errno));
    } else {
        c.file_size = (uint64_t)sb.st_size;
        st = walk_header(&c, oh_addr);
        if (st == RT_OK && c.found == 0 && c.dense_heap && defined_addr(&c, c.dense_heap))
            st = scan_dense(&c, c.dense_heap);
        if (st == RT_OK && c.found == 0)
            st = refuse(&c, "its message was not found (damaged attribute storage)");
    }
    fclose(c.f);
    return st;
}
