/* cmd_data.c - `ringtrain data`: import-idx, import-text, import-tokens,
 * info and verify.
 *
 * Bad input (a missing, empty, truncated or corrupt file, a wrong magic, an
 * HDF5 file of another kind or a newer format version) exits with code 2
 * and one line naming the file and the problem; importers leave no output
 * file behind. Data that fails its checksum exits 1 (RT_ERR_CORRUPT), as
 * from `ringtrain train`. */
#include <stdio.h>
#include <string.h>

#include "common/args.h"
#include "common/status.h"
#include "data/dataset.h"
#include "data/import.h"
#include "launch/commands.h"

#define ARRAY_LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Exit code 2 for usage errors and for files that are missing or not what
 * they claim to be; 1 for everything else (a checksum mismatch, out of
 * memory, internal). */
static int data_report(const char *sub, rt_status st)
{
    if (st == RT_OK || st == RT_HELP)
        return 0;
    fprintf(stderr, "ringtrain data %s: %s\n", sub, rt_last_error());
    switch (st) {
    case RT_ERR_USAGE:
    case RT_ERR_FORMAT:
    case RT_ERR_IO:
    case RT_ERR_HDF5:
        return 2;
    default:
        return 1;
    }
}

static int run_import_idx(int argc, char **argv)
{
    const char *images = NULL, *labels = NULL, *out = NULL;
    arg_spec specs[] = {
        {"images", ARG_STRING, &images, "F", "IDX image file (.gz or plain)", true, false},
        {"labels", ARG_STRING, &labels, "F", "IDX label file (.gz or plain)", true, false},
        {"out", ARG_STRING, &out, "F.h5", "output dataset", true, false},
    };
    arg_command cmd = {.prog = "ringtrain data import-idx",
                       .summary = "Import an IDX image/label pair (MNIST, Fashion-MNIST) as a "
                                  "classification dataset."};
    rt_status st = args_parse(&cmd, specs, ARRAY_LEN(specs), argc, argv);
    if (st != RT_OK)
        return data_report("import-idx", st);
    import_idx_summary_t sum;
    st = import_idx(images, labels, out, &sum);
    if (st != RT_OK)
        return data_report("import-idx", st);
    printf("%s: %lld records of %lld features, %d classes\n", out, (long long)sum.records,
           (long long)sum.features, sum.num_classes);
    return 0;
}

/* --val-out and --val-fraction: both or neither. */
static rt_status check_val_flags(const char *val_out, const arg_spec *val_fraction)
{
    if ((val_out != NULL) != val_fraction->seen)
        return rt_fail(RT_ERR_USAGE, "--val-out and --val-fraction go together");
    return RT_OK;
}

static void print_split(const char *out, const char *val_out, int64_t train, int64_t val)
{
    printf("%s: %lld tokens\n", out, (long long)train);
    if (val_out)
        printf("%s: %lld tokens\n", val_out, (long long)val);
}

static int run_import_text(int argc, char **argv)
{
    arg_list_t inputs = {0};
    const char *out = NULL, *val_out = NULL;
    double val_fraction = -1.0;
    arg_spec specs[] = {
        {"input", ARG_LIST, &inputs, "F", "text file (repeat for several, concatenated in order)",
         true, false},
        {"out", ARG_STRING, &out, "F.h5", "output dataset", true, false},
        {"val-out", ARG_STRING, &val_out, "V.h5", "held-out dataset (the end of the stream)",
         false, false},
        {"val-fraction", ARG_DOUBLE, &val_fraction, "X", "fraction of bytes held out, in (0, 1)",
         false, false},
    };
    arg_command cmd = {.prog = "ringtrain data import-text",
                       .summary = "Import text files as a byte-level token stream (vocabulary "
                                  "256), optionally holding out the end as a validation set."};
    rt_status st = args_parse(&cmd, specs, ARRAY_LEN(specs), argc, argv);
    if (st != RT_OK)
        return data_report("import-text", st);
    st = check_val_flags(val_out, &specs[3]);
    if (st != RT_OK)
        return data_report("import-text", st);
    import_text_summary_t sum;
    st = import_text(inputs.items, inputs.count, out, val_out, val_fraction, &sum);
    if (st != RT_OK)
        return data_report("import-text", st);
    print_split(out, val_out, sum.train_tokens, sum.val_tokens);
    return 0;
}

