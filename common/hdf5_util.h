/* hdf5_util.h - small HDF5 helpers shared by datasets and checkpoints. */
#ifndef RT_COMMON_HDF5_UTIL_H
#define RT_COMMON_HDF5_UTIL_H

#include <hdf5.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

/* Reads a string attribute (fixed-length or variable-length, as h5py writes
 * it) into buf; *present is false when the attribute does not exist. */
rt_status h5_attr_string(hid_t loc, const char *name, char *buf, size_t cap, bool *present);

/* The same into a new string (*out, to free; NULL when not present). A
 * string attribute must hold exactly one string: RT_ERR_FORMAT if not. */
rt_status h5_attr_string_dup(hid_t loc, const char *name, char **out, bool *present);

/* Checks from the file's bytes that reading the variable-length string
 * attribute `name` of loc cannot hang libhdf5 (its global heap collection
 * walks to its end; hdf5_vlen_check.c says why); RT_ERR_FORMAT if not.
 * Every reader of such an attribute calls it before H5Aread. */
rt_status h5_vlen_attr_check(hid_t loc, const char *name);

/* Reads an integer attribute holding 1..cap values (converted to int64). */
rt_status h5_attr_i64(hid_t loc, const char *name, int64_t *vals, int cap, int *count,
                      bool *present);

/* Writes a scalar variable-length UTF-8 string attribute (h5py reads str). */
rt_status h5_write_attr_string(hid_t loc, const char *name, const char *value);
rt_status h5_write_attr_i64(hid_t loc, const char *name, const int64_t *vals, int count);

/* Turns off HDF5's automatic error-stack printing; errors reach the user
 * through rt_status messages instead. Call once at start-up. */
void rt_hdf5_quiet(void);

#endif
