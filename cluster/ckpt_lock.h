/* ckpt_lock.h - one job per checkpoint directory.
 *
 * A job that writes checkpoints takes an exclusive lock on DIR/.lock (flock)
 * and writes its pid and host into it. A second job that asks for the same
 * directory is refused with a message naming the holder, so two runs never
 * overwrite each other's checkpoints. The kernel drops the lock when the
 * holder exits or is killed (kill -9 included), so a crash leaves no stale
 * lock behind; the file itself stays and is reused. Only one process of a job
 * (rank 0) takes the lock. flock is honoured across hosts on NFSv4 and
 * Lustre/GPFS mounts with locking enabled; on a file system without locking
 * the lock only protects against jobs on the same host. */
#ifndef RT_CLUSTER_CKPT_LOCK_H
#define RT_CLUSTER_CKPT_LOCK_H

#include "common/status.h"

/* Creates dir if missing (mode 0755), opens DIR/.lock (mode 0644, never
 * world-writable) and takes the lock without waiting. On success *fd_out
 * holds it until ckpt_dir_unlock(). When another process holds it:
 * RT_ERR_USAGE "checkpoint directory DIR is in use by pid P on host H
 * (DIR/.lock)" - a usage error, so the launcher does not retry it. */
rt_status ckpt_dir_lock(const char *dir, int *fd_out);

/* Releases the lock (closes fd); fd < 0 is ignored. */
void ckpt_dir_unlock(int fd);

#endif
