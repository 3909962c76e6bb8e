/* dataset_read.c - opening and validating dataset files (checksums
 * included), and reading records from memory or by offset (pread, checking
 * each block's checksum at its first read) without calling HDF5 after open. */
/* POSIX 2008: pread, strdup, O_CLOEXEC, O_DIRECTORY */
#define _POSIX_C_SOURCE 200809L
#include "data/dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/check.h"
#include "common/crc32c.h"
#include "common/hdf5_util.h"
#include "data/dataset_crc.h"
#include "data/dataset_h5.h"

#define DATASET_DEFAULT_MEMORY (1LL << 30)

struct dataset {
    char *path;
    dataset_info_t info;
    void *data;            /* inputs or tokens as stored, when in memory */
    int32_t *labels;       /* classification: always in memory */
    int fd;                /* when not in memory: raw reads at data_offset */
    int64_t data_offset;
    size_t elem_size;
    /* read by offset with a block table: each block is checked against its
     * CRC the first time a read touches it (any thread; a block checked
     * twice at once is harmless) */
    const char *array;     /* "/inputs" or "/tokens" */
    int64_t array_bytes;
    uint32_t *blocks;
    int64_t block_bytes, nblocks;
    atomic_uchar *checked;
    unsigned unchecked_mask;  /* arrays without a checksum, bits of array_names */
};

const char *dataset_kind_name(dataset_kind kind)
{
    switch (kind) {
    case DATASET_CLASSIFICATION: return "classification";
    case DATASET_TOKENS: return "tokens";
    }
    return "unknown";
}

const char *dataset_dtype_name(rt_dtype type)
{
    switch (type) {
    case RT_DTYPE_U8: return "uint8";
    case RT_DTYPE_U16: return "uint16";
    case RT_DTYPE_U32: return "uint32";
    case RT_DTYPE_U64: return "uint64";
    case RT_DTYPE_I32: return "int32";
    case RT_DTYPE_I64: return "int64";
    case RT_DTYPE_F32: return "float32";
    case RT_DTYPE_F64: return "float64";
    case RT_DTYPE_BF16: return "bfloat16";
    case RT_DTYPE_COUNT: return "integer"; /* label_type: an integer type rt_dtype lacks */
    }
    return "unknown";
}

const dataset_info_t *dataset_info(const dataset_t *d) { return &d->info; }
const char *dataset_path(const dataset_t *d) { return d->path; }
const int32_t *dataset_labels(const dataset_t *d) { return d->labels; }

rt_status dataset_expect_kind(const dataset_t *d, dataset_kind kind)
{
    if (d->info.kind != kind)
        return rt_fail(RT_ERR_FORMAT, "%s: is a %s dataset, expected %s", d->path,
                       dataset_kind_name(d->info.kind), dataset_kind_name(kind));
    return RT_OK;
}

/* The arrays a file may hold, in the order notes list them. */
static const char *const array_names[] = {"/inputs", "/labels", "/tokens"};

/* Notes an array that has no checksum to check (listed at the end of open). */
static void note_unchecked(dataset_t *d, const char *name)
{
    for (unsigned i = 0; i < sizeof array_names / sizeof array_names[0]; i++)
        if (!strcmp(name, array_names[i]))
            d->unchecked_mask |= 1u << i;
}

static void list_unchecked(dataset_t *d)
{
    char *u = d->info.unchecked;
    u[0] = '\0';
    for (unsigned i = 0; i < sizeof array_names / sizeof array_names[0]; i++)
        if (d->unchecked_mask & 1u << i) {
            size_t len = strlen(u);
            snprintf(u + len, sizeof d->info.unchecked - len, "%s%s", len ? ", " : "",
                     array_names[i]);
        }
}

static rt_status checksum_mismatch(const char *name, uint32_t want, uint32_t got)
{
    return rt_fail(RT_ERR_CORRUPT,
                   "%s fails its checksum (crc32c stored 0x%08x, computed 0x%08x): the file is "
                   "corrupt", name, want, got);
}

