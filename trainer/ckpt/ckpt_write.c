/* ckpt_write.c - writes a checkpoint so that it is either complete under
 * its final name or absent: temporary name, the datasets (large arrays
 * mostly with O_DIRECT, ckpt_direct.c), fsync, rename, fsync of the
 * directory. */
#define _GNU_SOURCE /* memfd_create */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/check.h"
#include "common/crc32c.h"
#include "common/hdf5_util.h"
#include "trainer/ckpt/ckpt_internal.h"

#define CKPT_PATH_MAX 4096

/* mkdir -p: creates dir and any missing parents. */
static rt_status dir_make(const char *dir)
{
    char buf[CKPT_PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof buf)
        return rt_fail(RT_ERR_INVALID, "checkpoint directory name '%s' is empty or too long", dir);
    memcpy(buf, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return rt_fail(RT_ERR_IO, "cannot create checkpoint directory %s: %s", buf, strerror(errno));
        buf[i] = saved;
    }
    struct stat sb;
    if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
        return rt_fail(RT_ERR_IO, "checkpoint directory %s is not a directory", dir);
    return RT_OK;
}

rt_status ckpt_dir_writable(const char *dir)
{
    CHECK_ARG(dir && *dir, "ckpt_dir_writable: no directory");
    char probe[CKPT_PATH_MAX];
    int n = snprintf(probe, sizeof probe, "%s/.write-probe.%ld", dir, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof probe)
        return rt_fail(RT_ERR_INVALID, "checkpoint directory name too long: %s", dir);
    /* What a checkpoint write does: create a file, and later remove one.
     * access(W_OK) would not do: it says yes to root on a read-only or
     * immutable directory, and knows nothing of NFS root squashing. */
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return rt_fail(RT_ERR_IO, "checkpoint directory %s is not writable: cannot create a file in it: %s", dir,
                       strerror(errno));
    close(fd);
    if (unlink(probe) < 0)
        return rt_fail(RT_ERR_IO, "checkpoint directory %s is not writable: cannot remove %s: %s", dir, probe,
                       strerror(errno));
    return RT_OK;
}

/* fsync of a file or directory by name. */
static rt_status path_fsync(const char *path, int dir)
{
    int fd = open(path, O_RDONLY | (dir ? O_DIRECTORY : 0));
    if (fd < 0)
        return rt_fail(RT_ERR_IO, "open %s for fsync: %s", path, strerror(errno));
    if (fsync(fd) < 0) {
        int e = errno;
        close(fd);
        return rt_fail(RT_ERR_IO, "fsync %s: %s", path, strerror(e));
    }
    close(fd);
    return RT_OK;
}

static rt_status arrays_check(const ckpt_array_t *arrays, int n)
{
    CHECK_ARG(n >= 0 && (n == 0 || arrays), "ckpt_write: %d arrays", n);
    for (int i = 0; i < n; i++) {
        const ckpt_array_t *a = &arrays[i];
        CHECK_ARG(a->name && a->name[0] && a->name[0] != '/' && strlen(a->name) < CKPT_NAME_MAX,
                  "ckpt_write: array %d has no usable name (relative path below the root)", i);
        CHECK_ARG(ckpt_h5_file_type(a->type) != H5I_INVALID_HID,
                  "ckpt_write: %s has type %s (%d), which a checkpoint does not store", a->name,
                  rt_dtype_name(a->type), (int)a->type);
        CHECK_ARG(a->rank >= 0 && a->rank <= CKPT_MAX_RANK, "ckpt_write: %s has rank %d", a->name, a->rank);
        for (int d = 0; d < a->rank; d++)
            CHECK_ARG(a->dims[d] >= 0, "ckpt_write: %s has dimension %d = %" PRId64, a->name, d, a->dims[d]);
        CHECK_ARG(a->data || ckpt_array_count(a) == 0, "ckpt_write: %s has no data", a->name);
    }
    return RT_OK;
}

/* The test hook of ckpt_file.h: pause after `after` datasets. */
static long pause_after_from_env(void)
{
    const char *v = getenv("RT_CKPT_TEST_PAUSE_AFTER");
    if (!v || !*v)
        return -1;
    char *end;
    long k = strtol(v, &end, 10);
    return (*end == '\0' && k >= 0) ? k : -1;
}

