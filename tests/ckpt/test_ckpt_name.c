/* test_ckpt_name.c - the checkpoint file-name grammar (trainer/ckpt/
 * ckpt_name.h) at its edges, and the launcher's choice of the newest
 * checkpoint (launch/launcher_ckpt.c) against the grammar on the same
 * directory listing: both must read the same names the same way. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "launch/launcher.h"
#include "test_util.h"
#include "trainer/ckpt/ckpt_name.h"

typedef struct {
    const char *name;
    int ok;
    int64_t step;
} name_case_t;

static const name_case_t cases[] = {
    {"ckpt-00000001.h5", 1, 1},
    {"ckpt-00000000.h5", 1, 0},
    {"ckpt-123456789.h5", 1, 123456789},
    {"ckpt-000000000000000000000000042.h5", 1, 42},       /* many leading zeros */
    {"ckpt-9223372036854775807.h5", 1, INT64_MAX},        /* the largest step */
    {"ckpt-9223372036854775808.h5", 0, 0},                /* INT64_MAX + 1 */
    {"ckpt-99999999999999999999.h5", 0, 0},
    {"ckpt-0000001.h5", 0, 0},                            /* 7 digits */
    {"ckpt-.h5", 0, 0},
    {"ckpt-00000001.h5.tmp.123", 0, 0},
    {".ckpt-00000001.h5.tmp.123", 0, 0},                  /* the writer's temporary */
    {"xckpt-00000001.h5", 0, 0},
    {"ckpt-+0000001.h5", 0, 0},
    {"ckpt- 0000001.h5", 0, 0},
    {"ckpt-0000000x.h5", 0, 0},
    {"ckpt-00000001.H5", 0, 0},
    {"ckpt-00000001.h5 ", 0, 0},
    {"ckpt-00000001", 0, 0},
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

static void test_grammar(void)
{
    for (int i = 0; i < NCASES; i++) {
        int64_t step = -7;
        int ok = ckpt_name_parse(cases[i].name, &step);
        EXPECT(ok == cases[i].ok && (!ok || step == cases[i].step), "'%s': %d step %lld, want %d %lld",
               cases[i].name, ok, (long long)step, cases[i].ok, (long long)cases[i].step);
    }
    char path[64];
    int64_t back = -1;
    EXPECT(ckpt_path_for_step("d", 5, path, sizeof path) == RT_OK && !strcmp(path, "d/ckpt-00000005.h5") &&
           ckpt_name_parse(path + 2, &back) && back == 5, "written name '%s' parses back", path);
    EXPECT(ckpt_path_for_step("d", INT64_MAX, path, sizeof path) == RT_OK &&
           ckpt_name_parse(path + 2, &back) && back == INT64_MAX, "INT64_MAX round trip '%s'", path);
    EXPECT(ckpt_path_for_step("d", -1, path, sizeof path) == RT_ERR_INVALID, "negative step refused");
    EXPECT(ckpt_path_for_step("a-long-directory", 1, path, 8) == RT_ERR_INVALID, "too long refused");
}

/* The launcher's newest name equals the largest step the grammar reads in
 * the same directory, for listings with and without the edge cases. */
static void check_dir_agrees(const char *dir, const char *what)
{
    char chosen[256];
    EXPECT(launch_ckpt_newest(dir, chosen, sizeof chosen) == RT_OK, "%s: launcher listing", what);
    DIR *d = opendir(dir);
    int64_t best = -1, step;
    char want[256] = "";
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (ckpt_name_parse(e->d_name, &step) && step > best) {
            best = step;
            snprintf(want, sizeof want, "%s", e->d_name);
        }
    if (d)
        closedir(d);
    EXPECT(!strcmp(chosen, want), "%s: launcher chose '%s', the grammar '%s'", what, chosen, want);
}

static void touch(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f)
        fclose(f);
}

static void test_launcher_agrees(void)
{
    char dir[] = "/tmp/rt_ckptname_XXXXXX";
    if (!mkdtemp(dir)) {
        EXPECT(0, "mkdtemp");
        return;
    }
    for (int i = 0; i < NCASES; i++)
        if (!cases[i].ok || cases[i].step < 1000000000)
            touch(dir, cases[i].name);
    check_dir_agrees(dir, "small steps and malformed names");
    touch(dir, "ckpt-9223372036854775808.h5");
    check_dir_agrees(dir, "with INT64_MAX + 1");
    touch(dir, "ckpt-9223372036854775807.h5");
    check_dir_agrees(dir, "with INT64_MAX");
    char chosen[256];
    EXPECT(launch_ckpt_newest(dir, chosen, sizeof chosen) == RT_OK &&
           !strcmp(chosen, "ckpt-9223372036854775807.h5"), "INT64_MAX is the newest: '%s'", chosen);
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' || strlen(e->d_name) > 2) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

int main(void)
{
    test_grammar();
    test_launcher_agrees();
    return TEST_EXIT();
}
