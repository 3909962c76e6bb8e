/* dataset_crc.h - the checksums of dataset files (internal to data/): the
 * CRC-32C of a whole array (attribute `crc32c` on /inputs, /labels,
 * /tokens) and of each fixed-size block of it (dataset /crc32c_blocks/<name>
 * with attribute `block_bytes`), over the array's elements in C order as
 * little-endian bytes, exactly as the writer stores them. docs/FORMATS.md,
 * "Checksums". Both are optional: files written before them still load. */
#ifndef RT_DATA_DATASET_CRC_H
#define RT_DATA_DATASET_CRC_H

#include <hdf5.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

/* Block size the writer uses for /inputs and /tokens. */
#define DATASET_CRC_BLOCK_BYTES ((int64_t)1 << 20)
#define DATASET_CRC_ATTR "crc32c"
#define DATASET_CRC_BLOCKS_GROUP "/crc32c_blocks"

/* Whole-array and per-block CRCs of a byte stream fed in order. */
typedef struct {
    uint32_t whole;
    int64_t pos;          /* bytes fed so far */
    int64_t block_bytes;  /* 0: no blocks */
    int64_t nblocks;
    uint32_t *blocks;     /* [nblocks], owned */
} dataset_crc_t;

/* Sets up for total_bytes of data; block_bytes 0 for the whole CRC only. */
rt_status dataset_crc_init(dataset_crc_t *c, int64_t total_bytes, int64_t block_bytes);
void dataset_crc_free(dataset_crc_t *c);
/* Feeds n elements of elem_size bytes, in host order (swapped to
 * little-endian on a big-endian host). */
void dataset_crc_feed(dataset_crc_t *c, const void *data, size_t n, size_t elem_size);

/* The whole-array CRC of an HDF5 dataset: *present false when the
 * attribute is absent; RT_ERR_FORMAT when it is not a 32-bit value. */
rt_status dataset_crc_read_attr(hid_t dset, uint32_t *crc, bool *present);

/* The block table of array `name` ("inputs") for total_bytes of data:
 * *blocks (malloc'ed, caller frees) and *block_bytes, or *blocks NULL when
 * the file has none. RT_ERR_FORMAT when it does not fit the array. */
rt_status dataset_crc_read_blocks(hid_t file, const char *name, int64_t total_bytes,
                                  uint32_t **blocks, int64_t *block_bytes, int64_t *nblocks);

/* Writes the attribute and, when c has blocks, the block table of `name`. */
rt_status dataset_crc_write(hid_t file, hid_t dset, const char *name, const dataset_crc_t *c);

/* Reads all of dset (any layout, filters, byte order) in pieces of whole
 * rows as little-endian bytes and feeds them to c, which must be set up for
 * its size (dataset_crc_array_bytes). */
rt_status dataset_crc_stream(hid_t dset, dataset_crc_t *c);

/* The size in bytes of dset's data (elements x element size). */
rt_status dataset_crc_array_bytes(hid_t dset, int64_t *bytes);

#endif