/* pread of exactly len bytes at off, retrying short reads. */
static rt_status pread_full(const char *path, int fd, void *buf, size_t len, off_t off)
{
    char *p = buf;
    while (len > 0) {
        ssize_t got = pread(fd, p, len, off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return rt_fail(RT_ERR_IO, "%s: read at byte %lld: %s", path, (long long)off,
                           got < 0 ? strerror(errno) : "unexpected end of file");
        p += got;
        off += got;
        len -= (size_t)got;
    }
    return RT_OK;
}

/* An array read by offset: its block table, so that reads check blocks as
 * they come; without one, the whole array now, against its crc32c. */
static rt_status checks_by_offset(dataset_t *d, hid_t file, hid_t dset, const char *name,
                                  int64_t bytes)
{
    uint32_t want = 0;
    bool present = false;
    TRY(dataset_crc_read_attr(dset, &want, &present));
    TRY(dataset_crc_read_blocks(file, name + 1, bytes, &d->blocks, &d->block_bytes,
                                &d->nblocks));
    if (d->blocks) {
        d->array = name;
        d->array_bytes = bytes;
        d->checked = calloc((size_t)(d->nblocks > 0 ? d->nblocks : 1), sizeof *d->checked);
        CHECK_ALLOC(d->checked, (size_t)d->nblocks);
        return RT_OK;
    }
    if (!present) {
        note_unchecked(d, name);
        return RT_OK;
    }
    dataset_crc_t c;
    TRY(dataset_crc_init(&c, bytes, 0));
    const size_t piece = (size_t)8 << 20;
    char *buf = malloc(piece);
    CHECK_ALLOC(buf, piece);
    rt_status st = RT_OK;
    for (int64_t done = 0; done < bytes && st == RT_OK;) {
        size_t k = bytes - done < (int64_t)piece ? (size_t)(bytes - done) : piece;
        st = pread_full(d->path, d->fd, buf, k, (off_t)(d->data_offset + done));
        if (st == RT_OK)
            dataset_crc_feed(&c, buf, k, 1);  /* the file's bytes are little-endian */
        done += (int64_t)k;
    }
    free(buf);
    if (st == RT_OK && c.whole != want)
        st = checksum_mismatch(name, want, c.whole);
    dataset_crc_free(&c);
    return st;
}

/* Checks the blocks of the array that bytes [off, off + len) fall in and
 * that no read has checked yet. */
static rt_status check_blocks(const dataset_t *d, int64_t off, int64_t len)
{
    if (!d->blocks || len <= 0)
        return RT_OK;
    rt_status st = RT_OK;
    char *buf = NULL;
    for (int64_t b = off / d->block_bytes; b <= (off + len - 1) / d->block_bytes; b++) {
        if (atomic_load_explicit(&d->checked[b], memory_order_acquire))
            continue;
        int64_t start = b * d->block_bytes;
        int64_t n = d->array_bytes - start < d->block_bytes ? d->array_bytes - start
                                                             : d->block_bytes;
        if (!buf && !(buf = malloc((size_t)d->block_bytes))) {
            st = rt_fail(RT_ERR_NOMEM, "cannot allocate %lld bytes", (long long)d->block_bytes);
            break;
        }
        st = pread_full(d->path, d->fd, buf, (size_t)n, (off_t)(d->data_offset + start));
        if (st != RT_OK)
            break;
        uint32_t got = crc32c(buf, (size_t)n);
        if (got != d->blocks[b]) {
            st = rt_fail(RT_ERR_CORRUPT,
                         "%s: %s fails its checksum in block %lld of %lld (bytes %lld to %lld "
                         "of the array; crc32c stored 0x%08x, computed 0x%08x): the file is "
                         "corrupt", d->path, d->array, (long long)b, (long long)d->nblocks,
                         (long long)start, (long long)(start + n), d->blocks[b], got);
            break;
        }
        atomic_store_explicit(&d->checked[b], 1, memory_order_release);
    }
    free(buf);
    return st;
}

/* Opens /name and returns its dims; fails when missing. */
static rt_status open_array(hid_t file, const char *name, hid_t *dset, int *rank, hsize_t *dims)
{
    htri_t exists = H5Lexists(file, name, H5P_DEFAULT);
    CHECK_HDF5(exists);
    if (!exists)
        return rt_fail(RT_ERR_FORMAT, "missing dataset %s", name);
    *dset = H5Dopen2(file, name, H5P_DEFAULT);
    CHECK_HDF5(*dset);
    hid_t space = H5Dget_space(*dset);
    CHECK_HDF5(space);
    int r = H5Sget_simple_extent_ndims(space);
    if (r < 1 || r > DATASET_MAX_DIMS + 1) {
        H5Sclose(space);
        return rt_fail(RT_ERR_FORMAT, "dataset %s has %d dimensions", name, r);
    }
    H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    *rank = r;
    return RT_OK;
}

/* Decides memory or offset reads for the big array and loads what is held
 * in memory. */
static rt_status load_array(dataset_t *d, hid_t file, hid_t dset, const char *name,
                            int64_t elems, const dataset_options_t *opt)
{
    const bool verify = !(opt && opt->skip_checksums);
    int64_t limit = opt && opt->max_memory_bytes >= 0 ? opt->max_memory_bytes
                                                      : DATASET_DEFAULT_MEMORY;
    int64_t bytes = elems * (int64_t)d->elem_size;
    bool direct = false;
    if (bytes > limit) {
        /* offset reads need contiguous, unfiltered, little-endian storage */
        hid_t dcpl = H5Dget_create_plist(dset);
        CHECK_HDF5(dcpl);
        H5D_layout_t layout = H5Pget_layout(dcpl);
        int nfilters = H5Pget_nfilters(dcpl);
        H5Pclose(dcpl);
        hid_t ftype = H5Dget_type(dset);
        CHECK_HDF5(ftype);
        H5T_order_t order = H5Tget_order(ftype);
        H5Tclose(ftype);
        haddr_t off = H5Dget_offset(dset);
        if (layout != H5D_CONTIGUOUS || nfilters != 0 || off == HADDR_UNDEF ||
            (order != H5T_ORDER_LE && order != H5T_ORDER_NONE))
            return rt_fail(RT_ERR_FORMAT,
                           "dataset %s (%lld bytes) is too large to hold in memory and is not "
                           "stored contiguous, unfiltered and little-endian",
                           name, (long long)bytes);
        d->data_offset = (int64_t)off;
        direct = true;
    }
    if (direct) {
        d->fd = open(d->path, O_RDONLY | O_CLOEXEC);
        if (d->fd < 0)
            return rt_fail(RT_ERR_IO, "open: %s", strerror(errno));
        struct stat sb;
        if (fstat(d->fd, &sb) != 0 || sb.st_size < d->data_offset + bytes)
            return rt_fail(RT_ERR_FORMAT, "dataset %s extends past the end of the file", name);
        d->info.in_memory = false;
        return verify ? checks_by_offset(d, file, dset, name, bytes) : RT_OK;
    }
    d->data = malloc(bytes > 0 ? (size_t)bytes : 1);
    CHECK_ALLOC(d->data, bytes);
    CHECK_HDF5(H5Dread(dset, h5_native_type(d->info.input_type), H5S_ALL, H5S_ALL,
                       H5P_DEFAULT, d->data));
    d->info.in_memory = true;
    if (!verify)
        return RT_OK;
    /* in memory already: the whole array against its crc32c, now */
    uint32_t want = 0;
    bool present = false;
    TRY(dataset_crc_read_attr(dset, &want, &present));
    if (!present) {
        note_unchecked(d, name);
        return RT_OK;
    }
    dataset_crc_t c;
    TRY(dataset_crc_init(&c, bytes, 0));
    dataset_crc_feed(&c, d->data, (size_t)elems, d->elem_size);
    uint32_t got = c.whole;
    dataset_crc_free(&c);
    return got == want ? RT_OK : checksum_mismatch(name, want, got);
}

/* /labels against its crc32c, read as stored, before their values are
 * judged: a flipped bit reads as corruption, not as a label out of range. */
static rt_status check_labels_crc(dataset_t *d, hid_t dset, const dataset_options_t *opt)
{
    if (opt && opt->skip_checksums)
        return RT_OK;
    uint32_t want = 0;
    bool present = false;
    TRY(dataset_crc_read_attr(dset, &want, &present));
    if (!present) {
        note_unchecked(d, "/labels");
        return RT_OK;
    }
    int64_t bytes;
    TRY(dataset_crc_array_bytes(dset, &bytes));
    dataset_crc_t c;
    TRY(dataset_crc_init(&c, bytes, 0));
    rt_status st = dataset_crc_stream(dset, &c);
    uint32_t got = c.whole;
    dataset_crc_free(&c);
    if (st != RT_OK)
        return st;
    return got == want ? RT_OK : checksum_mismatch("/labels", want, got);
}

static rt_status check_attr_match(hid_t file, const char *name, int64_t want)
{
    int64_t v;
    int n;
    bool present;
    TRY(h5_attr_i64(file, name, &v, 1, &n, &present));
    if (present && v != want)
        return rt_fail(RT_ERR_FORMAT, "attribute %s=%lld does not match the data (%lld)", name,
                       (long long)v, (long long)want);
    return RT_OK;
}

static rt_status required_int(hid_t file, const char *name, int64_t lo, int64_t hi, int64_t *out)
{
    int n;
    bool present;
    TRY(h5_attr_i64(file, name, out, 1, &n, &present));
    if (!present)
        return rt_fail(RT_ERR_FORMAT, "missing root attribute %s", name);
    if (*out < lo || *out > hi)
        return rt_fail(RT_ERR_FORMAT, "attribute %s=%lld is outside [%lld, %lld]", name,
                       (long long)*out, (long long)lo, (long long)hi);
    return RT_OK;
}

/* Labels are validated in 64 bits, pieces at a time, before they are
 * narrowed to int32: HDF5's conversion to int32 would clamp a label of 2^40
 * to 2147483647 and the message would name a value the file does not hold.
 * uint64 labels are read as uint64 so that values above INT64_MAX are named
 * exactly too. */
#define LABEL_PIECE ((hsize_t)1 << 16)

static rt_status read_labels(hid_t dset, bool unsigned64, int64_t count, int num_classes,
                             int32_t *out)
{
    rt_status st = RT_OK;
    hid_t fspace = H5Dget_space(dset), mspace = H5I_INVALID_HID;
    int64_t *buf = malloc(LABEL_PIECE * sizeof *buf);
    if (fspace < 0 || !buf) {
        st = buf ? rt_hdf5_error("H5Dget_space(/labels)", __FILE__, __LINE__)
                 : rt_fail(RT_ERR_NOMEM, "cannot allocate %zu bytes",
                           (size_t)(LABEL_PIECE * sizeof *buf));
        goto done;
    }
    for (int64_t first = 0; first < count; first += (int64_t)LABEL_PIECE) {
        hsize_t off = (hsize_t)first;
        hsize_t n = (hsize_t)(count - first) < LABEL_PIECE ? (hsize_t)(count - first) : LABEL_PIECE;
        if (mspace >= 0)
            H5Sclose(mspace);
        mspace = H5Screate_simple(1, &n, NULL);
        if (mspace < 0 || H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &off, NULL, &n, NULL) < 0 ||
            H5Dread(dset, unsigned64 ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT64, mspace, fspace,
                    H5P_DEFAULT, buf) < 0) {
            st = rt_hdf5_error("H5Dread(/labels)", __FILE__, __LINE__);
            goto done;
        }
        for (hsize_t k = 0; k < n; k++) {
            uint64_t u = (uint64_t)buf[k];
            bool ok = unsigned64 ? u < (uint64_t)num_classes
                                 : buf[k] >= 0 && buf[k] < (int64_t)num_classes;
            if (!ok) {
                char value[32];
                if (unsigned64)
                    snprintf(value, sizeof value, "%llu", (unsigned long long)u);
                else
                    snprintf(value, sizeof value, "%lld", (long long)buf[k]);
                st = rt_fail(RT_ERR_FORMAT, "label %s of record %lld is outside [0, %d)", value,
                             (long long)(first + (int64_t)k), num_classes);
                goto done;
            }
            out[first + (int64_t)k] = (int32_t)buf[k];
        }
    }
done:
    if (mspace >= 0)
        H5Sclose(mspace);
    if (fspace >= 0)
        H5Sclose(fspace);
    free(buf);
    return st;
}

