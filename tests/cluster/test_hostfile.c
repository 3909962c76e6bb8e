/* test_hostfile.c - the hostfile parser: good files give the hosts, slots
 * and lines written in them; each class of bad file (mpirun's refusals:
 * signed values, IPv6 addresses, '_') is RT_ERR_USAGE with a message naming
 * "file:line"; CRLF is accepted and copied without '\r' for mpirun; -np
 * beyond the slots needs --oversubscribe. */
#define _DEFAULT_SOURCE /* mkstemp */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/hostfile.h"
#include "test_util.h"

static void expect_bad(const char *text, const char *where, const char *why)
{
    hostfile_t hf;
    rt_status st = hostfile_parse_text("hf", text, &hf);
    EXPECT(st == RT_ERR_USAGE, "bad hostfile %s accepted (status %d)", where, st);
    const char *msg = rt_last_error();
    char prefix[64];
    snprintf(prefix, sizeof prefix, "hf:%s: ", where);
    EXPECT(!strncmp(msg, prefix, strlen(prefix)), "message '%s' does not start with '%s'", msg,
           prefix);
    EXPECT(strstr(msg, why) != NULL, "message '%s' does not say '%s'", msg, why);
    EXPECT(hf.hosts == NULL && hf.count == 0, "failed parse left hosts behind");
}

static void test_good(void)
{
    hostfile_t hf;
    const char *text = "# cluster\n"
                       "\n"
                       "node01 slots=4\n"
                       "  node02\tslots = 2 max_slots=3   # trailing comment\n"
                       "10.0.0.12 max-slots=8 slots=8\r\n"
                       "node-3.example.org slots=1";
    rt_status st = hostfile_parse_text("good", text, &hf);
    EXPECT(st == RT_OK, "good hostfile rejected: %s", rt_last_error());
    if (st != RT_OK)
        return;
    EXPECT(hf.count == 4, "count %d, want 4", hf.count);
    EXPECT(hf.total_slots == 15, "total %d, want 15", hf.total_slots);
    const char *names[] = {"node01", "node02", "10.0.0.12", "node-3.example.org"};
    int slots[] = {4, 2, 8, 1}, maxs[] = {0, 3, 8, 0}, lines[] = {3, 4, 5, 6};
    for (int i = 0; i < 4 && i < hf.count; i++) {
        EXPECT(!strcmp(hf.hosts[i].host, names[i]), "host %d is '%s'", i, hf.hosts[i].host);
        EXPECT(hf.hosts[i].slots == slots[i], "host %d slots %d", i, hf.hosts[i].slots);
        EXPECT(hf.hosts[i].max_slots == maxs[i], "host %d max %d", i, hf.hosts[i].max_slots);
        EXPECT(hf.hosts[i].line == lines[i], "host %d line %d", i, hf.hosts[i].line);
    }
    EXPECT(hostfile_check_np(&hf, 15, false) == RT_OK, "np=15 of 15 refused");
    EXPECT(hostfile_check_np(&hf, 1, false) == RT_OK, "np=1 refused");
    EXPECT(hostfile_check_np(&hf, 16, false) == RT_ERR_USAGE, "np=16 of 15 accepted");
    EXPECT(strstr(rt_last_error(), "good:3 node01 slots=4") &&
           strstr(rt_last_error(), "--oversubscribe"), "np message: %s", rt_last_error());
    EXPECT(hostfile_check_np(&hf, 16, true) == RT_OK, "np=16 with --oversubscribe refused");
    EXPECT(hostfile_check_np(&hf, 0, true) == RT_ERR_USAGE, "np=0 accepted");
    hostfile_free(&hf);

    /* max_slots on every host is a hard limit even when oversubscribing */
    st = hostfile_parse_text("cap", "a slots=1 max_slots=2\nb slots=1 max_slots=1\n", &hf);
    EXPECT(st == RT_OK, "cap file rejected: %s", rt_last_error());
    EXPECT(hostfile_check_np(&hf, 3, true) == RT_OK, "np=3 within max_slots refused");
    EXPECT(hostfile_check_np(&hf, 4, true) == RT_ERR_USAGE, "np=4 beyond max_slots accepted");
    EXPECT(strstr(rt_last_error(), "cap:2") != NULL, "max message: %s", rt_last_error());
    hostfile_free(&hf);
}

