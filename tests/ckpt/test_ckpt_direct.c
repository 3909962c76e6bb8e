/* test_ckpt_direct.c - the O_DIRECT writer of large checkpoint datasets
 * (ckpt_direct.c) on its own: bytes at odd file offsets, odd lengths (an
 * edge of a page, a block and a bit, several blocks), from source
 * addresses placed like the file (written in place) and not (copied), land
 * exactly where they belong, and nothing outside them is touched (the
 * file is filled with a pattern first and read back whole through a fresh
 * descriptor), and the bytes copied are the whole pages or none; a write
 * past a file-size limit reports its error, either way; the test hook
 * turns the direct path off. The files live in the
 * working directory (the build tree, on a disk), where O_DIRECT works on
 * Linux file systems; where it does not, the writer must say so by giving
 * NULL, which is checked instead. */
#define _GNU_SOURCE /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "trainer/ckpt/ckpt_internal.h"
#include "test_util.h"

#define MIB (1u << 20)
#define PATTERN 0xA5

static char path[256];

/* A file of size bytes of PATTERN, written through the page cache. */
static int file_fill(size_t size)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    unsigned char *p = malloc(size);
    memset(p, PATTERN, size);
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(fd, p + done, size - done, (off_t)done);
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    free(p);
    return fd;
}

/* Reads the whole file through a new descriptor. */
static unsigned char *file_read(size_t size)
{
    int fd = open(path, O_RDONLY);
    unsigned char *p = malloc(size + 1);
    size_t done = 0;
    while (fd >= 0 && done < size + 1) {
        ssize_t r = pread(fd, p + done, size + 1 - done, (off_t)done);
        if (r <= 0)
            break;
        done += (size_t)r;
    }
    if (fd >= 0)
        close(fd);
    if (done != size) {
        free(p);
        return NULL;
    }
    return p;
}

/* Writes len bytes from src + shift at file offset off, checks the whole
 * file, and that the writer copied `copied` bytes (0: it wrote from the
 * caller's memory). */
static void one_case(const unsigned char *src, uint64_t off, size_t len, size_t shift, uint64_t copied)
{
    size_t size = (size_t)off + len + 5000;
    int fd = file_fill(size);
    EXPECT(fd >= 0, "create %s: %s", path, strerror(errno));
    if (fd < 0)
        return;
    ckpt_dio *d = ckpt_dio_open(path, fd);
    EXPECT(d != NULL, "ckpt_dio_open on a file system that takes O_DIRECT");
    if (!d) {
        close(fd);
        return;
    }
    int e = ckpt_dio_write(d, src + shift, len, off);
    EXPECT(e == 0, "write of %zu bytes at %llu (source +%zu): %s", len, (unsigned long long)off, shift, strerror(e));
    EXPECT(ckpt_dio_bounced(d) == copied, "%zu bytes at %llu (source +%zu): %llu bytes copied, expected %llu", len,
           (unsigned long long)off, shift, (unsigned long long)ckpt_dio_bounced(d), (unsigned long long)copied);
    ckpt_dio_close(d);
    close(fd);
    unsigned char *back = file_read(size);
    EXPECT(back != NULL, "file size stays %zu", size);
    if (!back)
        return;
    size_t bad = SIZE_MAX;
    for (size_t i = 0; i < size && bad == SIZE_MAX; i++) {
        int inside = i >= off && i < off + len;
        unsigned char want = inside ? src[shift + i - off] : PATTERN;
        if (back[i] != want)
            bad = i;
    }
    EXPECT(bad == SIZE_MAX, "%zu bytes at %llu (source +%zu): first wrong byte at file offset %zu", len,
           (unsigned long long)off, shift, bad);
    free(back);
}

/* A write that the file-size limit stops partway is an error, not a
 * short file that looks complete (from src + shift: in place or copied). */
