/* args.h - table-driven command-line flags shared by every subcommand, so
 * that all of them treat --help, unknown flags and bad values the same way:
 * a one-line reason and RT_ERR_USAGE (exit code 2).
 *
 * Flags are `--name VALUE` or `--name=VALUE`; ARG_FLAG takes no value.
 * Positional arguments are collected in order (up to max_positional). */
#ifndef RT_COMMON_ARGS_H
#define RT_COMMON_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ARG_INT,       /* int, decimal */
    ARG_I64,       /* int64_t; accepts K/M/G suffixes (powers of 1024) */
    ARG_DOUBLE,    /* double, finite */
    ARG_STRING,    /* const char * pointing into argv; an empty value is refused */
    ARG_TEXT,      /* const char * pointing into argv, "" allowed (free text) */
    ARG_FLAG,      /* bool set to true when present */
    ARG_LIST,      /* repeated string flag: arg_list_t */
} arg_kind;

typedef struct {
    const char *items[64];
    int count;
} arg_list_t;

typedef struct {
    const char *name;     /* without the leading "--" */
    arg_kind kind;
    void *dest;
    const char *metavar;  /* shown in help, e.g. "N" */
    const char *help;
    bool required;
    bool seen;            /* set by the parser */
} arg_spec;

typedef struct {
    const char *prog;        /* "ringtrain bench allreduce" */
    const char *summary;     /* one line */
    const char *positional;  /* e.g. "F.h5", NULL for none */
    int min_positional;
    int max_positional;
    const char **positional_out; /* receives positional arguments */
    int positional_count;        /* set by the parser */
} arg_command;

/* Parses argv[0..argc) (argv[0] is the first flag, not the program).
 * Returns RT_OK, RT_HELP (help printed to stdout) or RT_ERR_USAGE. */
rt_status args_parse(arg_command *cmd, arg_spec *specs, int nspecs, int argc, char **argv);

void args_print_help(const arg_command *cmd, const arg_spec *specs, int nspecs);

/* Parses a byte count like "4096", "4K", "256M", "1G". */
rt_status args_parse_bytes(const char *text, int64_t *out);

#ifdef __cplusplus
}
#endif

#endif
