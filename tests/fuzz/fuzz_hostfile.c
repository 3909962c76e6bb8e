/* fuzz_hostfile.c - libFuzzer target: the hostfile parser
 * (cluster/hostfile.h) on arbitrary text, and the np check on what it
 * accepts. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/hostfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    hostfile_t hf;
    memset(&hf, 0, sizeof hf);
    if (hostfile_parse_text("fuzz", text, &hf) == RT_OK) {
        (void)hostfile_check_np(&hf, 1, false);
        (void)hostfile_check_np(&hf, 64, true);
        hostfile_free(&hf);
    }
    free(text);
    return 0;
}