static void test_pause(hid_t file, const char *tmp)
{
    H5Fflush(file, H5F_SCOPE_GLOBAL);
    fprintf(stderr, "RT_CKPT_TEST_PAUSED %s\n", tmp);
    fflush(stderr);
    for (int i = 0; i < 600; i++)
        sleep(1);
}

#define CRC_THREAD_MIN (8u << 20)

typedef struct {
    const void *data;
    size_t len;
    uint32_t crc;
} crc_job;

static void *crc_job_run(void *arg)
{
    crc_job *job = arg;
    job->crc = job->len ? crc32c(job->data, job->len) : 0;
    return NULL;
}

/* Writes rows [r0, r1) of an array's data through HDF5, in blocks of
 * whole rows, and after each block asks the kernel to start writing the
 * file out (sync_file_range, asynchronous), so the disk works while the
 * next block is copied into the page cache instead of all at the final
 * fsync. The path where O_DIRECT is not available. */
#define WRITE_BLOCK (8u << 20)

static herr_t rows_write(hid_t ds, const ckpt_array_t *a, size_t row, hsize_t r0, hsize_t r1, int fd)
{
    hid_t mt = ckpt_h5_mem_type(a->type);
    hsize_t h[CKPT_MAX_RANK];
    for (int d = 0; d < a->rank; d++)
        h[d] = (hsize_t)a->dims[d];
    hsize_t rows_per_block = row >= WRITE_BLOCK ? 1 : WRITE_BLOCK / row;
    herr_t rc = 0;
    hid_t fsp = H5Dget_space(ds), msp = H5Screate_simple(a->rank, h, NULL);
    if (fsp < 0 || msp < 0)
        rc = -1;
    for (; rc >= 0 && r0 < r1; r0 += rows_per_block) {
        hsize_t start[CKPT_MAX_RANK] = {0}, count[CKPT_MAX_RANK];
        memcpy(count, h, sizeof count);
        start[0] = r0;
        count[0] = r1 - r0 < rows_per_block ? r1 - r0 : rows_per_block;
        if (H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Sselect_hyperslab(msp, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dwrite(ds, mt, msp, fsp, H5P_DEFAULT, a->data) < 0)
            rc = -1;
        else if (fd >= 0)
            sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    }
    if (msp >= 0)
        H5Sclose(msp);
    if (fsp >= 0)
        H5Sclose(fsp);
    return rc;
}

/* Arrays written in blocks (and with O_DIRECT where it is available);
 * smaller ones and scalars go in one H5Dwrite. */
static bool array_large(const ckpt_array_t *a)
{
    return a->rank > 0 && (size_t)ckpt_array_count(a) * rt_dtype_size(a->type) >= 2 * WRITE_BLOCK;
}

/* The first rows of a large array, written through HDF5 before the rest
 * goes past it: at least this many bytes, more than HDF5's 64 KiB sieve
 * buffer, so HDF5 writes them straight to the file and keeps no copy of
 * file bytes that the direct writes would make stale. */
#define DIRECT_HEAD (1u << 20)

/* Writes an array's data. Small arrays: one H5Dwrite. Large ones: the
 * first rows through HDF5, which allocates the dataset's contiguous storage
 * exactly as a whole write would (the file stays byte for byte the same),
 * then the rest at the dataset's offset in the file with O_DIRECT
 * (ckpt_direct.c), or, without O_DIRECT, through HDF5 in blocks. */
static rt_status data_write(hid_t ds, const ckpt_array_t *a, int fd, ckpt_dio *dio)
{
    size_t row = rt_dtype_size(a->type);
    for (int d = 1; d < a->rank; d++)
        row *= (size_t)a->dims[d];
    size_t bytes = a->rank > 0 ? row * (size_t)a->dims[0] : row;
    if (!array_large(a) || fd < 0) {
        if (H5Dwrite(ds, ckpt_h5_mem_type(a->type), H5S_ALL, H5S_ALL, H5P_DEFAULT, a->data) < 0)
            return ckpt_h5_fail(RT_ERR_HDF5, "H5Dwrite");
        if (fd >= 0)
            sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
        return RT_OK;
    }
    if (!dio) {
        if (rows_write(ds, a, row, 0, (hsize_t)a->dims[0], fd) < 0)
            return ckpt_h5_fail(RT_ERR_HDF5, "H5Dwrite");
        return RT_OK;
    }
    hsize_t head_rows = (DIRECT_HEAD + row - 1) / row;
    if (head_rows > (hsize_t)a->dims[0])
        head_rows = (hsize_t)a->dims[0];
    if (rows_write(ds, a, row, 0, head_rows, -1) < 0)
        return ckpt_h5_fail(RT_ERR_HDF5, "H5Dwrite");
    haddr_t off = H5Dget_offset(ds);
    if (off == HADDR_UNDEF) { /* not expected of contiguous storage; HDF5 writes the rest */
        H5Eclear2(H5E_DEFAULT);
        if (rows_write(ds, a, row, head_rows, (hsize_t)a->dims[0], fd) < 0)
            return ckpt_h5_fail(RT_ERR_HDF5, "H5Dwrite");
        return RT_OK;
    }
    size_t done = (size_t)head_rows * row;
    int e = ckpt_dio_write(dio, (const char *)a->data + done, bytes - done, (uint64_t)off + done);
    if (e)
        return rt_fail(RT_ERR_IO, "writing %zu bytes at offset %" PRIu64 ": %s", bytes - done, (uint64_t)off + done,
                       strerror(e));
    return RT_OK;
}

/* Writes one array as a contiguous dataset with its crc32c attribute. */
static rt_status dataset_write(hid_t file, hid_t lcpl, hid_t dcpl, const ckpt_array_t *a, int fd, ckpt_dio *dio)
{
    rt_status st = RT_OK;
    hsize_t dims[CKPT_MAX_RANK];
    for (int d = 0; d < a->rank; d++)
        dims[d] = (hsize_t)a->dims[d];
    hid_t space = a->rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(a->rank, dims, NULL);
    if (space < 0)
        return ckpt_h5_fail(RT_ERR_HDF5, "H5Screate");
    hid_t ds = H5Dcreate2(file, a->name, ckpt_h5_file_type(a->type), space, lcpl, dcpl, H5P_DEFAULT);
    if (ds < 0) {
        st = ckpt_h5_fail(RT_ERR_HDF5, "H5Dcreate2");
        goto close_space;
    }
    int64_t count = ckpt_array_count(a);
    crc_job job = {a->data, (size_t)count * rt_dtype_size(a->type), 0};
    /* Large arrays: checksum on a second thread while this one writes, so
     * the checksum costs no time on top of the disk's. */
    pthread_t tid;
    int threaded = job.len >= CRC_THREAD_MIN && pthread_create(&tid, NULL, crc_job_run, &job) == 0;
    st = count > 0 ? data_write(ds, a, fd, dio) : RT_OK;
    if (threaded)
        pthread_join(tid, NULL);
    else
        crc_job_run(&job);
    if (st != RT_OK)
        goto close_ds;
    st = ckpt_attr_write_u32(ds, "crc32c", job.crc);
close_ds:
    H5Dclose(ds);
close_space:
    H5Sclose(space);
    if (st != RT_OK)
        return rt_fail_context(st, "dataset %s", a->name);
    return RT_OK;
}

static rt_status meta_write(hid_t file, const ckpt_meta_t *m)
{
    TRY(ckpt_attr_write_str(file, "format", CKPT_FORMAT));
    TRY(ckpt_attr_write_i64(file, "format_version", m->format_version));
    TRY(ckpt_attr_write_i64(file, "step", m->step));
    TRY(ckpt_attr_write_i64(file, "epoch", m->epoch));
    TRY(ckpt_attr_write_str(file, "model_spec", m->model_spec));
    TRY(ckpt_attr_write_str(file, "config", m->config_json));
    TRY(ckpt_attr_write_i64(file, "world_size", m->world_size));
    TRY(ckpt_attr_write_i64(file, "created_unix", m->created_unix));
    uint32_t crc;
    TRY(ckpt_meta_crc(m, &crc));
    TRY(ckpt_attr_write_u32(file, "meta_crc32c", crc));
    return RT_OK;
}

/* Property lists chosen for speed and for readers: the 1.8 file format
 * (h5py and HDF5 1.8+ read it; large attributes such as a long config go to
 * dense storage), raw data aligned to 4 KiB so page-cache writes are whole
 * pages, metadata gathered in 64 KiB blocks, no fill values written before
 * the data. */
static rt_status plists_make(hid_t *fapl, hid_t *lcpl, hid_t *dcpl)
{
    *fapl = H5Pcreate(H5P_FILE_ACCESS);
    *lcpl = H5Pcreate(H5P_LINK_CREATE);
    *dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (*fapl < 0 || *lcpl < 0 || *dcpl < 0)
        return ckpt_h5_fail(RT_ERR_HDF5, "H5Pcreate");
    CHECK_HDF5(H5Pset_fapl_sec2(*fapl));
    CHECK_HDF5(H5Pset_fclose_degree(*fapl, H5F_CLOSE_STRONG)); /* close closes everything */
    CHECK_HDF5(H5Pset_libver_bounds(*fapl, H5F_LIBVER_V18, H5F_LIBVER_V18));
    CHECK_HDF5(H5Pset_alignment(*fapl, 64 * 1024, 4096));
    CHECK_HDF5(H5Pset_meta_block_size(*fapl, 64 * 1024));
    CHECK_HDF5(H5Pset_create_intermediate_group(*lcpl, 1));
    CHECK_HDF5(H5Pset_layout(*dcpl, H5D_CONTIGUOUS));
    CHECK_HDF5(H5Pset_fill_time(*dcpl, H5D_FILL_TIME_NEVER));
    CHECK_HDF5(H5Pset_alloc_time(*dcpl, H5D_ALLOC_TIME_LATE));
    return RT_OK;
}

/* After a failed write (disk full mid-file) HDF5 still holds dirty
 * metadata and cannot be told to drop it; an H5Fclose that fails leaves the
 * library in a state that crashes at the next close or at exit. So the
 * file's descriptor is pointed at an anonymous in-memory file, where the
 * remaining metadata writes and the final (sparse) truncate succeed, the
 * close completes, and the caller unlinks the temporary file. (Under an
 * RLIMIT_FSIZE limit the in-memory file is limited too; reserve_space makes
 * that case fail before HDF5 writes anything.) */
static void file_abandon(int fd)
{
    if (fd < 0)
        return;
    int null_fd = memfd_create("ringtrain-ckpt-abandoned", MFD_CLOEXEC);
    if (null_fd < 0)
        return;
    dup2(null_fd, fd);
    close(null_fd);
}

/* Distinct groups the array names create ("a/b/c" and "a/b/d": a, a/b). */
static int64_t group_count(const ckpt_array_t *arrays, int n)
{
    int64_t count = 0;
    for (int i = 0; i < n; i++) {
        const char *name = arrays[i].name;
        for (const char *slash = strchr(name, '/'); slash; slash = strchr(slash + 1, '/')) {
            size_t len = (size_t)(slash - name);
            bool seen = false;
            for (int j = 0; j < i && !seen; j++)
                seen = strncmp(arrays[j].name, name, len) == 0 && arrays[j].name[len] == '/';
            count += !seen;
        }
    }
    return count;
}

int64_t ckpt_file_bytes(const ckpt_meta_t *m, const ckpt_array_t *arrays, int n)
{
    const int64_t align = 4096, meta_block = 64 << 10;
    /* Metadata, measured with plists_make's properties (HDF5 1.10, the 1.8
     * format): about 305 bytes per dataset plus 1.05 per character of its
     * name, some 1.5 KiB per group, 6 KiB for the root and the superblock;
     * the bounds below are a little above. It is gathered in 64 KiB blocks;
     * the first is whole in the file (the data follow it), later ones may
     * be too, and each starts on a 4 KiB boundary. */
    int64_t meta = 6144 + 1536 * group_count(arrays, n);
    for (int i = 0; i < n; i++)
        meta += 312 + (int64_t)strlen(arrays[i].name) * 9 / 8 + 8 * arrays[i].rank;
    int64_t blocks = (meta + meta_block - 1) / meta_block;
    int64_t need = align + blocks * meta_block + (blocks - 1) * align;
    /* A long config attribute is stored apart from those blocks. */
    need += (int64_t)(strlen(m->config_json ? m->config_json : "") + strlen(m->model_spec ? m->model_spec : ""));
    /* The data, packed in write order, except that an array of 64 KiB or
     * more starts on a 4 KiB boundary (H5Pset_alignment): up to 4 KiB of
     * padding before it, and up to 2 KiB left in the small-data block (2
     * KiB, HDF5's default) that the small arrays after it no longer
     * extend. */
    for (int i = 0; i < n; i++) {
        int64_t bytes = ckpt_array_count(&arrays[i]) * (int64_t)rt_dtype_size(arrays[i].type);
        need += bytes + (bytes >= meta_block ? align - 1 : 0);
    }
    return need;
}

/* Reserves the file's blocks before any data is written, so that a full
 * disk (or a file-size limit) fails here, cleanly, rather than inside
 * HDF5. ckpt_file_bytes is a bound that stays within a few per cent and a
 * few KiB of the file (test_ckpt_reserve), so a checkpoint that fits is
 * not refused; the part past the file's end is released after the write
 * (file_release). KEEP_SIZE leaves the file's length to HDF5, so a
 * truncated file still shows as shorter than HDF5's recorded end. */
static rt_status reserve_space(int fd, const char *tmp, const ckpt_meta_t *m, const ckpt_array_t *arrays, int n)
{
    if (fd < 0 || getenv("RT_CKPT_TEST_NO_RESERVE")) /* test hook: reach HDF5's own failure path */
        return RT_OK;
    int64_t need = ckpt_file_bytes(m, arrays, n);
    /* KEEP_SIZE allocations are not checked against RLIMIT_FSIZE. */
    struct rlimit lim;
    if (getrlimit(RLIMIT_FSIZE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY && (rlim_t)need > lim.rlim_cur)
        return rt_fail(RT_ERR_IO, "cannot write %s: about %.2f MB needed but the file-size limit (ulimit -f) is %.2f MB",
                       tmp, (double)need / 1e6, (double)lim.rlim_cur / 1e6);
    if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)need) == 0)
        return RT_OK;
    int e = errno;
    if (e == EOPNOTSUPP || e == ENOSYS)
        return RT_OK; /* a file system without fallocate: write and see */
    return rt_fail(RT_ERR_IO, "cannot reserve %.2f MB for %s: %s", (double)need / 1e6, tmp, strerror(e));
}

