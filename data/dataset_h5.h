/* dataset_h5.h - HDF5 type helpers shared by the dataset
 * reader and writer (internal to data/). */
#ifndef RT_DATA_DATASET_H5_H
#define RT_DATA_DATASET_H5_H

#include <hdf5.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hdf5_util.h"
#include "common/status.h"
#include "data/dataset.h"

/* The attribute helpers (h5_attr_string, h5_write_attr_string, ...) live in
 * common/hdf5_util.h. */

/* The rt_dtype of a stored HDF5 type, in any byte order: F32, F64, U8, U16,
 * U32, U64, I32 or I64; RT_DTYPE_COUNT for anything else (int8, int16,
 * float16, strings, a failed type id). *integer (may be NULL) is set to
 * whether it is an integer type of any width and sign, which is what
 * /labels needs. */
rt_dtype h5_type_classify(hid_t type, bool *integer);

/* The native HDF5 memory type of a dtype the dataset files use (U8, U16,
 * I32, F32); H5I_INVALID_HID for others. */
hid_t h5_native_type(rt_dtype t);

#endif
