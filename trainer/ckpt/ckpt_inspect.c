/* ckpt_inspect.c - prints a checkpoint's tree for `ringtrain ckpt inspect`:
 * root attributes (step, config, ...), then every group and dataset with
 * its type, shape, size and attributes. Generic over HDF5 files, so it
 * also shows files that ckpt_open refuses (another format version). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/check.h"
#include "common/hdf5_util.h"
#include "trainer/ckpt/ckpt_internal.h"

static void type_text(hid_t t, char *buf, size_t len)
{
    rt_dtype d = ckpt_dtype_of_h5(t);
    if (d != RT_DTYPE_COUNT) {
        snprintf(buf, len, "%s", rt_dtype_name(d));
        return;
    }
    switch (H5Tget_class(t)) {
    case H5T_STRING: snprintf(buf, len, "string"); break;
    case H5T_INTEGER: snprintf(buf, len, "int%zu", 8 * H5Tget_size(t)); break;
    case H5T_FLOAT: snprintf(buf, len, "float%zu", 8 * H5Tget_size(t)); break;
    default: snprintf(buf, len, "other(%zu bytes)", H5Tget_size(t)); break;
    }
}

static void shape_print(FILE *out, hid_t space)
{
    hsize_t dims[H5S_MAX_RANK];
    int nd = H5Sget_simple_extent_ndims(space);
    if (nd < 0)
        nd = 0;
    H5Sget_simple_extent_dims(space, dims, NULL);
    fputc('[', out);
    for (int d = 0; d < nd; d++)
        fprintf(out, "%s%llu", d ? "," : "", (unsigned long long)dims[d]);
    fputc(']', out);
}

/* Prints one attribute's value: strings quoted, integer and float scalars
 * as numbers (crc32c in hex), anything else by type and shape. */
static herr_t attr_print(hid_t obj, const char *name, const H5A_info_t *ainfo, void *data)
{
    FILE *out = data;
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (attr < 0)
        return 0;
    hid_t t = H5Aget_type(attr), sp = H5Aget_space(attr);
    H5T_class_t cls = H5Tget_class(t);
    hssize_t npts = H5Sget_simple_extent_npoints(sp);
    fprintf(out, " %s=", name);
    if (cls == H5T_STRING) {
        char *s = NULL;
        if (ckpt_attr_read_str(obj, name, &s) == RT_OK) {
            fprintf(out, "\"%s\"", s);
            free(s);
        } else {
            fprintf(out, "<unreadable string>");
        }
    } else if (cls == H5T_INTEGER && npts == 1) {
        if (H5Tget_sign(t) == H5T_SGN_NONE) {
            uint64_t v = 0;
            H5Aread(attr, H5T_NATIVE_UINT64, &v);
            if (!strcmp(name, "crc32c") || !strcmp(name, "meta_crc32c"))
                fprintf(out, "0x%08" PRIx64, v);
            else
                fprintf(out, "%" PRIu64, v);
        } else {
            int64_t v = 0;
            H5Aread(attr, H5T_NATIVE_INT64, &v);
            fprintf(out, "%" PRId64, v);
        }
    } else if (cls == H5T_FLOAT && npts == 1) {
        double v = 0;
        H5Aread(attr, H5T_NATIVE_DOUBLE, &v);
        fprintf(out, "%.17g", v);
    } else {
        char tt[32];
        type_text(t, tt, sizeof tt);
        fprintf(out, "<%s ", tt);
        shape_print(out, sp);
        fputc('>', out);
    }
    H5Sclose(sp);
    H5Tclose(t);
    H5Aclose(attr);
    return 0;
}

typedef struct {
    FILE *out;
    int64_t datasets;
    int64_t bytes;
} inspect_state;

static herr_t object_print(hid_t root, const char *name, const H5O_info_t *info, void *data)
{
    inspect_state *is = data;
    if (!strcmp(name, "."))
        return 0;
    if (info->type == H5O_TYPE_GROUP) {
        fprintf(is->out, "  /%s/\n", name);
        return 0;
    }
    if (info->type != H5O_TYPE_DATASET) {
        fprintf(is->out, "  /%s (other object)\n", name);
        return 0;
    }
    hid_t ds = H5Dopen2(root, name, H5P_DEFAULT);
    if (ds < 0) {
        fprintf(is->out, "  /%s (cannot open)\n", name);
        return 0;
    }
    hid_t t = H5Dget_type(ds), sp = H5Dget_space(ds);
    char tt[32];
    type_text(t, tt, sizeof tt);
    hssize_t npts = H5Sget_simple_extent_npoints(sp);
    int64_t bytes = (int64_t)npts * (int64_t)H5Tget_size(t);
    fprintf(is->out, "  /%s %s", name, tt);
    shape_print(is->out, sp);
    fprintf(is->out, " %" PRId64 " B", bytes);
    H5Aiterate2(ds, H5_INDEX_NAME, H5_ITER_INC, NULL, attr_print, is->out);
    fputc('\n', is->out);
    is->datasets++;
    is->bytes += bytes;
    H5Sclose(sp);
    H5Tclose(t);
    H5Dclose(ds);
    return 0;
}

rt_status ckpt_inspect(const char *path, FILE *out)
{
    rt_hdf5_quiet();
    struct stat sb;
    if (stat(path, &sb) < 0)
        return rt_fail(RT_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0)
        return rt_fail_context(ckpt_h5_fail(RT_ERR_HDF5, "H5Fopen"),
                               "%s is truncated or not an HDF5 file", path);
    fprintf(out, "%s: %lld bytes\nroot attributes:\n", path, (long long)sb.st_size);
    /* Root attributes one per line: config can be long. */
    H5O_info_t oinfo;
    if (H5Oget_info2(file, &oinfo, H5O_INFO_NUM_ATTRS) >= 0)
        for (hsize_t idx = 0; idx < oinfo.num_attrs; idx++) {
            char name[256];
            if (H5Aget_name_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, idx, name, sizeof name, H5P_DEFAULT) < 0)
                continue;
            fprintf(out, " ");
            attr_print(file, name, NULL, out);
            fputc('\n', out);
        }
    fprintf(out, "tree:\n");
    inspect_state is = {out, 0, 0};
    rt_status st = RT_OK;
    if (H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_INC, object_print, &is, H5O_INFO_BASIC) < 0)
        st = rt_fail_context(ckpt_h5_fail(RT_ERR_HDF5, "H5Ovisit2"), "%s", path);
    fprintf(out, "total: %" PRId64 " datasets, %" PRId64 " bytes of data\n", is.datasets, is.bytes);
    H5Fclose(file);
    return st;
}
