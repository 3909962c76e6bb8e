/* hostfile.h - Open MPI hostfiles as `ringtrain launch` accepts them:
 *
 *   # comment (from '#' to the end of the line)
 *   <host> slots=<N> [max_slots=<M>]
 *
 * Parsing is strict so that a mistake is reported with its file and line
 * before any rank starts, and what passes is what Open MPI 4.1's mpirun
 * accepts: unknown keys, missing or non-positive slots, non-numeric or
 * signed values ("slots=+2", which mpirun reads as -1), max_slots below
 * slots, duplicate hosts, host names that could be taken for options
 * (leading '-') or that hold characters outside [A-Za-z0-9.-] (mpirun's
 * node-name rule: no '_', no IPv6 address), and files without any host are
 * all RT_ERR_USAGE with a message "FILE:LINE: reason". CRLF line endings are
 * accepted (the '\r' counts as a blank), but mpirun's parser refuses them,
 * so the launcher gives it a copy without (hostfile_write_lf). Nothing here
 * passes hostfile text to a shell. */
#ifndef RT_CLUSTER_HOSTFILE_H
#define RT_CLUSTER_HOSTFILE_H

#include <stdbool.h>

#include "common/status.h"

#define HOSTFILE_HOST_MAX 255   /* longest DNS name */

typedef struct {
    char host[HOSTFILE_HOST_MAX + 1];
    int slots;       /* ranks mpirun places here without oversubscription */
    int max_slots;   /* hard limit, 0 when not given */
    int line;        /* 1-based line number in the file */
} hostfile_entry_t;

typedef struct {
    char *path;              /* name used in messages */
    hostfile_entry_t *hosts;
    int count;
    int total_slots;
    bool has_cr;             /* the file holds '\r' (CRLF line endings) */
} hostfile_t;

/* Parses hostfile text; `name` is used in messages ("name:LINE: ..."). */
rt_status hostfile_parse_text(const char *name, const char *text, hostfile_t *out);

/* Reads and parses the file at path (at most 1 MiB). */
rt_status hostfile_load(const char *path, hostfile_t *out);

void hostfile_free(hostfile_t *hf);

/* Writes the file at path to fd with "\r\n" turned into "\n" (and any
 * other '\r' into a blank), the form mpirun reads. */
rt_status hostfile_write_lf(const char *path, int fd);

/* Checks that np ranks fit: np <= total slots unless oversubscribe, and
 * never beyond the sum of max_slots when every host gives one. The message
 * names the hosts and their lines. RT_ERR_USAGE when they do not fit. */
rt_status hostfile_check_np(const hostfile_t *hf, int np, bool oversubscribe);

#endif
