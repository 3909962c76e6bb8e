/* ckpt_read.c - opens a checkpoint, checks its metadata, and reads arrays
 * by name into caller buffers with type, shape and CRC-32C checks. */
#define _POSIX_C_SOURCE 200809L /* posix_fadvise, strdup */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/crc32c.h"
#include "common/hdf5_util.h"
#include "trainer/ckpt/ckpt_internal.h"

struct ckpt_reader {
    hid_t file;
    int fd; /* the sec2 driver's descriptor, for read-ahead hints; -1 if unknown */
    char *path;
    ckpt_meta_t meta;
};

rt_status ckpt_open(const char *path, ckpt_reader_t **out)
{
    CHECK_ARG(path && out, "ckpt_open: no path");
    rt_hdf5_quiet();
    *out = NULL;
    ckpt_reader_t *r = calloc(1, sizeof *r);
    CHECK_ALLOC(r, sizeof *r);
    r->path = strdup(path);
    if (!r->path) {
        free(r);
        return rt_fail(RT_ERR_NOMEM, "ckpt_open: out of memory");
    }
    rt_status st;
    r->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (r->file < 0) {
        st = ckpt_h5_fail(RT_ERR_FORMAT, "cannot open checkpoint %s (missing, truncated or not HDF5)", path);
        goto fail;
    }
    TRY_GOTO(st, ckpt_meta_load(r->file, path, &r->meta), fail_file);
    void *handle = NULL;
    r->fd = (H5Fget_vfd_handle(r->file, H5P_DEFAULT, &handle) >= 0 && handle) ? *(int *)handle : -1;
    H5Eclear2(H5E_DEFAULT);
    *out = r;
    return RT_OK;
fail_file:
    H5Fclose(r->file);
fail:
    free(r->path);
    free(r);
    return st;
}

void ckpt_close(ckpt_reader_t *r)
{
    if (!r)
        return;
    H5Fclose(r->file);
    free((char *)r->meta.model_spec);
    free((char *)r->meta.config_json);
    free(r->path);
    free(r);
}

const ckpt_meta_t *ckpt_reader_meta(const ckpt_reader_t *r)
{
    return &r->meta;
}

hid_t ckpt_reader_file(const ckpt_reader_t *r)
{
    return r->file;
}

int ckpt_reader_fd(const ckpt_reader_t *r)
{
    return r->fd;
}

void ckpt_readahead(int fd, hid_t ds, size_t from, size_t len)
{
    if (fd < 0 || len == 0)
        return;
    haddr_t base = H5Dget_offset(ds); /* HADDR_UNDEF unless contiguous and allocated */
    if (base == HADDR_UNDEF) {
        H5Eclear2(H5E_DEFAULT);
        return;
    }
    posix_fadvise(fd, (off_t)(base + from), (off_t)len, POSIX_FADV_WILLNEED);
}

const char *ckpt_reader_path(const ckpt_reader_t *r)
{
    return r->path;
}

rt_status ckpt_expect_spec(const ckpt_reader_t *r, const char *model_spec)
{
    if (strcmp(r->meta.model_spec, model_spec) != 0)
        return rt_fail(RT_ERR_MISMATCH,
                       "checkpoint %s is for model '%s' but this run's model is '%s'",
                       r->path, r->meta.model_spec, model_spec);
    return RT_OK;
}

