/* log.c - the rank prefix and level filter behind LOG_*(). */
#define _GNU_SOURCE
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static int log_rank = -1;
static int log_size = -1;
static int log_level = -1;
static char log_host[64];

static int env_int(const char *name, int fallback)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : fallback;
}

static void log_init_once(void)
{
    if (log_level >= 0)
        return;
    const char *lv = getenv("RT_LOG_LEVEL");
    log_level = RT_LOG_INFO;
    if (lv) {
        if (!strcasecmp(lv, "error")) log_level = RT_LOG_ERROR;
        else if (!strcasecmp(lv, "warn")) log_level = RT_LOG_WARN;
        else if (!strcasecmp(lv, "debug")) log_level = RT_LOG_DEBUG;
    }
    if (log_rank < 0) {
        log_rank = env_int("OMPI_COMM_WORLD_RANK", env_int("PMI_RANK", 0));
        log_size = env_int("OMPI_COMM_WORLD_SIZE", env_int("PMI_SIZE", 1));
    }
    if (gethostname(log_host, sizeof log_host) != 0)
        strcpy(log_host, "?");
    log_host[sizeof log_host - 1] = '\0';
    char *dot = strchr(log_host, '.');
    if (dot)
        *dot = '\0';
}

void rt_log_set_rank(int rank, int size)
{
    log_init_once();
    log_rank = rank;
    log_size = size;
}

int rt_log_rank(void)
{
    log_init_once();
    return log_rank;
}

int rt_log_enabled(rt_log_level level)
{
    log_init_once();
    return (int)level <= log_level;
}

void rt_log_write(rt_log_level level, const char *file, int line, const char *fmt, ...)
{
    static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* one fprintf per line so lines from threads do not interleave */
    fprintf(stderr, "[r%d/%d %s] %s:%d %s: %s\n", log_rank, log_size, log_host, base, line,
            names[level], msg);
}
