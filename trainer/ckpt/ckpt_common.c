/* ckpt_common.c - what every checkpoint file operation shares: the HDF5
 * types of stored elements, attribute I/O, and the metadata block with its
 * checksum. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/crc32c.h"
#include "common/hdf5_util.h"
#include "trainer/ckpt/ckpt_internal.h"

int64_t ckpt_array_count(const ckpt_array_t *a)
{
    int64_t n = 1;
    for (int i = 0; i < a->rank; i++)
        n *= a->dims[i];
    return n;
}

hid_t ckpt_h5_file_type(rt_dtype t)
{
    switch (t) {
    case RT_DTYPE_F32: return H5T_IEEE_F32LE;
    case RT_DTYPE_F64: return H5T_IEEE_F64LE;
    case RT_DTYPE_I32: return H5T_STD_I32LE;
    case RT_DTYPE_I64: return H5T_STD_I64LE;
    case RT_DTYPE_U8: return H5T_STD_U8LE;
    case RT_DTYPE_U32: return H5T_STD_U32LE;
    case RT_DTYPE_U64: return H5T_STD_U64LE;
    default: return H5I_INVALID_HID; /* BF16 has no HDF5 type; U16 was never stored */
    }
}

hid_t ckpt_h5_mem_type(rt_dtype t)
{
    switch (t) {
    case RT_DTYPE_F32: return H5T_NATIVE_FLOAT;
    case RT_DTYPE_F64: return H5T_NATIVE_DOUBLE;
    case RT_DTYPE_I32: return H5T_NATIVE_INT32;
    case RT_DTYPE_I64: return H5T_NATIVE_INT64;
    case RT_DTYPE_U8: return H5T_NATIVE_UINT8;
    case RT_DTYPE_U32: return H5T_NATIVE_UINT32;
    case RT_DTYPE_U64: return H5T_NATIVE_UINT64;
    default: return H5I_INVALID_HID;
    }
}

rt_dtype ckpt_dtype_of_h5(hid_t type)
{
    for (int t = 0; t < RT_DTYPE_COUNT; t++) {
        hid_t ft = ckpt_h5_file_type((rt_dtype)t);
        if (ft != H5I_INVALID_HID && H5Tequal(type, ft) > 0)
            return (rt_dtype)t;
    }
    return RT_DTYPE_COUNT;
}

static rt_status attr_write(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *v)
{
    rt_status st = RT_OK;
    hid_t space = H5Screate(H5S_SCALAR);
    if (space < 0)
        return ckpt_h5_fail(RT_ERR_HDF5, "H5Screate");
    hid_t attr = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0)
        st = ckpt_h5_fail(RT_ERR_HDF5, "H5Acreate2");
    else if (H5Awrite(attr, mtype, v) < 0)
        st = ckpt_h5_fail(RT_ERR_HDF5, "H5Awrite");
    if (attr >= 0)
        H5Aclose(attr);
    H5Sclose(space);
    if (st != RT_OK)
        return rt_fail_context(st, "attribute %s", name);
    return RT_OK;
}

rt_status ckpt_attr_write_i64(hid_t obj, const char *name, int64_t v)
{
    return attr_write(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

rt_status ckpt_attr_write_u32(hid_t obj, const char *name, uint32_t v)
{
    return attr_write(obj, name, H5T_STD_U32LE, H5T_NATIVE_UINT32, &v);
}

/* Variable-length UTF-8 strings, so h5py hands back a Python str. */
static hid_t str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

rt_status ckpt_attr_write_str(hid_t obj, const char *name, const char *s)
{
    hid_t t = str_type();
    if (t < 0)
        return ckpt_h5_fail(RT_ERR_HDF5, "H5Tcopy");
    const char *v = s ? s : "";
    rt_status st = attr_write(obj, name, t, t, &v);
    H5Tclose(t);
    return st;
}

/* Opens attribute name of obj, or fails with RT_ERR_FORMAT if absent. */
static rt_status attr_open(hid_t obj, const char *name, hid_t *attr)
{
    htri_t has = H5Aexists(obj, name);
    if (has < 0)
        return ckpt_h5_fail(RT_ERR_HDF5, "H5Aexists");
    if (!has)
        return rt_fail(RT_ERR_FORMAT, "attribute '%s' is missing", name);
    *attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (*attr < 0)
        return ckpt_h5_fail(RT_ERR_HDF5, "H5Aopen");
    return RT_OK;
}

/* Numeric scalar attribute read with conversion to mtype; the stored type
 * must be an integer. */
static rt_status attr_read_int(hid_t obj, const char *name, hid_t mtype, void *v)
{
    hid_t attr = H5I_INVALID_HID; /* set by attr_open; initialised for gcc 13's flow analysis */
    TRY(attr_open(obj, name, &attr));
    rt_status st = RT_OK;
    hid_t t = H5Aget_type(attr);
    hid_t sp = H5Aget_space(attr);
    if (t < 0 || sp < 0)
        st = ckpt_h5_fail(RT_ERR_HDF5, "H5Aget_type");
    else if (H5Tget_class(t) != H5T_INTEGER || H5Sget_simple_extent_npoints(sp) != 1)
        st = rt_fail(RT_ERR_FORMAT, "attribute '%s' is not an integer scalar", name);
    else if (H5Aread(attr, mtype, v) < 0)
        st = ckpt_h5_fail(RT_ERR_HDF5, "H5Aread");
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    H5Aclose(attr);
    return st;
}

rt_status ckpt_attr_read_i64(hid_t obj, const char *name, int64_t *v)
{
    return attr_read_int(obj, name, H5T_NATIVE_INT64, v);
}

rt_status ckpt_attr_read_u32(hid_t obj, const char *name, uint32_t *v)
{
    return attr_read_int(obj, name, H5T_NATIVE_UINT32, v);
}

rt_status ckpt_attr_read_str(hid_t obj, const char *name, char **s)
{
    bool present = false;
    TRY(h5_attr_string_dup(obj, name, s, &present));
    if (!present)
        return rt_fail(RT_ERR_FORMAT, "attribute '%s' is missing", name);
    return RT_OK;
}

rt_status ckpt_meta_crc(const ckpt_meta_t *m, uint32_t *crc)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "format_version=%" PRId64 "\nstep=%" PRId64 "\nepoch=%" PRId64
                     "\nworld_size=%" PRId64 "\ncreated_unix=%" PRId64 "\nmodel_spec=",
                     m->format_version, m->step, m->epoch, m->world_size, m->created_unix);
    if (n < 0 || (size_t)n >= sizeof head)
        return rt_fail(RT_ERR_INTERNAL, "checkpoint metadata text too long");
    const char *spec = m->model_spec ? m->model_spec : "";
    const char *config = m->config_json ? m->config_json : "";
    uint32_t c = crc32c_update(0, head, (size_t)n);
    c = crc32c_update(c, spec, strlen(spec));
    c = crc32c_update(c, "\nconfig=", 8);
    c = crc32c_update(c, config, strlen(config));
    *crc = c;
    return RT_OK;
}

