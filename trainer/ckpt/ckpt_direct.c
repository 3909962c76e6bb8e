/* ckpt_direct.c - writes the bulk of a large dataset's bytes with O_DIRECT,
 * past the page cache: straight from the caller's memory when it is
 * aligned like the file (an asynchronous checkpoint's snapshot buffers,
 * ckpt_snapshot.c), otherwise copied into two aligned buffers in turn
 * while a writer thread hands the other one to the disk.
 *
 * Why: through the page cache every byte is copied into a freshly
 * allocated page-cache page, and on a virtual machine whose host reclaims
 * the guest's free memory (virtio-balloon free page reporting) each fresh
 * page first costs a fault on the host; the copy then runs at a fraction of
 * memory speed and the write at about half of dd's (docs/PERFORMANCE.md,
 * "Checkpoints"). With O_DIRECT the only copy is into two buffers that stay
 * mapped, and the disk works while the next block is copied; from aligned
 * memory there is none, and the only CPU work left is the kernel's. */
#define _GNU_SOURCE /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trainer/ckpt/ckpt_internal.h"

/* File offsets, lengths and buffer addresses of direct writes are
 * multiples of this: every block device's logical block size and the page
 * size divide it, and a 4 KiB page is then either written directly or
 * through the page cache, never both. */
#define DIO_ALIGN 4096u
#define DIO_BLOCK (8u << 20)
/* Bytes per write when there is no copy to overlap: large enough for the
 * disk to keep several requests in flight. */
#define DIO_DIRECT_CHUNK (64u << 20)

struct ckpt_dio {
    int dfd;         /* the file, opened with O_DIRECT */
    int fd;          /* the same file, through the page cache (the edges) */
    unsigned char *buf[2];
    /* The writer's queue, under mu: slot i holds len[i] bytes for offset
     * off[i] while full[i]; done tells the writer to finish. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int full[2];
    size_t len[2];
    off_t off[2];
    int done;
    int err; /* errno of the first failed write, 0 if none */
    int buffered; /* O_DIRECT refused a write: the rest goes through fd */
    uint64_t bounced; /* bytes copied into buf[] so far */
};

/* pwrite of all n bytes, resumed after short writes. Returns 0 or errno. */
static int pwrite_all(int fd, const unsigned char *p, size_t n, off_t off)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno;
        if (w == 0)
            return EIO;
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

/* One block to disk: directly, or, if the file system turns O_DIRECT down
 * for it (EINVAL: an alignment it wants larger than DIO_ALIGN), through the
 * page cache from then on, so a checkpoint is never lost to the speed-up. */
static int block_write(ckpt_dio *d, const unsigned char *p, size_t n, off_t off)
{
    if (!d->buffered) {
        int e = pwrite_all(d->dfd, p, n, off);
        if (e != EINVAL)
            return e;
        d->buffered = 1;
    }
    return pwrite_all(d->fd, p, n, off);
}

static void *writer_run(void *arg)
{
    ckpt_dio *d = arg;
    for (int slot = 0;; slot ^= 1) {
        pthread_mutex_lock(&d->mu);
        while (!d->full[slot] && !d->done)
            pthread_cond_wait(&d->cv, &d->mu);
        if (!d->full[slot]) { /* done, and nothing left */
            pthread_mutex_unlock(&d->mu);
            return NULL;
        }
        pthread_mutex_unlock(&d->mu);
        int e = d->err ? 0 : block_write(d, d->buf[slot], d->len[slot], d->off[slot]);
        pthread_mutex_lock(&d->mu);
        if (e && !d->err)
            d->err = e;
        d->full[slot] = 0;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
    }
}

ckpt_dio *ckpt_dio_open(const char *path, int fd)
{
    if (getenv("RT_CKPT_TEST_NO_DIRECT")) /* test hook: the page-cache path, for comparison */
        return NULL;
    ckpt_dio *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->fd = fd;
    d->dfd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (d->dfd < 0) { /* a file system without O_DIRECT (older tmpfs): the page cache */
        free(d);
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        if (posix_memalign((void **)&d->buf[i], DIO_ALIGN, DIO_BLOCK) != 0) {
            d->buf[i] = NULL;
            ckpt_dio_close(d);
            return NULL;
        }
    }
    return d;
}