static void test_bad(void)
{
    expect_bad("a slots=2\nb slots=2 cores=4\n", "2", "unknown key 'cores'");
    expect_bad("a slots=0\n", "1", "slots=0 must be at least 1");
    expect_bad("# x\na slots=-3\n", "2", "slots=-3 must be at least 1");
    expect_bad("a slots=2 max_slots=0\n", "1", "max_slots=0 must be at least 1");
    expect_bad("a slots=2\n\nb slots=1\na slots=4\n", "4", "duplicate host 'a' (first on line 1)");
    expect_bad("a slots=four\n", "1", "slots='four' is not a number");
    expect_bad("a slots=2x\n", "1", "is not a number");
    expect_bad("a slots=\n", "1", "slots='' is not a number");
    expect_bad("a slots=99999999999\n", "1", "is not a number");
    expect_bad("", "1", "no hosts");
    expect_bad("# only a comment\n\n   \n", "3", "no hosts");
    expect_bad("a\n", "1", "has no slots=N");
    expect_bad("a slots=2 slots=3\n", "1", "given twice");
    expect_bad("a slots 2\n", "1", "not key=value");
    expect_bad("a slots=4 max_slots=2\n", "1", "max_slots=2 is below slots=4");
    expect_bad("x slots=1\n-oProxyCommand=evil slots=1\n", "2", "starts with '-'");
    expect_bad("a;rm slots=1\n", "1", "character outside");
    expect_bad("$(id) slots=1\n", "1", "character outside");
    expect_bad("slots=2\n", "1", "not a host name");
    /* what Open MPI 4.1's mpirun refuses after the launcher would have
     * started it: a signed value (read as -1), IPv6 addresses, '_' */
    expect_bad("a slots=+2\n", "1", "slots='+2' has a sign; write slots=2");
    expect_bad("a slots=1 max_slots=+2\n", "1", "max_slots='+2' has a sign");
    expect_bad("::1 slots=2\n", "1", "'::1' is an IPv6 address");
    expect_bad("a slots=1\r\nfe80::1 slots=1\r\n", "2", "'fe80::1' is an IPv6 address");
    expect_bad("my_host slots=1\n", "1", "letters, digits, '.' and '-' only");
}

static void test_file(void)
{
    char path[] = "/tmp/rt_hostfile_XXXXXX";
    int fd = mkstemp(path);
    EXPECT(fd >= 0, "mkstemp");
    if (fd < 0)
        return;
    const char *text = "h1 slots=2\nh2 slots=2\n";
    EXPECT(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write");
    close(fd);
    hostfile_t hf;
    EXPECT(hostfile_load(path, &hf) == RT_OK, "load: %s", rt_last_error());
    EXPECT(hf.total_slots == 4 && !strcmp(hf.path, path), "loaded %d slots", hf.total_slots);
    EXPECT(!hf.has_cr, "no carriage return seen");
    hostfile_free(&hf);

    /* CRLF: accepted, and copied for mpirun without the carriage returns */
    const char *crlf = "# c\r\nh1 slots=2\r\nh2\rslots=2\r\n";
    fd = open(path, O_WRONLY | O_TRUNC);
    EXPECT(fd >= 0 && write(fd, crlf, strlen(crlf)) == (ssize_t)strlen(crlf), "write CRLF");
    close(fd);
    EXPECT(hostfile_load(path, &hf) == RT_OK && hf.has_cr && hf.total_slots == 4, "CRLF load: %s",
           rt_last_error());
    hostfile_free(&hf);
    char copy[] = "/tmp/rt_hostfile_lf_XXXXXX";
    int cfd = mkstemp(copy);
    EXPECT(cfd >= 0 && hostfile_write_lf(path, cfd) == RT_OK, "copy: %s", rt_last_error());
    char got[128] = "";
    ssize_t n = cfd >= 0 ? pread(cfd, got, sizeof got - 1, 0) : -1;
    got[n > 0 ? n : 0] = '\0';
    EXPECT(!strcmp(got, "# c\nh1 slots=2\nh2 slots=2\n"), "copy without CR: '%s'", got);
    if (cfd >= 0)
        close(cfd);
    unlink(copy);
    unlink(path);
    EXPECT(hostfile_load(path, &hf) == RT_ERR_USAGE && strstr(rt_last_error(), path),
           "missing file: %s", rt_last_error());

    /* the shipped example must parse */
    const char *src = getenv("RT_SOURCE_DIR");
    if (src) {
        char ex[4096];
        snprintf(ex, sizeof ex, "%s/hostfile.example", src);
        EXPECT(hostfile_load(ex, &hf) == RT_OK, "hostfile.example: %s", rt_last_error());
        EXPECT(hf.count == 2 && hf.total_slots == 8, "example: %d hosts %d slots", hf.count,
               hf.total_slots);
        hostfile_free(&hf);
    }
}

int main(void)
{
    test_good();
    test_bad();
    test_file();
    return TEST_EXIT();
}
