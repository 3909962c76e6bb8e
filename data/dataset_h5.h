/* dataset_h5.h - HDF5 attribute and type helpers shared by the dataset
 * reader and writer (internal to data/). */
#ifndef RT_DATA_DATASET_H5_H
#define RT_DATA_DATASET_H5_H

#include <hdf5.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "data/dataset.h"

/* Reads a string attribute (fixed-length or variable-length, as h5py writes
 * it) into buf; *present is false when the attribute does not exist. */
rt_status h5_attr_string(hid_t loc, const char *name, char *buf, size_t cap, bool *present);

/* Reads an integer attribute holding 1..cap values (converted to int64). */
rt_status h5_attr_i64(hid_t loc, const char *name, int64_t *vals, int cap, int *count,
                      bool *present);

rt_status h5_write_attr_string(hid_t loc, const char *name, const char *value);
rt_status h5_write_attr_i64(hid_t loc, const char *name, const int64_t *vals, int count);

/* The dataset_dtype for a file type (DATASET_OTHER_INT for other integers,
 * 0 for anything else). */
dataset_dtype h5_type_classify(hid_t type);

/* The native HDF5 memory type and element size for a dtype. */
hid_t h5_native_type(dataset_dtype t);
size_t dataset_dtype_size(dataset_dtype t);

#endif