void ckpt_dio_close(ckpt_dio *d)
{
    if (!d)
        return;
    close(d->dfd);
    free(d->buf[0]);
    free(d->buf[1]);
    free(d);
}

/* The body, from memory that is aligned like the file offset: straight
 * from the caller's bytes, in blocks, with no copy. */
static int body_write_in_place(ckpt_dio *d, const unsigned char *p, size_t body, uint64_t off)
{
    for (size_t pos = 0; pos < body; pos += DIO_DIRECT_CHUNK) {
        size_t n = body - pos < DIO_DIRECT_CHUNK ? body - pos : DIO_DIRECT_CHUNK;
        int e = block_write(d, p + pos, n, (off_t)(off + pos));
        if (e)
            return e;
    }
    return 0;
}

/* The body, from memory that is not: each block is copied into one of the
 * two aligned buffers while the writer thread writes the other. */
static int body_write_bounced(ckpt_dio *d, const unsigned char *p, size_t body, uint64_t off)
{
    pthread_t tid;
    if (pthread_mutex_init(&d->mu, NULL) != 0)
        return EAGAIN;
    if (pthread_cond_init(&d->cv, NULL) != 0) {
        pthread_mutex_destroy(&d->mu);
        return EAGAIN;
    }
    d->full[0] = d->full[1] = 0;
    d->done = 0;
    d->err = 0;
    int e = pthread_create(&tid, NULL, writer_run, d);
    if (e) {
        pthread_cond_destroy(&d->cv);
        pthread_mutex_destroy(&d->mu);
        return e;
    }
    int slot = 0;
    for (size_t pos = 0; pos < body; pos += DIO_BLOCK, slot ^= 1) {
        size_t n = body - pos < DIO_BLOCK ? body - pos : DIO_BLOCK;
        pthread_mutex_lock(&d->mu);
        while (d->full[slot] && !d->err)
            pthread_cond_wait(&d->cv, &d->mu);
        int failed = d->err != 0;
        pthread_mutex_unlock(&d->mu);
        if (failed)
            break;
        /* The copy of this block overlaps the writer's write of the
         * previous one. */
        memcpy(d->buf[slot], p + pos, n);
        pthread_mutex_lock(&d->mu);
        d->len[slot] = n;
        d->off[slot] = (off_t)(off + pos);
        d->full[slot] = 1;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
    }
    pthread_mutex_lock(&d->mu);
    d->done = 1;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(tid, NULL);
    e = d->err;
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    return e;
}

uint64_t ckpt_dio_bounced(const ckpt_dio *d)
{
    return d ? d->bounced : 0;
}

int ckpt_dio_write(ckpt_dio *d, const void *data, size_t len, uint64_t off)
{
    const unsigned char *p = data;
    /* The unaligned edges go through the page cache; the head before the
     * first direct block, the tail after the last one (when the direct
     * writes are complete, so a read-modify-write of its page sees them). */
    size_t head = (size_t)((DIO_ALIGN - off % DIO_ALIGN) % DIO_ALIGN);
    if (head >= len)
        return pwrite_all(d->fd, p, len, (off_t)off);
    size_t body = (len - head) / DIO_ALIGN * DIO_ALIGN;
    int e = pwrite_all(d->fd, p, head, (off_t)off);
    if (e)
        return e;
    if (body > 0) {
        /* Memory placed like the file (an aligned snapshot buffer) goes to
         * the disk as it is; other memory (the live arena of a synchronous
         * write, a tensor inside it) through the aligned buffers. */
        if ((uintptr_t)(p + head) % DIO_ALIGN == 0) {
            e = body_write_in_place(d, p + head, body, off + head);
        } else {
            e = body_write_bounced(d, p + head, body, off + head);
            d->bounced += body;
        }
        if (e)
            return e;
    }
    return pwrite_all(d->fd, p + head + body, len - head - body, (off_t)(off + head + body));
}