int ckpt_has_array(const ckpt_reader_t *r, const char *name)
{
    /* H5Lexists fails on a missing intermediate group, so walk the path. */
    char buf[CKPT_NAME_MAX];
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof buf)
        return 0;
    memcpy(buf, name, len + 1);
    for (size_t i = 0; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (H5Lexists(r->file, buf, H5P_DEFAULT) <= 0)
            return 0;
        buf[i] = saved;
    }
    H5O_info_t info;
    if (H5Oget_info_by_name2(r->file, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
        return 0;
    return info.type == H5O_TYPE_DATASET;
}

/* Opens dataset name and reads its type and shape. */
static rt_status dataset_open(const ckpt_reader_t *r, const char *name, hid_t *ds, rt_dtype *type,
                              int *rank, int64_t *dims)
{
    if (!ckpt_has_array(r, name))
        return rt_fail(RT_ERR_FORMAT, "checkpoint %s has no dataset %s", r->path, name);
    *ds = H5Dopen2(r->file, name, H5P_DEFAULT);
    if (*ds < 0)
        return ckpt_h5_fail(RT_ERR_HDF5, "H5Dopen2");
    rt_status st = RT_OK;
    hid_t t = H5Dget_type(*ds);
    hid_t sp = H5Dget_space(*ds);
    if (t < 0 || sp < 0) {
        st = ckpt_h5_fail(RT_ERR_HDF5, "H5Dget_type");
        goto done;
    }
    *type = ckpt_dtype_of_h5(t);
    if (*type == RT_DTYPE_COUNT) {
        st = rt_fail(RT_ERR_FORMAT, "checkpoint %s: dataset %s has a type ringtrain does not store", r->path, name);
        goto done;
    }
    int nd = H5Sget_simple_extent_ndims(sp);
    if (nd < 0 || nd > CKPT_MAX_RANK) {
        st = rt_fail(RT_ERR_FORMAT, "checkpoint %s: dataset %s has rank %d", r->path, name, nd);
        goto done;
    }
    hsize_t h[CKPT_MAX_RANK] = {0};
    H5Sget_simple_extent_dims(sp, h, NULL);
    *rank = nd;
    for (int d = 0; d < CKPT_MAX_RANK; d++)
        dims[d] = d < nd ? (int64_t)h[d] : 0;
done:
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    if (st != RT_OK)
        H5Dclose(*ds);
    return st;
}

rt_status ckpt_array_info(const ckpt_reader_t *r, const char *name, rt_dtype *type, int *rank, int64_t *dims)
{
    hid_t ds;
    TRY(dataset_open(r, name, &ds, type, rank, dims));
    H5Dclose(ds);
    return RT_OK;
}

static void shape_text(char *buf, size_t len, int rank, const int64_t *dims)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < rank && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, "%s%" PRId64, d ? "," : "", dims[d]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
}

/* Large arrays are read in blocks of whole rows straight into the caller's
 * buffer while a second thread checksums the blocks already read, so the
 * checksum adds little to the time of the read itself. */
#define PIPE_MIN (8u << 20)
#define PIPE_BLOCK (16u << 20)

typedef struct {
    const unsigned char *data;
    size_t total;
    size_t ready;   /* bytes read so far (guarded by mu) */
    int failed;     /* the reader gave up (guarded by mu) */
    uint32_t crc;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} crc_pipe;

static void *crc_pipe_run(void *arg)
{
    crc_pipe *p = arg;
    size_t done = 0;
    uint32_t c = 0;
    while (done < p->total) {
        pthread_mutex_lock(&p->mu);
        while (p->ready == done && !p->failed)
            pthread_cond_wait(&p->cv, &p->mu);
        size_t upto = p->ready;
        int failed = p->failed;
        pthread_mutex_unlock(&p->mu);
        if (failed)
            break;
        c = crc32c_update(c, p->data + done, upto - done);
        done = upto;
    }
    p->crc = c;
    return NULL;
}