static void limit_case(const unsigned char *src, size_t shift)
{
    int fd = file_fill(4096);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 12 * MIB;
    signal(SIGXFSZ, SIG_IGN);
    EXPECT(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
    ckpt_dio *d = ckpt_dio_open(path, fd);
    int e = d ? ckpt_dio_write(d, src + shift, 20 * MIB, 4096) : -1;
    EXPECT(e == EFBIG, "a write past the file-size limit (source +%zu): %s", shift,
           e > 0 ? strerror(e) : "no error");
    ckpt_dio_close(d);
    setrlimit(RLIMIT_FSIZE, &old);
    close(fd);
}

int main(void)
{
    snprintf(path, sizeof path, "test_ckpt_direct.%ld.bin", (long)getpid());
    int probe = open(path, O_WRONLY | O_CREAT | O_DIRECT, 0644);
    if (probe < 0) {
        /* Not a file system for O_DIRECT: the writer must decline. */
        int fd = open(path, O_WRONLY | O_CREAT, 0644);
        ckpt_dio *d = fd >= 0 ? ckpt_dio_open(path, fd) : NULL;
        EXPECT(fd >= 0 && d == NULL, "ckpt_dio_open declines where O_DIRECT fails (%s)", strerror(errno));
        ckpt_dio_close(d);
        if (fd >= 0)
            close(fd);
        unlink(path);
        printf("O_DIRECT not available in the working directory: only the refusal was checked\n");
        return TEST_EXIT();
    }
    close(probe);

    size_t max = 26 * MIB;
    unsigned char *src = NULL; /* page-aligned, like a snapshot buffer */
    if (posix_memalign((void **)&src, 4096, max) != 0)
        return 1;
    uint32_t x = 12345;
    for (size_t i = 0; i < max; i++)
        src[i] = (unsigned char)((x = x * 1664525u + 1013904223u) >> 24);

    /* {offset, length, source shift, bytes copied}: a page-aligned start
     * and end; odd ones; shorter than a page inside one and across two;
     * exactly one block; one block and a page and a bit; several blocks and
     * a part; the offsets HDF5 gives (4 KiB-aligned, plus a 1 MiB head).
     * Copied: the whole file pages in the range (the partial ones at its
     * ends go through the page cache) when the source is not placed like
     * the file modulo 4096, none when it is. */
    static const struct {
        uint64_t off;
        size_t len, shift;
        uint64_t copied;
    } cases[] = {
        {0, 4096, 0, 0},
        {4096, 3 * 4096, 16, 3 * 4096},
        {1, 10, 3, 0},
        {4090, 20, 1, 0},
        {12345, 4096, 7, 0},
        {4096, 8 * MIB, 0, 0},
        {4096, 8 * MIB, 64, 8 * MIB},                             /* a 64-byte-aligned tensor */
        {69632 + 1052000, 8 * MIB + 4096 + 3, 16, 8 * MIB},       /* head 672 bytes */
        {69632 + 1052000, 20 * MIB + 5, 3424, 0},                 /* 3424 + 672 = 4096: in place */
        {77, 2 * 8 * MIB + 12345, 5, 2 * 8 * MIB + 2 * 4096},     /* head 4019, 8326 bytes left */
        {77, 2 * 8 * MIB + 12345, 77, 0},                         /* 77 + 4019 = 4096: in place */
        {65536, 25 * MIB + 777, 4096, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        one_case(src, cases[i].off, cases[i].len, cases[i].shift, cases[i].copied);
    limit_case(src, 0);
    limit_case(src, 16);

    setenv("RT_CKPT_TEST_NO_DIRECT", "1", 1);
    int fd = file_fill(4096);
    ckpt_dio *d = ckpt_dio_open(path, fd);
    EXPECT(d == NULL, "RT_CKPT_TEST_NO_DIRECT turns the direct path off");
    ckpt_dio_close(d);
    close(fd);
    unsetenv("RT_CKPT_TEST_NO_DIRECT");

    free(src);
    unlink(path);
    return TEST_EXIT();
}