rt_status ckpt_meta_load(hid_t file, const char *path, ckpt_meta_t *m)
{
    memset(m, 0, sizeof *m);
    char *format = NULL, *spec = NULL, *config = NULL;
    rt_status st = ckpt_attr_read_str(file, "format", &format);
    if (st != RT_OK || strcmp(format, CKPT_FORMAT) != 0) {
        st = rt_fail(RT_ERR_FORMAT, "%s is not a ringtrain checkpoint (root attribute format is %s%s%s)",
                     path, format ? "'" : "", format ? format : "missing", format ? "'" : "");
        goto fail;
    }
    TRY_GOTO(st, ckpt_attr_read_i64(file, "format_version", &m->format_version), fail_ctx);
    if (m->format_version > CKPT_FORMAT_VERSION || m->format_version < 1) {
        st = rt_fail(RT_ERR_FORMAT,
                     "%s has checkpoint format_version %" PRId64 "; this ringtrain reads versions 1 to %d",
                     path, m->format_version, CKPT_FORMAT_VERSION);
        goto fail;
    }
    TRY_GOTO(st, ckpt_attr_read_i64(file, "step", &m->step), fail_ctx);
    TRY_GOTO(st, ckpt_attr_read_i64(file, "epoch", &m->epoch), fail_ctx);
    TRY_GOTO(st, ckpt_attr_read_i64(file, "world_size", &m->world_size), fail_ctx);
    TRY_GOTO(st, ckpt_attr_read_i64(file, "created_unix", &m->created_unix), fail_ctx);
    TRY_GOTO(st, ckpt_attr_read_str(file, "model_spec", &spec), fail_ctx);
    TRY_GOTO(st, ckpt_attr_read_str(file, "config", &config), fail_ctx);
    m->model_spec = spec;
    m->config_json = config;
    uint32_t want, got;
    TRY_GOTO(st, ckpt_attr_read_u32(file, "meta_crc32c", &want), fail_ctx);
    TRY_GOTO(st, ckpt_meta_crc(m, &got), fail_ctx);
    if (want != got) {
        st = rt_fail(RT_ERR_FORMAT,
                     "%s: root attributes fail their checksum (meta_crc32c stored 0x%08x, computed 0x%08x)",
                     path, want, got);
        goto fail;
    }
    free(format);
    return RT_OK;
fail_ctx:
    st = rt_fail_context(st, "%s", path);
fail:
    free(format);
    free(spec);
    free(config);
    m->model_spec = m->config_json = NULL;
    return st;
}

typedef struct {
    char outer[256];
    char inner[256];
} h5_err_ends;

static herr_t h5_err_collect(unsigned n, const H5E_error2_t *err, void *data)
{
    h5_err_ends *e = data;
    if (!err->desc)
        return 0;
    if (n == 0)
        snprintf(e->outer, sizeof e->outer, "%s", err->desc);
    snprintf(e->inner, sizeof e->inner, "%s", err->desc); /* the last one wins */
    return 0;
}

rt_status ckpt_h5_fail(rt_status code, const char *fmt, ...)
{
    h5_err_ends e = {"", ""};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, h5_err_collect, &e);
    H5Eclear2(H5E_DEFAULT);
    char head[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    for (char *p = e.inner; *p; p++) /* HDF5's write errors embed a newline */
        if (*p == '\n')
            *p = ' ';
    if (!e.outer[0])
        return rt_fail(code, "%s", head);
    if (!strcmp(e.outer, e.inner))
        return rt_fail(code, "%s: %s", head, e.outer);
    return rt_fail(code, "%s: %s: %s", head, e.outer, e.inner);
}