static rt_status open_classification(dataset_t *d, hid_t file, const dataset_options_t *opt)
{
    rt_status st = RT_OK;
    hid_t inputs = H5I_INVALID_HID, labels = H5I_INVALID_HID, ftype = H5I_INVALID_HID;
    hsize_t idims[DATASET_MAX_DIMS + 1], ldims[DATASET_MAX_DIMS + 1];
    int irank = 0, lrank = 0;
    int64_t classes;
    dataset_info_t *info = &d->info;

    TRY_GOTO(st, required_int(file, "num_classes", 1, INT32_MAX, &classes), done);
    info->num_classes = (int)classes;
    TRY_GOTO(st, open_array(file, "/inputs", &inputs, &irank, idims), done);
    TRY_GOTO(st, open_array(file, "/labels", &labels, &lrank, ldims), done);
    if (irank < 2) {
        st = rt_fail(RT_ERR_FORMAT, "/inputs must be [N, ...] with at least 2 dimensions");
        goto done;
    }
    if (lrank != 1 || ldims[0] != idims[0]) {
        st = rt_fail(RT_ERR_FORMAT, "/labels must be [%llu] like /inputs' first dimension",
                     (unsigned long long)idims[0]);
        goto done;
    }
    info->count = (int64_t)idims[0];
    if (info->count < 1) {
        st = rt_fail(RT_ERR_FORMAT, "no records");
        goto done;
    }
    info->record_dims = irank - 1;
    info->features = 1;
    for (int i = 1; i < irank; i++) {
        info->record_shape[i - 1] = (int64_t)idims[i];
        info->features *= (int64_t)idims[i];
    }
    if (info->features < 1) {
        st = rt_fail(RT_ERR_FORMAT, "/inputs has empty records");
        goto done;
    }
    ftype = H5Dget_type(inputs);
    info->input_type = h5_type_classify(ftype, NULL);
    if (info->input_type != RT_DTYPE_U8 && info->input_type != RT_DTYPE_F32) {
        st = rt_fail(RT_ERR_FORMAT, "/inputs must be uint8 or float32");
        goto done;
    }
    H5Tclose(ftype);
    ftype = H5Dget_type(labels);
    bool integer_labels = false;
    info->label_type = h5_type_classify(ftype, &integer_labels);
    if (!integer_labels) {
        st = rt_fail(RT_ERR_FORMAT, "/labels must be an integer type (uint8 or int32)");
        goto done;
    }

    TRY_GOTO(st, check_attr_match(file, "num_records", info->count), done);
    {
        int64_t shape[DATASET_MAX_DIMS];
        int n;
        bool present;
        TRY_GOTO(st, h5_attr_i64(file, "input_shape", shape, DATASET_MAX_DIMS, &n, &present),
                 done);
        bool same = n == info->record_dims;
        for (int i = 0; same && i < n; i++)
            same = shape[i] == info->record_shape[i];
        if (present && !same) {
            st = rt_fail(RT_ERR_FORMAT, "attribute input_shape does not match /inputs");
            goto done;
        }
    }

    d->labels = malloc((size_t)info->count * sizeof *d->labels);
    if (!d->labels) {
        st = rt_fail(RT_ERR_NOMEM, "cannot allocate the labels of %lld records", (long long)info->count);
        goto done;
    }
    TRY_GOTO(st, check_labels_crc(d, labels, opt), done);
    TRY_GOTO(st, read_labels(labels, info->label_type == RT_DTYPE_U64, info->count,
                             info->num_classes, d->labels), done);
    d->elem_size = rt_dtype_size(info->input_type);
    TRY_GOTO(st, load_array(d, file, inputs, "/inputs", info->count * info->features, opt),
             done);
done:
    if (ftype >= 0)
        H5Tclose(ftype);
    if (labels >= 0)
        H5Dclose(labels);
    if (inputs >= 0)
        H5Dclose(inputs);
    return st;
}

