/* identity.c - rank identity from the launcher's environment. */
#include "identity.h"

#include <stdlib.h>

static int env_int(const char *a, const char *b, int fallback)
{
    const char *v = getenv(a);
    if (!v || !*v)
        v = b ? getenv(b) : NULL;
    return v && *v ? atoi(v) : fallback;
}

void identity_from_env(rt_identity_t *id)
{
    id->world_rank = env_int("OMPI_COMM_WORLD_RANK", "PMI_RANK", 0);
    id->world_size = env_int("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", 1);
    id->local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", 0);
    id->local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", 1);
}