static void crc_pipe_publish(crc_pipe *p, size_t ready, int failed)
{
    pthread_mutex_lock(&p->mu);
    p->ready = ready;
    p->failed = failed;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static rt_status dataset_read_pipelined(hid_t ds, int fd, rt_dtype type, int rank, const int64_t *dims,
                                        void *dst, uint32_t *crc)
{
    hsize_t h[CKPT_MAX_RANK];
    size_t row = rt_dtype_size(type);
    for (int d = 0; d < rank; d++) {
        h[d] = (hsize_t)dims[d];
        if (d > 0)
            row *= (size_t)dims[d];
    }
    hsize_t rows_per_block = row >= PIPE_BLOCK ? 1 : PIPE_BLOCK / row;
    crc_pipe p = {.data = dst, .total = row * (size_t)h[0]};
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    pthread_t tid;
    if (pthread_create(&tid, NULL, crc_pipe_run, &p) != 0) {
        pthread_cond_destroy(&p.cv);
        pthread_mutex_destroy(&p.mu);
        if (H5Dread(ds, ckpt_h5_mem_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
            return ckpt_h5_fail(RT_ERR_HDF5, "H5Dread");
        *crc = crc32c(dst, p.total);
        return RT_OK;
    }
    rt_status st = RT_OK;
    hid_t fsp = H5Dget_space(ds);
    hid_t msp = H5Screate_simple(rank, h, NULL);
    if (fsp < 0 || msp < 0)
        st = ckpt_h5_fail(RT_ERR_HDF5, "H5Dget_space");
    for (hsize_t r0 = 0; st == RT_OK && r0 < h[0]; r0 += rows_per_block) {
        hsize_t start[CKPT_MAX_RANK] = {0}, count[CKPT_MAX_RANK];
        memcpy(count, h, sizeof count);
        start[0] = r0;
        count[0] = h[0] - r0 < rows_per_block ? h[0] - r0 : rows_per_block;
        /* Ask for the next block now, so the disk reads it while this one
         * is copied out of the page cache. */
        size_t next = row * (size_t)(r0 + count[0]);
        ckpt_readahead(fd, ds, next, p.total - next < PIPE_BLOCK ? p.total - next : PIPE_BLOCK);
        if (H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Sselect_hyperslab(msp, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dread(ds, ckpt_h5_mem_type(type), msp, fsp, H5P_DEFAULT, dst) < 0) {
            st = ckpt_h5_fail(RT_ERR_HDF5, "H5Dread");
            break;
        }
        crc_pipe_publish(&p, row * (size_t)(r0 + count[0]), 0);
    }
    if (st != RT_OK)
        crc_pipe_publish(&p, p.ready, 1);
    pthread_join(tid, NULL);
    *crc = p.crc;
    if (msp >= 0)
        H5Sclose(msp);
    if (fsp >= 0)
        H5Sclose(fsp);
    pthread_cond_destroy(&p.cv);
    pthread_mutex_destroy(&p.mu);
    return st;
}

rt_status ckpt_read_array(ckpt_reader_t *r, const ckpt_array_t *a)
{
    CHECK_ARG(r && a && a->name, "ckpt_read_array: no reader or array");
    hid_t ds;
    rt_dtype type;
    int rank;
    int64_t dims[CKPT_MAX_RANK];
    TRY(dataset_open(r, a->name, &ds, &type, &rank, dims));
    rt_status st = RT_OK;
    int same = type == a->type && rank == a->rank;
    for (int d = 0; same && d < rank; d++)
        same = dims[d] == a->dims[d];
    if (!same) {
        char have[96], want[96];
        shape_text(have, sizeof have, rank, dims);
        shape_text(want, sizeof want, a->rank, a->dims);
        st = rt_fail(RT_ERR_MISMATCH, "checkpoint %s: dataset %s is %s%s, expected %s%s", r->path, a->name,
                     rt_dtype_name(type), have, rt_dtype_name(a->type), want);
        goto close_ds;
    }
    int64_t count = ckpt_array_count(a);
    uint32_t want_crc, got_crc = 0;
    st = ckpt_attr_read_u32(ds, "crc32c", &want_crc);
    if (st != RT_OK) {
        st = rt_fail_context(st, "checkpoint %s: dataset %s", r->path, a->name);
        goto close_ds;
    }
    size_t bytes = (size_t)count * rt_dtype_size(type);
    if (count > 0) {
        if (bytes >= PIPE_MIN && rank > 0)
            st = dataset_read_pipelined(ds, r->fd, type, rank, dims, a->data, &got_crc);
        else if (H5Dread(ds, ckpt_h5_mem_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, a->data) < 0)
            st = ckpt_h5_fail(RT_ERR_HDF5, "H5Dread");
        else
            got_crc = crc32c(a->data, bytes);
        if (st != RT_OK) {
            st = rt_fail_context(st, "checkpoint %s: dataset %s", r->path, a->name);
            goto close_ds;
        }
    }
    if (got_crc != want_crc)
        st = rt_fail(RT_ERR_FORMAT, "checkpoint %s: dataset %s fails its checksum (crc32c stored 0x%08x, read 0x%08x)",
                     r->path, a->name, want_crc, got_crc);
close_ds:
    H5Dclose(ds);
    return st;
}

rt_status ckpt_read_arrays(ckpt_reader_t *r, const ckpt_array_t *arrays, int n)
{
    for (int i = 0; i < n; i++)
        TRY(ckpt_read_array(r, &arrays[i]));
    return RT_OK;
}

rt_status ckpt_read_meta(const char *path, ckpt_meta_t *meta)
{
    ckpt_reader_t *r;
    TRY(ckpt_open(path, &r));
    *meta = r->meta;
    r->meta.model_spec = r->meta.config_json = NULL; /* ownership moves to meta */
    ckpt_close(r);
    return RT_OK;
}

void ckpt_meta_free(ckpt_meta_t *meta)
{
    if (!meta)
        return;
    free((char *)meta->model_spec);
    free((char *)meta->config_json);
    meta->model_spec = meta->config_json = NULL;
}