static rt_status check_tokens(const dataset_t *d, const void *data, int64_t first, int64_t n)
{
    if (d->info.input_type != RT_DTYPE_U16)
        return RT_OK; /* uint8 tokens are below vocab_size 256 by construction */
    const uint16_t *t = data;
    for (int64_t i = 0; i < n; i++)
        if (t[i] >= d->info.vocab_size)
            return rt_fail(RT_ERR_FORMAT, "%s: token %u at %lld is not below vocab_size %d",
                           d->path, t[i], (long long)(first + i), d->info.vocab_size);
    return RT_OK;
}

static rt_status open_tokens(dataset_t *d, hid_t file, const dataset_options_t *opt)
{
    rt_status st = RT_OK;
    hid_t tokens = H5I_INVALID_HID, ftype = H5I_INVALID_HID;
    hsize_t dims[DATASET_MAX_DIMS + 1];
    int rank = 0;
    int64_t vocab;
    dataset_info_t *info = &d->info;

    TRY_GOTO(st, required_int(file, "vocab_size", 1, 65536, &vocab), done);
    info->vocab_size = (int)vocab;
    TRY_GOTO(st, open_array(file, "/tokens", &tokens, &rank, dims), done);
    if (rank != 1) {
        st = rt_fail(RT_ERR_FORMAT, "/tokens must be one-dimensional");
        goto done;
    }
    info->count = (int64_t)dims[0];
    info->features = 1;
    if (info->count < 1) {
        st = rt_fail(RT_ERR_FORMAT, "no tokens");
        goto done;
    }
    ftype = H5Dget_type(tokens);
    info->input_type = h5_type_classify(ftype, NULL);
    if (info->input_type != RT_DTYPE_U8 && info->input_type != RT_DTYPE_U16) {
        st = rt_fail(RT_ERR_FORMAT, "/tokens must be uint8 or uint16");
        goto done;
    }
    if (info->input_type == RT_DTYPE_U8 && vocab > 256) {
        st = rt_fail(RT_ERR_FORMAT, "uint8 /tokens cannot hold vocab_size %lld", (long long)vocab);
        goto done;
    }
    TRY_GOTO(st, check_attr_match(file, "num_tokens", info->count), done);
    d->elem_size = rt_dtype_size(info->input_type);
    TRY_GOTO(st, load_array(d, file, tokens, "/tokens", info->count, opt), done);
    if (d->data)
        TRY_GOTO(st, check_tokens(d, d->data, 0, info->count), done);
done:
    if (ftype >= 0)
        H5Tclose(ftype);
    if (tokens >= 0)
        H5Dclose(tokens);
    return st;
}

