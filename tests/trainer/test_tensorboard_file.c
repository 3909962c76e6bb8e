/* test_tensorboard_file.c - the event-file writer and reader
 * (trainer/tensorboard): the masked CRC against values computed outside
 * the project, the framing of the first record byte by byte, a write and
 * read-back of scalars (steps, tags, float32 values, 0.0 kept), a second
 * writer in the same directory within the same second gets its own file, and the
 * reader's reports: a file cut inside its last record (every cut length),
 * a flipped byte in a length or in a record, a directory below a regular
 * file. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"
#include "trainer/tensorboard/tb_reader.h"
#include "trainer/tensorboard/tb_writer.h"

typedef struct {
    int n;
    int64_t step[16];
    char tag[16][32];
    float value[16];
} seen_t;

static void on_scalar(void *ctx, int64_t step, double wall_time, const char *tag, float value)
{
    seen_t *s = ctx;
    (void)wall_time;
    if (s->n < 16) {
        s->step[s->n] = step;
        snprintf(s->tag[s->n], sizeof s->tag[0], "%s", tag);
        s->value[s->n] = value;
    }
    s->n++;
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static unsigned char *slurp(const char *path, long *n)
{
    *n = file_size(path);
    unsigned char *p = malloc((size_t)*n);
    FILE *f = fopen(path, "rb");
    if (!p || !f || fread(p, 1, (size_t)*n, f) != (size_t)*n) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    return p;
}

static void spit(const char *path, const unsigned char *p, long n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, (size_t)n, f) != (size_t)n || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

int main(void)
{
    /* the mask over crc32c("123456789") = 0xE3069283, and over the empty
     * string (crc 0): values worked out in Python from the definition */
    EXPECT(tb_masked_crc32c("123456789", 9) == 0xc78ab0e5u, "masked crc %08x",
           tb_masked_crc32c("123456789", 9));
    EXPECT(tb_masked_crc32c("", 0) == 0xa282ead8u, "masked crc of nothing");

    char dir[] = "/tmp/rt_tb_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char sub[512];
    snprintf(sub, sizeof sub, "%s/a/b", dir);  /* missing parents are created */
    tb_writer_t *w = NULL;
    EXPECT(tb_writer_open(&w, sub) == RT_OK, "open: %s", rt_last_error());
    if (!w)
        return TEST_EXIT();
    char path[1024];
    snprintf(path, sizeof path, "%s", tb_writer_path(w));
    EXPECT(strstr(path, "/a/b/events.out.tfevents.") != NULL, "file name %s", path);
    /* the first record is on disk at once: length 24 (wall_time 9 bytes,
     * file_version 2 + 13), its masked CRC, then the Event */
    long n;
    unsigned char *raw = slurp(path, &n);
    EXPECT(n == 12 + 24 + 4, "first record alone: %ld bytes", n);
    const unsigned char head[12] = {24, 0, 0, 0, 0, 0, 0, 0, 0xa3, 0x7f, 0x4b, 0x22};
    EXPECT(n >= 12 && memcmp(raw, head, 12) == 0, "length and its masked CRC");
    EXPECT(n >= 36 && raw[12] == 0x09 && raw[21] == 0x1a && raw[22] == 13 &&
               memcmp(raw + 23, "brain.Event:2", 13) == 0,
           "wall_time (field 1, double) then file_version (field 3)");
    free(raw);

    EXPECT(tb_writer_scalar(w, 5, "train/loss", 1.25) == RT_OK, "scalar");
    EXPECT(tb_writer_scalar(w, 5, "train/lr", 0.0) == RT_OK, "scalar 0");
    EXPECT(tb_writer_scalar(w, 1LL << 40, "eval/accuracy", 0.1) == RT_OK, "scalar, big step");
    EXPECT(file_size(path) == 40, "scalars buffered until the flush");
    EXPECT(tb_writer_flush(w) == RT_OK, "flush");
    EXPECT(file_size(path) > 40, "flushed");
    EXPECT(tb_writer_close(w) == RT_OK, "close");

    seen_t seen = {0};
    tb_read_info_t info;
    EXPECT(tb_read_file(path, on_scalar, &seen, &info) == RT_OK, "read: %s", rt_last_error());
    EXPECT(info.records == 4 && info.scalars == 3 && !info.truncated, "4 records, 3 scalars");
    EXPECT(!strcmp(info.file_version, "brain.Event:2"), "file_version '%s'", info.file_version);
    EXPECT(seen.n == 3 && seen.step[0] == 5 && !strcmp(seen.tag[0], "train/loss") &&
               seen.value[0] == 1.25f,
           "first scalar");
    EXPECT(seen.n == 3 && seen.step[1] == 5 && !strcmp(seen.tag[1], "train/lr") &&
               seen.value[1] == 0.0f,
           "a zero is kept (the oneof)");
    EXPECT(seen.n == 3 && seen.step[2] == (1LL << 40) && seen.value[2] == 0.1f,
           "float32 of the value, int64 step");
    EXPECT(info.good_bytes == file_size(path), "good bytes = file size");

    /* a second writer in the same second: another file, the first untouched */
    const long size1 = file_size(path);
    tb_writer_t *w2 = NULL;
    EXPECT(tb_writer_open(&w2, sub) == RT_OK, "second open");
    if (w2) {
        EXPECT(strcmp(tb_writer_path(w2), path) != 0, "a new file: %s", tb_writer_path(w2));
        tb_writer_close(w2);
    }
    EXPECT(file_size(path) == size1, "the first file is not rewritten");

    /* every cut inside the last record: truncated, the records before it delivered */
    raw = slurp(path, &n);
    tb_read_info_t whole = info;
    char cut[1100];
    snprintf(cut, sizeof cut, "%s/cut", dir);
    /* where the last record starts, from the lengths */
    long last_start = 0;
    {
        long at = 0;
        while (at < n) {
            uint64_t len = 0;
            for (int i = 7; i >= 0; i--)
                len = len << 8 | raw[at + i];
            last_start = at;
            at += 12 + (long)len + 4;
        }
    }
    int bad_cuts = 0;
    for (long keep = last_start + 1; keep < n; keep++) {
        spit(cut, raw, keep);
        seen_t s2 = {0};
        tb_read_info_t ci;
        rt_status st = tb_read_file(cut, on_scalar, &s2, &ci);
        if (st != RT_ERR_CORRUPT || !ci.truncated || ci.records != whole.records - 1 ||
            s2.n != 2 || ci.good_bytes != last_start ||
            !strstr(rt_last_error(), "truncated last record")) {
            bad_cuts++;
            fprintf(stderr, "cut at %ld: st %d, %s\n", keep, (int)st, rt_last_error());
        }
    }
    EXPECT(bad_cuts == 0, "every cut inside the last record is reported as truncated");
    spit(cut, raw, last_start);
    EXPECT(tb_read_file(cut, NULL, NULL, &info) == RT_OK && info.records == whole.records - 1,
           "a cut between records reads clean");

    /* a flipped bit in a length, in a record's data */
    raw[last_start + 1] ^= 1;
    spit(cut, raw, n);
    EXPECT(tb_read_file(cut, NULL, NULL, &info) == RT_ERR_CORRUPT &&
               strstr(rt_last_error(), "length CRC mismatch") && !info.truncated,
           "length CRC: %s", rt_last_error());
    raw[last_start + 1] ^= 1;
    raw[n - 6] ^= 0x10;
    spit(cut, raw, n);
    EXPECT(tb_read_file(cut, NULL, NULL, &info) == RT_ERR_CORRUPT &&
               strstr(rt_last_error(), "data CRC mismatch") && info.records == whole.records - 1,
           "data CRC: %s", rt_last_error());
    free(raw);

    /* a directory that cannot be made: below a regular file */
    char below[1200];
    snprintf(below, sizeof below, "%s/sub", cut);
    tb_writer_t *w3 = NULL;
    EXPECT(tb_writer_open(&w3, below) == RT_ERR_IO && !w3 && strstr(rt_last_error(), cut),
           "below a file: %s", rt_last_error());

    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "note: could not remove %s\n", dir);
    return TEST_EXIT();
}
