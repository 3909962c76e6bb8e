/* test_hdf5_vlen_check.c - the check that keeps a damaged global heap from
 * hanging libhdf5 in H5Aread (common/hdf5_vlen_check.c):
 *  - string attributes written by ringtrain read back, with object headers
 *    of version 1 (the default) and 2 (libver latest, as checkpoints are
 *    written), past an object header continuation (many long attributes),
 *    and in dense storage (over 8 attributes in a version 2 header: a
 *    fractal heap, small and with indirect blocks);
 *  - the same file with its global heap's free-space object set to size 0
 *    (the bytes edited here, found by this test's own walk of the "GCOL"
 *    collection) is refused as a format error naming the cause, and so is
 *    a damaged collection signature; both return at once (the test's
 *    TIMEOUT would catch a hang);
 *  - the input that the fuzzer found (argv[1], tests/fuzz/regress) is
 *    refused by the dataset and checkpoint openers. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/hdf5_util.h"
#include "data/dataset.h"
#include "test_util.h"
#include "trainer/ckpt/ckpt_file.h"

static char dir[] = "/tmp/rt_vlen_check.XXXXXX";

/* Writes attributes a0..a{n-1} = "value <i> ..." (long: len bytes) to the
 * root of a new file; latest: libver bounds latest (object header v2). */
static int write_file(const char *path, int n, int len, int latest)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (latest)
        H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char name[16], value[1024];
        snprintf(name, sizeof name, "a%d", i);
        int k = snprintf(value, sizeof value, "value %d", i);
        for (; k < len && k < (int)sizeof value - 1; k++)
            value[k] = (char)('a' + (k + i) % 26);
        value[k] = '\0';
        rc = h5_write_attr_string(f, name, value) == RT_OK ? 0 : -1;
    }
    H5Fclose(f);
    return rc;
}

/* Reads attribute name of path's root; its status, the text in buf. */
static rt_status read_attr(const char *path, const char *name, char *buf, size_t cap)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return RT_ERR_HDF5;
    bool present = false;
    rt_status st = h5_attr_string(f, name, buf, cap, &present);
    H5Fclose(f);
    return st;
}

static unsigned char *slurp(const char *path, long *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*n);
    if (b && fread(b, 1, (size_t)*n, f) != (size_t)*n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

static int spit(const char *path, const unsigned char *b, long n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(b, 1, (size_t)n, f) == (size_t)n;
    if (f)
        ok = fclose(f) == 0 && ok;
    return ok ? 0 : -1;
}

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The file offset of the size field of the collection's free-space object
 * (index 0), or -1: this walk assumes 8-byte lengths, as HDF5 writes by
 * default, and is written from the format specification, not from the
 * code under test. */
static long free_space_size_field(const unsigned char *b, long n)
{
    for (long at = 0; at + 16 <= n; at++) {
        if (memcmp(b + at, "GCOL", 4) != 0 || b[at + 4] != 1)
            continue;
        uint64_t size = le(b + at + 8, 8);
        long pos = at + 16;
        while (pos + 16 <= at + (long)size && pos + 16 <= n) {
            unsigned idx = (unsigned)le(b + pos, 2);
            uint64_t osize = le(b + pos + 8, 8);
            if (idx == 0)
                return pos + 8;
            pos += 16 + (long)((osize + 7) / 8 * 8);
        }
    }
    return -1;
}

static void test_valid(int latest, int nattr, int len)
{
    char path[256], buf[2048];
    snprintf(path, sizeof path, "%s/valid_%d_%d.h5", dir, latest, nattr);
    EXPECT(write_file(path, nattr, len, latest) == 0, "writing %s", path);
    for (int i = 0; i < nattr; i += nattr > 4 ? nattr / 4 : 1) {
        char name[16], want[32];
        snprintf(name, sizeof name, "a%d", i);
        snprintf(want, sizeof want, "value %d", i);
        rt_status st = read_attr(path, name, buf, sizeof buf);
        EXPECT(st == RT_OK && strncmp(buf, want, strlen(want)) == 0 && (int)strlen(buf) >= len,
               "libver %s, %d attributes: %s read back as '%.40s' (%s)",
               latest ? "latest" : "earliest", nattr, name, buf,
               st == RT_OK ? "ok" : rt_last_error());
    }
    /* the last one too: with many, it sits in a continuation chunk */
    char name[16];
    snprintf(name, sizeof name, "a%d", nattr - 1);
    EXPECT(read_attr(path, name, buf, sizeof buf) == RT_OK, "%s: %s", name, rt_last_error());
}

static void test_damaged(void)
{
    char path[256], buf[256];
    snprintf(path, sizeof path, "%s/damaged.h5", dir);
    EXPECT(write_file(path, 1, 0, 0) == 0, "writing %s", path);
    long n = 0;
    unsigned char *b = slurp(path, &n);
    long at = b ? free_space_size_field(b, n) : -1;
    EXPECT(at > 0, "no free-space object found in the global heap of %s", path);
    if (at <= 0) {
        free(b);
        return;
    }
    memset(b + at, 0, 8);
    EXPECT(spit(path, b, n) == 0, "rewriting %s", path);
    rt_status st = read_attr(path, "a0", buf, sizeof buf);
    EXPECT(st == RT_ERR_FORMAT && strstr(rt_last_error(), "free-space object"),
           "a free-space object of size 0: status %d, '%s'", (int)st, rt_last_error());

    /* the collection's signature damaged */
    long g = -1;
    for (long i = 0; i + 4 <= n && g < 0; i++)
        if (memcmp(b + i, "GCOL", 4) == 0)
            g = i;
    b[g] = 'X';
    EXPECT(spit(path, b, n) == 0, "rewriting %s", path);
    st = read_attr(path, "a0", buf, sizeof buf);
    EXPECT(st == RT_ERR_FORMAT && strstr(rt_last_error(), "GCOL"),
           "no GCOL signature: status %d, '%s'", (int)st, rt_last_error());
    free(b);
}

static void test_fuzzer_input(const char *path)
{
    dataset_t *d = NULL;
    rt_status st = dataset_open(path, &d);
    EXPECT(st != RT_OK, "dataset_open accepted %s", path);
    if (st == RT_OK)
        dataset_close(d);
    ckpt_meta_t meta;
    memset(&meta, 0, sizeof meta);
    st = ckpt_read_meta(path, &meta);
    EXPECT(st != RT_OK, "ckpt_read_meta accepted %s", path);
    if (st == RT_OK)
        ckpt_meta_free(&meta);
}

int main(int argc, char **argv)
{
    rt_hdf5_quiet();
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_valid(0, 3, 0);
    test_valid(1, 3, 0);
    test_valid(0, 40, 200);
    test_valid(1, 6, 200);
    /* over 8 attributes with version 2 headers: dense storage, a fractal
     * heap whose root is a direct block, then an indirect one */
    test_valid(1, 9, 0);
    test_valid(1, 300, 10);
    test_damaged();
    if (argc > 1)
        test_fuzzer_input(argv[1]);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return TEST_EXIT();
}