/* Reads the root attributes that say what the file is, then the arrays. */
static rt_status open_file(dataset_t *d, hid_t file, const dataset_options_t *opt)
{
    char text[128];
    bool present;
    TRY(h5_attr_string(file, "format", text, sizeof text, &present));
    if (!present)
        return rt_fail(RT_ERR_FORMAT, "not a ringtrain dataset (no 'format' attribute)");
    if (strcmp(text, DATASET_FORMAT) != 0)
        return rt_fail(RT_ERR_FORMAT, "not a ringtrain dataset (format is '%s', expected '%s')",
                       text, DATASET_FORMAT);
    int64_t version;
    int n;
    TRY(h5_attr_i64(file, "format_version", &version, 1, &n, &present));
    if (!present)
        return rt_fail(RT_ERR_FORMAT, "missing root attribute format_version");
    if (version > DATASET_FORMAT_VERSION)
        return rt_fail(RT_ERR_FORMAT,
                       "format_version %lld is newer than this build reads (%d); upgrade ringtrain",
                       (long long)version, DATASET_FORMAT_VERSION);
    if (version < 1)
        return rt_fail(RT_ERR_FORMAT, "invalid format_version %lld", (long long)version);
    d->info.format_version = (int)version;
    TRY(h5_attr_string(file, "kind", text, sizeof text, &present));
    if (!present)
        return rt_fail(RT_ERR_FORMAT, "missing root attribute kind");
    if (!strcmp(text, "classification")) {
        d->info.kind = DATASET_CLASSIFICATION;
        return open_classification(d, file, opt);
    }
    if (!strcmp(text, "tokens")) {
        d->info.kind = DATASET_TOKENS;
        return open_tokens(d, file, opt);
    }
    return rt_fail(RT_ERR_FORMAT, "unknown dataset kind '%s' (expected classification or tokens)",
                   text);
}