static int run_import_tokens(int argc, char **argv)
{
    arg_list_t inputs = {0};
    const char *format = NULL, *out = NULL, *val_out = NULL;
    int vocab = 0;
    double val_fraction = -1.0;
    arg_spec specs[] = {
        {"input", ARG_LIST, &inputs, "F", "token file (repeat for several, concatenated in order)",
         true, false},
        {"format", ARG_STRING, &format, "bin|llmc",
         "bin: headerless little-endian uint16 (nanoGPT); llmc: llm.c shard (1024-byte header)",
         true, false},
        {"vocab", ARG_INT, &vocab, "N", "vocabulary size, 1..65536; every token must be below it",
         true, false},
        {"out", ARG_STRING, &out, "F.h5", "output dataset", true, false},
        {"val-out", ARG_STRING, &val_out, "V.h5", "held-out dataset (the end of the stream)",
         false, false},
        {"val-fraction", ARG_DOUBLE, &val_fraction, "X", "fraction of tokens held out, in (0, 1)",
         false, false},
    };
    arg_command cmd = {.prog = "ringtrain data import-tokens",
                       .summary = "Import token files (nanoGPT .bin, llm.c shards) as a token "
                                  "stream (uint8 for a vocabulary of <= 256, else uint16), "
                                  "optionally holding out the end as a validation set."};
    rt_status st = args_parse(&cmd, specs, ARRAY_LEN(specs), argc, argv);
    if (st != RT_OK)
        return data_report("import-tokens", st);
    import_tokens_format fmt;
    if (!strcmp(format, "bin"))
        fmt = IMPORT_TOKENS_BIN;
    else if (!strcmp(format, "llmc"))
        fmt = IMPORT_TOKENS_LLMC;
    else
        return data_report("import-tokens",
                           rt_fail(RT_ERR_USAGE, "--format must be bin or llmc, got '%s'", format));
    st = check_val_flags(val_out, &specs[5]);
    if (st != RT_OK)
        return data_report("import-tokens", st);
    import_tokens_summary_t sum;
    st = import_tokens(inputs.items, inputs.count, fmt, vocab, out, val_out, val_fraction, &sum);
    if (st != RT_OK)
        return data_report("import-tokens", st);
    print_split(out, val_out, sum.train_tokens, sum.val_tokens);
    return 0;
}

static void print_shape(const char *name, const dataset_info_t *info, rt_dtype type,
                        bool with_record)
{
    printf("%s: %s [%lld", name, dataset_dtype_name(type), (long long)info->count);
    if (with_record)
        for (int i = 0; i < info->record_dims; i++)
            printf(", %lld", (long long)info->record_shape[i]);
    printf("]\n");
}

/* The one-line note for a file whose arrays carry no checksums. */
static void print_unchecked_note(const char *sub, const char *path, const char *arrays)
{
    fprintf(stderr, "ringtrain data %s: note: %s: no checksums for %s (written before ringtrain "
            "stored them); its data is not verified\n", sub, path, arrays);
}

