/* ckpt_internal.h - helpers shared by the checkpoint files (ckpt_*.c):
 * type mapping, root-attribute I/O and the metadata checksum. Not for use
 * outside trainer/ckpt_*.c. */
#ifndef RT_TRAINER_CKPT_CKPT_INTERNAL_H
#define RT_TRAINER_CKPT_CKPT_INTERNAL_H

#include <hdf5.h>

#include "trainer/ckpt/ckpt_file.h"

/* HDF5 file type (little-endian) and memory type of an element type a
 * checkpoint stores; H5I_INVALID_HID for the others (BF16, U16), which is
 * how the writer and reader tell them apart. */
hid_t ckpt_h5_file_type(rt_dtype t);
hid_t ckpt_h5_mem_type(rt_dtype t);
/* The rt_dtype of a stored HDF5 type, or RT_DTYPE_COUNT if it is none a
 * checkpoint stores. */
rt_dtype ckpt_dtype_of_h5(hid_t type);

/* Scalar attributes on an object. */
rt_status ckpt_attr_write_i64(hid_t obj, const char *name, int64_t v);
rt_status ckpt_attr_write_u32(hid_t obj, const char *name, uint32_t v);
rt_status ckpt_attr_write_str(hid_t obj, const char *name, const char *s);
rt_status ckpt_attr_read_i64(hid_t obj, const char *name, int64_t *v);
rt_status ckpt_attr_read_u32(hid_t obj, const char *name, uint32_t *v);
/* *s is malloc'ed; the caller frees it. */
rt_status ckpt_attr_read_str(hid_t obj, const char *name, char **s);

/* CRC-32C of the canonical text of the metadata (docs/FORMATS.md, "Checkpoint file"):
 * "format_version=V\nstep=S\nepoch=E\nworld_size=W\ncreated_unix=T\n"
 * "model_spec=M\nconfig=C" */
rt_status ckpt_meta_crc(const ckpt_meta_t *m, uint32_t *crc);

/* Reads and checks the root attributes of an open file into m (strings
 * malloc'ed). Checks format, then format_version, then meta_crc32c. */
rt_status ckpt_meta_load(hid_t file, const char *path, ckpt_meta_t *m);

/* Records code with a message that ends in HDF5's outermost and innermost
 * error descriptions (the innermost says e.g. "truncated file: eof = ...")
 * and clears HDF5's error stack. */
rt_status ckpt_h5_fail(rt_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The HDF5 file id behind a reader (owned by it), and its descriptor
 * (-1 if the driver has none). */
hid_t ckpt_reader_file(const ckpt_reader_t *r);
int ckpt_reader_fd(const ckpt_reader_t *r);

/* The bytes the checkpoint file of these arrays will take, as an upper
 * bound close to it (the space ckpt_write reserves before writing). */
int64_t ckpt_file_bytes(const ckpt_meta_t *m, const ckpt_array_t *arrays, int n);

/* Records a checkpoint step the run wrote (ckpt_save). */
rt_status ckpt_run_add_own(ckpt_run_t *run, int64_t step);

/* Hints the kernel to read bytes [from, from+len) of contiguous dataset ds
 * ahead (POSIX_FADV_WILLNEED); does nothing when that is not possible. */
void ckpt_readahead(int fd, hid_t ds, size_t from, size_t len);

/* O_DIRECT writing of a file's large datasets (ckpt_direct.c). Open gives
 * NULL where the file system does not take O_DIRECT; the caller then writes
 * through the page cache. fd is the file's page-cache descriptor (HDF5's),
 * which writes the parts that are not whole 4 KiB pages. */
typedef struct ckpt_dio ckpt_dio;
ckpt_dio *ckpt_dio_open(const char *path, int fd);
void ckpt_dio_close(ckpt_dio *d);
/* Writes len bytes of data at file offset off. The whole 4 KiB pages of
 * the file go with O_DIRECT: from data itself when data + k and off + k are
 * both multiples of 4096 for some k (memory aligned like the file), else
 * through a copy; the partial pages at either end through fd. Returns 0,
 * or the errno of the first write that failed. */
int ckpt_dio_write(ckpt_dio *d, const void *data, size_t len, uint64_t off);
/* Bytes ckpt_dio_write has copied rather than written in place (0 for
 * NULL). */
uint64_t ckpt_dio_bounced(const ckpt_dio *d);

#endif
