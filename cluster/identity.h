/* identity.h - this process's place in the job: world rank and size, and
 * node-local rank and size, read from the launcher's environment before MPI
 * is initialised (Open MPI's OMPI_COMM_WORLD_* variables). Used to pick a GPU
 * and a thread count before any communicator exists. */
#ifndef RT_CLUSTER_IDENTITY_H
#define RT_CLUSTER_IDENTITY_H

typedef struct {
    int world_rank, world_size;
    int local_rank, local_size;
} rt_identity_t;

/* Reads the environment; a process started without mpirun is rank 0 of 1. */
void identity_from_env(rt_identity_t *id);

#endif