/* Gives back the reserved blocks past the end of the written file: a
 * truncate to its own length frees what KEEP_SIZE allocated beyond it,
 * which would otherwise stay allocated as long as the checkpoint exists. */
static rt_status file_release(const char *tmp)
{
    struct stat sb;
    if (stat(tmp, &sb) < 0 || truncate(tmp, sb.st_size) < 0)
        return rt_fail(RT_ERR_IO, "truncate %s: %s", tmp, strerror(errno));
    return RT_OK;
}

/* Whether data_write takes the large-array path for any of the arrays
 * (small checkpoints need no O_DIRECT descriptor and no buffers). */
static bool any_large(const ckpt_array_t *arrays, int n)
{
    for (int i = 0; i < n; i++)
        if (array_large(&arrays[i]))
            return true;
    return false;
}

static rt_status file_write(const char *tmp, const ckpt_meta_t *m, const ckpt_array_t *arrays, int n)
{
    rt_status st;
    hid_t fapl = H5I_INVALID_HID, lcpl = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, file = H5I_INVALID_HID;
    TRY_GOTO(st, plists_make(&fapl, &lcpl, &dcpl), close_plists);
    file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (file < 0) {
        st = ckpt_h5_fail(RT_ERR_HDF5, "H5Fcreate");
        goto close_plists;
    }
    /* The descriptor is taken now, while the file is healthy (sec2 driver). */
    int fd = -1;
    ckpt_dio *dio = NULL;
    void *handle = NULL;
    if (H5Fget_vfd_handle(file, H5P_DEFAULT, &handle) >= 0 && handle)
        fd = *(int *)handle;
    TRY_GOTO(st, reserve_space(fd, tmp, m, arrays, n), close_file);
    dio = fd >= 0 && any_large(arrays, n) ? ckpt_dio_open(tmp, fd) : NULL;
    TRY_GOTO(st, meta_write(file, m), close_file);
    /* The count lets verify tell a file cut short from a complete one, even
     * under a complete-looking name. */
    TRY_GOTO(st, ckpt_attr_write_i64(file, "dataset_count", n), close_file);
    long pause_after = pause_after_from_env();
    for (int i = 0; i < n; i++) {
        if (i == pause_after)
            test_pause(file, tmp);
        TRY_GOTO(st, dataset_write(file, lcpl, dcpl, &arrays[i], fd, dio), close_file);
    }
    /* Flush first: a close that fails cannot be retried (see file_abandon). */
    if (H5Fflush(file, H5F_SCOPE_LOCAL) < 0)
        st = ckpt_h5_fail(RT_ERR_IO, "writing %s (H5Fflush)", tmp);
close_file:
    ckpt_dio_close(dio);
    if (st != RT_OK) {
        /* A flush that now succeeds (into memory) empties HDF5's dirty
         * cache, which the close needs after a failed flush. */
        file_abandon(fd);
        H5Fflush(file, H5F_SCOPE_LOCAL);
        H5Eclear2(H5E_DEFAULT);
    }
    if (H5Fclose(file) < 0 && st == RT_OK)
        st = ckpt_h5_fail(RT_ERR_IO, "closing %s (H5Fclose)", tmp);
close_plists:
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (lcpl >= 0)
        H5Pclose(lcpl);
    if (fapl >= 0)
        H5Pclose(fapl);
    return st;
}

