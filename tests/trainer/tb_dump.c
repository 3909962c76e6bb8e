/* tb_dump.c - prints a TensorBoard event file through our reader
 * (trainer/tensorboard/tb_reader.h), for test_tensorboard.py: a line
 * "version V", then "STEP TAG VALUE" per scalar (VALUE with 9 significant
 * digits, exact for a float32); exit 0 for a good file, 1 with the
 * reader's message on stderr otherwise (the scalars before the bad record
 * still printed). */
#include <stdio.h>

#include "trainer/tensorboard/tb_reader.h"

static void print_scalar(void *ctx, int64_t step, double wall_time, const char *tag, float value)
{
    (void)ctx;
    (void)wall_time;
    printf("%lld %s %.9g\n", (long long)step, tag, (double)value);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: tb_dump EVENT_FILE\n");
        return 2;
    }
    tb_read_info_t info;
    rt_status st = tb_read_file(argv[1], print_scalar, NULL, &info);
    printf("version %s\n", info.file_version);
    if (st != RT_OK) {
        fprintf(stderr, "tb_dump: %s\n", rt_last_error());
        return 1;
    }
    return 0;
}
