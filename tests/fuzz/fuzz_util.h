/* fuzz_util.h - what the libFuzzer targets share: the input written to a
 * file (the readers under test take paths, as ringtrain's commands do), in
 * a private temporary directory removed at exit, and HDF5's own error
 * printing turned off (a refused file is the expected outcome, not news). */
#ifndef RT_TESTS_FUZZ_UTIL_H
#define RT_TESTS_FUZZ_UTIL_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir[256];

static void fuzz_cleanup(void)
{
    if (!fuzz_dir[0])
        return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz: could not remove %s\n", fuzz_dir);
}

/* The private directory (created on first use). */
static const char *fuzz_tmpdir(void)
{
    if (!fuzz_dir[0]) {
        snprintf(fuzz_dir, sizeof fuzz_dir, "/tmp/rt_fuzz.XXXXXX");
        if (!mkdtemp(fuzz_dir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fuzz_cleanup);
    }
    return fuzz_dir;
}

/* A path in the private directory. */
__attribute__((unused)) static const char *fuzz_path(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", fuzz_tmpdir(), name);
    return buf;
}

/* Writes data to the file `name` in the private directory; its path. */
__attribute__((unused)) static const char *fuzz_file(const char *name, const uint8_t *data, size_t size, char *buf,
                             size_t bufsize)
{
    fuzz_path(name, buf, bufsize);
    FILE *f = fopen(buf, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror("fuzz: writing the input file");
        abort();
    }
    return buf;
}

#endif