rt_status dataset_open_opts(const char *path, const dataset_options_t *opt, dataset_t **out)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return rt_fail(RT_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return rt_fail(RT_ERR_IO, "%s: not a regular file", path);
    if (sb.st_size == 0)
        return rt_fail(RT_ERR_FORMAT, "%s: empty file (not an HDF5 dataset)", path);
    rt_hdf5_quiet();
    htri_t is_h5 = H5Fis_hdf5(path);
    if (is_h5 <= 0)
        return rt_fail(RT_ERR_FORMAT, "%s: not an HDF5 file", path);

    dataset_t *d = calloc(1, sizeof *d);
    CHECK_ALLOC(d, sizeof *d);
    d->fd = -1;
    d->path = strdup(path);
    rt_status st = RT_OK;
    if (!d->path) {
        st = rt_fail(RT_ERR_NOMEM, "path");
        goto fail;
    }
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        /* HDF5's own reason, e.g. "truncated file: eof = ..." */
        rt_hdf5_error("H5Fopen", __FILE__, __LINE__);
        st = rt_fail_context(RT_ERR_FORMAT, "%s: cannot open as HDF5 (truncated or corrupt?)",
                             path);
        goto fail;
    }
    st = open_file(d, file, opt);
    H5Fclose(file);
    list_unchecked(d);
    if (st != RT_OK) {
        rt_fail_context(st, "%s", path);
        goto fail;
    }
    *out = d;
    return RT_OK;
