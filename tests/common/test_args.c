/* test_args.c - the shared flag parser: values, suffixes, and the usage
 * errors every subcommand relies on. */
#include <string.h>

#include "common/args.h"
#include "test_util.h"

int main(void)
{
    int n = 0;
    int64_t bytes = 0;
    double lr = 0;
    const char *name = NULL;
    bool flag = false;
    const char *pos[2];
    arg_spec specs[] = {
        {"iters", ARG_INT, &n, "N", "iterations", false, false},
        {"max", ARG_I64, &bytes, "B", "bytes", false, false},
        {"lr", ARG_DOUBLE, &lr, "X", "rate", false, false},
        {"name", ARG_STRING, &name, "S", "a name", true, false},
        {"json", ARG_FLAG, &flag, NULL, "json", false, false},
    };
    arg_command cmd = {"t", "test", "F", 0, 2, pos, 0};
    char *ok[] = {"--iters", "7", "--max=256M", "--lr", "0.5", "--name", "x", "--json", "file"};
    EXPECT(args_parse(&cmd, specs, 5, 9, ok) == RT_OK, "parse ok: %s", rt_last_error());
    EXPECT(n == 7 && bytes == 256LL << 20 && lr == 0.5 && !strcmp(name, "x") && flag,
           "values %d %lld %g", n, (long long)bytes, lr);
    EXPECT(cmd.positional_count == 1 && !strcmp(pos[0], "file"), "positional");

    char *unknown[] = {"--name", "x", "--bogus", "1"};
    EXPECT(args_parse(&cmd, specs, 5, 4, unknown) == RT_ERR_USAGE, "unknown flag");
    EXPECT(strstr(rt_last_error(), "--bogus") != NULL, "message names flag: %s", rt_last_error());
    char *badint[] = {"--name", "x", "--iters", "7x"};
    EXPECT(args_parse(&cmd, specs, 5, 4, badint) == RT_ERR_USAGE, "bad int");
    char *missing[] = {"--iters", "3"};
    EXPECT(args_parse(&cmd, specs, 5, 2, missing) == RT_ERR_USAGE, "missing required");
    char *novalue[] = {"--name"};
    EXPECT(args_parse(&cmd, specs, 5, 1, novalue) == RT_ERR_USAGE, "missing value");
    /* a free-text flag takes "", a string flag refuses it */
    const char *text = "unset";
    arg_spec text_specs[] = {
        {"name", ARG_STRING, &name, "S", "a name", false, false},
        {"prompt", ARG_TEXT, &text, "T", "text", false, false},
    };
    char *empty_text[] = {"--prompt", ""};
    EXPECT(args_parse(&cmd, text_specs, 2, 2, empty_text) == RT_OK && !strcmp(text, ""),
           "empty text: %s", rt_last_error());
    char *empty_string[] = {"--name", ""};
    EXPECT(args_parse(&cmd, text_specs, 2, 2, empty_string) == RT_ERR_USAGE, "empty string");
    char *twice[] = {"--name", "x", "--name", "y"};
    EXPECT(args_parse(&cmd, specs, 5, 4, twice) == RT_ERR_USAGE, "given twice");
    char *nan[] = {"--name", "x", "--lr", "nan"};
    EXPECT(args_parse(&cmd, specs, 5, 4, nan) == RT_ERR_USAGE, "nan rejected");
    char *neg[] = {"--name", "x", "--max", "-4"};
    EXPECT(args_parse(&cmd, specs, 5, 4, neg) == RT_ERR_USAGE, "negative bytes rejected");
    char *extra[] = {"--name", "x", "a", "b", "c"};
    EXPECT(args_parse(&cmd, specs, 5, 5, extra) == RT_ERR_USAGE, "too many positional");

    int64_t v;
    EXPECT(args_parse_bytes("4K", &v) == RT_OK && v == 4096, "4K");
    EXPECT(args_parse_bytes("1GiB", &v) == RT_OK && v == 1LL << 30, "1GiB");
    EXPECT(args_parse_bytes("9999999999G", &v) == RT_ERR_USAGE, "overflow");
    return TEST_EXIT();
}
