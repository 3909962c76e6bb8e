/* netns_hello.c - a tiny MPI program for the netns test cluster: every rank
 * reports its world rank, its node-local rank, the IPv4 address of its
 * namespace on the test subnet (prefix in argv[1]) and the MPI_Allreduce sum
 * of rank+1, so the test can check placement (by slot: ranks 0,1 on h1,
 * ranks 2,3 on h2) and that traffic crossed the bridge (sum = n(n+1)/2). */
#define _DEFAULT_SOURCE /* getifaddrs, inet_ntop */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <mpi.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char *prefix = argc > 1 ? argv[1] : "10.77.";
    char addr[INET_ADDRSTRLEN] = "none";
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) == 0) {
        for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
            char buf[INET_ADDRSTRLEN];
            if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
                continue;
            inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, buf, sizeof buf);
            if (!strncmp(buf, prefix, strlen(prefix)))
                snprintf(addr, sizeof addr, "%s", buf);
        }
        freeifaddrs(ifs);
    }
    int mine = rank + 1, sum = 0;
    MPI_Allreduce(&mine, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    printf("hello rank=%d size=%d local=%s addr=%s sum=%d\n", rank, size, lr ? lr : "?", addr, sum);
    MPI_Finalize();
    return 0;
}