fail:
    dataset_close(d);
    return st;
}

rt_status dataset_open(const char *path, dataset_t **out)
{
    return dataset_open_opts(path, NULL, out);
}

void dataset_close(dataset_t *d)
{
    if (!d)
        return;
    if (d->fd >= 0)
        close(d->fd);
    free(d->blocks);
    free(d->checked);
    free(d->data);
    free(d->labels);
    free(d->path);
    free(d);
}

/* Elements [elem, elem + n) of the array read by offset, after the blocks
 * they lie in have passed their checksums. */
static rt_status read_at(const dataset_t *d, int64_t elem, int64_t n, void *buf)
{
    const int64_t first = elem * (int64_t)d->elem_size, len = n * (int64_t)d->elem_size;
    TRY(check_blocks(d, first, len));
    return pread_full(d->path, d->fd, buf, (size_t)len, (off_t)(d->data_offset + first));
}

static void convert_row(const dataset_t *d, const void *src, float *dst)
{
    int64_t f = d->info.features;
    if (d->info.input_type == RT_DTYPE_U8) {
        /* the definition itself; CMake compiles this file with
         * -ftree-vectorize, which makes it SIMD divisions (faster than a
         * table lookup, and the same IEEE results) */
        const uint8_t *s = src;
        for (int64_t k = 0; k < f; k++)
            dst[k] = (float)s[k] / 255.0f;
    } else {
        memcpy(dst, src, (size_t)f * sizeof(float));
    }
}

rt_status dataset_gather(const dataset_t *d, const int64_t *indices, int64_t n, float *inputs,
                         int32_t *labels)
{
    if (d->info.kind != DATASET_CLASSIFICATION)
        return rt_fail(RT_ERR_INVALID, "%s: dataset_gather needs a classification dataset",
                       d->path);
    int64_t f = d->info.features;
    void *row = NULL;
    if (inputs && !d->info.in_memory) {
        row = malloc((size_t)f * d->elem_size);
        CHECK_ALLOC(row, (size_t)f * d->elem_size);
    }
    rt_status st = RT_OK;
    for (int64_t i = 0; i < n; i++) {
        int64_t idx = indices[i];
        if (idx < 0 || idx >= d->info.count) {
            st = rt_fail(RT_ERR_INVALID, "%s: record %lld out of range [0, %lld)", d->path,
                         (long long)idx, (long long)d->info.count);
            break;
        }
        if (labels)
            labels[i] = d->labels[idx];
        if (!inputs)
            continue;
        const void *src;
        if (d->info.in_memory) {
            src = (const char *)d->data + (size_t)idx * (size_t)f * d->elem_size;
        } else {
            st = read_at(d, idx * f, f, row);
            if (st != RT_OK)
                break;
            src = row;
        }
        convert_row(d, src, inputs + i * f);
    }
    free(row);
    return st;
}

rt_status dataset_read_tokens(const dataset_t *d, int64_t offset, int64_t n, int32_t *out)
{
    if (d->info.kind != DATASET_TOKENS)
        return rt_fail(RT_ERR_INVALID, "%s: dataset_read_tokens needs a tokens dataset", d->path);
    if (offset < 0 || n < 0 || offset + n > d->info.count)
        return rt_fail(RT_ERR_INVALID, "%s: tokens [%lld, %lld) out of range [0, %lld)", d->path,
                       (long long)offset, (long long)(offset + n), (long long)d->info.count);
    const void *src;
    void *tmp = NULL;
    if (d->info.in_memory) {
        src = (const char *)d->data + (size_t)offset * d->elem_size;
    } else {
        tmp = malloc((size_t)n * d->elem_size + 1);
        CHECK_ALLOC(tmp, (size_t)n * d->elem_size + 1);
        rt_status st = read_at(d, offset, n, tmp);
        if (st == RT_OK)
            st = check_tokens(d, tmp, offset, n);
        if (st != RT_OK) {
            free(tmp);
            return st;
        }
        src = tmp;
    }
    if (d->info.input_type == RT_DTYPE_U8) {
        const uint8_t *s = src;
        for (int64_t i = 0; i < n; i++)
            out[i] = s[i];
    } else {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++)
            out[i] = s[i];
    }
    free(tmp);
    return RT_OK;
}
