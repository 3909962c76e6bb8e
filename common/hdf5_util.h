/* hdf5_util.h - small HDF5 helpers shared by datasets and checkpoints. */
#ifndef RT_COMMON_HDF5_UTIL_H
#define RT_COMMON_HDF5_UTIL_H

/* Turns off HDF5's automatic error-stack printing; errors reach the user
 * through rt_status messages instead. Call once at start-up. */
void rt_hdf5_quiet(void);

#endif