rt_status ckpt_write(const char *dir, const ckpt_meta_t *meta, const ckpt_array_t *arrays, int n,
                     char *path_out, size_t path_len)
{
    CHECK_ARG(dir && meta, "ckpt_write: no directory or metadata");
    CHECK_ARG(meta->step >= 0, "ckpt_write: step %" PRId64 " is negative", meta->step);
    TRY(arrays_check(arrays, n));
    rt_hdf5_quiet();
    ckpt_meta_t m = *meta;
    m.format_version = CKPT_FORMAT_VERSION;
    if (m.created_unix == 0)
        m.created_unix = (int64_t)time(NULL);

    char final_path[CKPT_PATH_MAX], tmp[CKPT_PATH_MAX];
    TRY(ckpt_path_for_step(dir, m.step, final_path, sizeof final_path));
    int len = snprintf(tmp, sizeof tmp, "%s/.ckpt-%08" PRId64 ".h5.tmp.%ld", dir, m.step, (long)getpid());
    if (len < 0 || (size_t)len >= sizeof tmp)
        return rt_fail(RT_ERR_INVALID, "checkpoint path in %s is too long", dir);
    TRY(dir_make(dir));

    rt_status st = file_write(tmp, &m, arrays, n);
    if (st == RT_OK)
        st = file_release(tmp);
    if (st == RT_OK)
        st = path_fsync(tmp, 0);
    if (st == RT_OK && rename(tmp, final_path) < 0)
        st = rt_fail(RT_ERR_IO, "rename %s to %s: %s", tmp, final_path, strerror(errno));
    if (st != RT_OK) {
        unlink(tmp);
        return rt_fail_context(st, "writing checkpoint %s (nothing else in %s was changed)", final_path, dir);
    }
    /* The rename is durable only once the directory entry is on disk. */
    st = path_fsync(dir, 1);
    if (st != RT_OK)
        return rt_fail_context(st, "checkpoint %s", final_path);
    if (path_out && path_len) {
        if (strlen(final_path) >= path_len)
            return rt_fail(RT_ERR_INVALID, "ckpt_write: path buffer of %zu bytes too small", path_len);
        memcpy(path_out, final_path, strlen(final_path) + 1);
    }
    return RT_OK;
}

rt_status ckpt_save(const char *dir, ckpt_run_t *run, const ckpt_meta_t *meta, const ckpt_array_t *arrays, int n,
                    char *path_out, size_t path_len)
{
    TRY(ckpt_write(dir, meta, arrays, n, path_out, path_len));
    if (!run)
        return RT_OK;
    TRY(ckpt_run_add_own(run, meta->step));
    return ckpt_prune(dir, run, NULL);
}
