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

/* The dataset_dtype for a file type (DATASET_OTHER_INT for other integers,
 * 0 for anything else). */
dataset_dtype h5_type_classify(hid_t type);

/* The native HDF5 memory type and element size for a dtype. */
hid_t h5_native_type(dataset_dtype t);
size_t dataset_dtype_size(dataset_dtype t);

#endif
