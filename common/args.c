/* args.c - the flag parser behind every subcommand's command line. */
#include "args.h"
#include "check.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rt_status args_parse_bytes(const char *text, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || errno != 0 || v < 0)
        return rt_fail(RT_ERR_USAGE, "'%s' is not a non-negative integer", text);
    int64_t mult = 1;
    if (*end) {
        switch (*end) {
        case 'k': case 'K': mult = 1LL << 10; break;
        case 'm': case 'M': mult = 1LL << 20; break;
        case 'g': case 'G': mult = 1LL << 30; break;
        default:
            return rt_fail(RT_ERR_USAGE, "'%s' has an unknown suffix (use K, M or G)", text);
        }
        end++;
        if (*end == 'i' || *end == 'B' || *end == 'b')
            end++;
        if (*end == 'B')
            end++;
        if (*end)
            return rt_fail(RT_ERR_USAGE, "'%s' is not a byte count", text);
    }
    if (v > INT64_MAX / mult)
        return rt_fail(RT_ERR_USAGE, "'%s' is too large", text);
    *out = v * mult;
    return RT_OK;
}

static rt_status parse_value(arg_spec *s, const char *value)
{
    char *end = NULL;
    errno = 0;
    switch (s->kind) {
    case ARG_INT: {
        long v = strtol(value, &end, 10);
        if (end == value || *end || errno || v < INT_MIN || v > INT_MAX)
            return rt_fail(RT_ERR_USAGE, "--%s: '%s' is not an integer", s->name, value);
        *(int *)s->dest = (int)v;
        return RT_OK;
    }
    case ARG_I64: {
        int64_t v;
        if (args_parse_bytes(value, &v) != RT_OK)
            return rt_fail(RT_ERR_USAGE, "--%s: '%s' is not a non-negative integer", s->name, value);
        *(int64_t *)s->dest = v;
        return RT_OK;
    }
    case ARG_DOUBLE: {
        double v = strtod(value, &end);
        if (end == value || *end || errno || !isfinite(v))
            return rt_fail(RT_ERR_USAGE, "--%s: '%s' is not a number", s->name, value);
        *(double *)s->dest = v;
        return RT_OK;
    }
    case ARG_STRING:
        if (!*value)
            return rt_fail(RT_ERR_USAGE, "--%s: empty value", s->name);
        *(const char **)s->dest = value;
        return RT_OK;
    case ARG_TEXT:
        *(const char **)s->dest = value;
        return RT_OK;
    case ARG_LIST: {
        arg_list_t *l = s->dest;
        if (l->count >= (int)(sizeof l->items / sizeof l->items[0]))
            return rt_fail(RT_ERR_USAGE, "--%s given too many times", s->name);
        l->items[l->count++] = value;
        return RT_OK;
    }
    case ARG_FLAG:
        break;
    }
    return rt_fail(RT_ERR_INTERNAL, "bad arg kind");
}

void args_print_help(const arg_command *cmd, const arg_spec *specs, int nspecs)
{
    printf("usage: %s [options]%s%s\n", cmd->prog, cmd->positional ? " " : "",
           cmd->positional ? cmd->positional : "");
    if (cmd->summary)
        printf("\n%s\n", cmd->summary);
    printf("\noptions:\n");
    for (int i = 0; i < nspecs; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", specs[i].name,
                 specs[i].kind == ARG_FLAG ? "" : " ",
                 specs[i].kind == ARG_FLAG ? "" : (specs[i].metavar ? specs[i].metavar : "X"));
        printf("  %-24s %s%s\n", left, specs[i].help ? specs[i].help : "",
               specs[i].required ? " (required)" : "");
    }
    printf("  %-24s %s\n", "--help", "show this help and exit");
}

rt_status args_parse(arg_command *cmd, arg_spec *specs, int nspecs, int argc, char **argv)
{
    cmd->positional_count = 0;
    for (int i = 0; i < nspecs; i++)
        specs[i].seen = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            args_print_help(cmd, specs, nspecs);
            return RT_HELP;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (cmd->positional_count >= cmd->max_positional)
                return rt_fail(RT_ERR_USAGE, "unexpected argument '%s'", a);
            cmd->positional_out[cmd->positional_count++] = a;
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        arg_spec *s = NULL;
        for (int k = 0; k < nspecs; k++)
            if (strlen(specs[k].name) == nlen && !strncmp(specs[k].name, name, nlen))
                s = &specs[k];
        if (!s)
            return rt_fail(RT_ERR_USAGE, "unknown flag '--%.*s' (see --help)", (int)nlen, name);
        if (s->seen && s->kind != ARG_LIST)
            return rt_fail(RT_ERR_USAGE, "--%s given twice", s->name);
        s->seen = true;
        if (s->kind == ARG_FLAG) {
            if (eq)
                return rt_fail(RT_ERR_USAGE, "--%s takes no value", s->name);
            *(bool *)s->dest = true;
            continue;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (i + 1 >= argc)
                return rt_fail(RT_ERR_USAGE, "--%s needs a value", s->name);
            value = argv[++i];
        }
        TRY(parse_value(s, value));
    }
    for (int i = 0; i < nspecs; i++)
        if (specs[i].required && !specs[i].seen)
            return rt_fail(RT_ERR_USAGE, "--%s is required", specs[i].name);
    if (cmd->positional_count < cmd->min_positional)
        return rt_fail(RT_ERR_USAGE, "missing argument %s", cmd->positional ? cmd->positional : "");
    return RT_OK;
}
