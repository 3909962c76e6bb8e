/* fuzz_train_flags.c - libFuzzer target: `ringtrain train`'s flag parser
 * (launch/train_flags.h: the flag table, the config checks and the model
 * spec parsers behind --model) on an argument vector cut from the input at
 * NUL and newline bytes, and every argument also on its own as a model
 * spec. stdout is closed so that --help costs nothing. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "launch/train_flags.h"
#include "trainer/model/model.h"

enum { MAX_ARGS = 64 };

/* cmd_train.c, linked in for its flag parser, also refers to these two of
 * the executable's main.c (which has its own main()): stand-ins that do
 * what they do on the paths the parser can reach (nothing). */
int cmd_report(const char *cmd, int status);
void cmd_exit_if_out_of_memory(int status);
int cmd_report(const char *cmd, int status)
{
    (void)cmd;
    return status;
}
void cmd_exit_if_out_of_memory(int status)
{
    (void)status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        quiet = 1;
        if (!freopen("/dev/null", "w", stdout))
            abort();
    }
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    char *p = text, *end = text + size;
    while (p <= end && argc < MAX_ARGS) {
        argv[argc++] = p;
        while (p < end && *p != '\0' && *p != '\n')
            p++;
        *p++ = '\0';
    }
    argv[argc] = NULL;
    train_config_t cfg;
    (void)train_flags_parse(&cfg, argc, argv);
    for (int i = 0; i < argc; i++) {
        model_spec_t spec;
        if (model_spec_parse(argv[i], &spec) == RT_OK)
            model_spec_free(&spec);
    }
    free(text);
    return 0;
}