static int run_info(int argc, char **argv)
{
    const char *path = NULL;
    arg_command cmd = {.prog = "ringtrain data info", .summary = "Describe a dataset file.",
                       .positional = "F.h5", .min_positional = 1, .max_positional = 1,
                       .positional_out = &path};
    rt_status st = args_parse(&cmd, NULL, 0, argc, argv);
    if (st != RT_OK)
        return data_report("info", st);
    dataset_t *d = NULL;
    st = dataset_open(path, &d);
    if (st != RT_OK)
        return data_report("info", st);
    const dataset_info_t *info = dataset_info(d);
    printf("file: %s\n", path);
    printf("format: %s version %d\n", DATASET_FORMAT, info->format_version);
    printf("kind: %s\n", dataset_kind_name(info->kind));
    if (info->kind == DATASET_CLASSIFICATION) {
        printf("records: %lld\n", (long long)info->count);
        printf("features: %lld\n", (long long)info->features);
        print_shape("inputs", info, info->input_type, true);
        print_shape("labels", info, info->label_type, false);
        printf("classes: %d\n", info->num_classes);
        printf("class histogram:");
        const int32_t *labels = dataset_labels(d);
        for (int c = 0; c < info->num_classes; c++) {
            int64_t n = 0;
            for (int64_t i = 0; i < info->count; i++)
                n += labels[i] == c;
            printf(" %d:%lld", c, (long long)n);
        }
        printf("\n");
    } else {
        print_shape("tokens", info, info->input_type, false);
        printf("token count: %lld\n", (long long)info->count);
        printf("vocab size: %d\n", info->vocab_size);
    }
    if (info->unchecked[0]) {
        printf("checksums: none for %s\n", info->unchecked);
        print_unchecked_note("info", path, info->unchecked);
    } else {
        printf("checksums: crc32c, %s\n",
               info->in_memory ? "checked" : "checked per block as records are read");
    }
    dataset_close(d);
    return 0;
}

static int run_verify(int argc, char **argv)
{
    const char *path = NULL;
    arg_command cmd = {.prog = "ringtrain data verify",
                       .summary = "Check every array of a dataset file against its CRC-32C "
                                  "checksums, then the file's structure. Exit 0 ok, 1 corrupt "
                                  "(naming each bad array), 2 not a readable dataset.",
                       .positional = "F.h5", .min_positional = 1, .max_positional = 1,
                       .positional_out = &path};
    rt_status st = args_parse(&cmd, NULL, 0, argc, argv);
    if (st != RT_OK)
        return data_report("verify", st);
    dataset_verify_report_t rep;
    st = dataset_verify(path, &rep);
    if (st != RT_OK)
        return data_report("verify", st);
    if (rep.unchecked[0]) {
        print_unchecked_note("verify", path, rep.unchecked);
        printf("%s: ok, %d of %d arrays checked (%lld bytes); no checksums for %s\n", path,
               rep.checked, rep.arrays, (long long)rep.bytes, rep.unchecked);
    } else {
        printf("%s: ok, %d arrays, %lld bytes checked\n", path, rep.arrays,
               (long long)rep.bytes);
    }
    return 0;
}

static void print_usage(FILE *f)
{
    fprintf(f, "usage: ringtrain data <subcommand> [options]   (ringtrain data <subcommand> --help)\n\n"
               "subcommands:\n"
               "  import-idx     --images F --labels F --out F.h5\n"
               "  import-text    --input F [--input F]... --out F.h5\n"
               "                 [--val-out V.h5 --val-fraction X]\n"
               "  import-tokens  --input F [--input F]... --format bin|llmc --vocab N --out F.h5\n"
               "                 [--val-out V.h5 --val-fraction X]\n"
               "  info           F.h5\n"
               "  verify         F.h5   (checksums: exit 0 ok, 1 corrupt)\n");
}

int cmd_data(int argc, char **argv)
{
    if (argc < 1) {
        print_usage(stderr);
        return 2;
    }
    const char *sub = argv[0];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        print_usage(stdout);
        return 0;
    }
    if (!strcmp(sub, "import-idx"))
        return run_import_idx(argc - 1, argv + 1);
    if (!strcmp(sub, "import-text"))
        return run_import_text(argc - 1, argv + 1);
    if (!strcmp(sub, "import-tokens"))
        return run_import_tokens(argc - 1, argv + 1);
    if (!strcmp(sub, "info"))
        return run_info(argc - 1, argv + 1);
    if (!strcmp(sub, "verify"))
        return run_verify(argc - 1, argv + 1);
    fprintf(stderr, "ringtrain data: unknown subcommand '%s' (import-idx, import-text, "
            "import-tokens, info, verify)\n", sub);
    return 2;
}
