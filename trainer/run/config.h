/* config.h - every setting of a training session (what `ringtrain train`'s
 * flags fill in, docs/TRAINING.md), its defaults, the checks of its values
 * (RT_ERR_USAGE with a one-line reason naming the flag), and its JSON form,
 * which each checkpoint stores. */
#ifndef RT_TRAINER_RUN_CONFIG_H
#define RT_TRAINER_RUN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "common/status.h"

typedef struct {
    const char *model;          /* a model spec (trainer/model/model.h) */
    const char *data, *eval;    /* datasets (eval may be NULL) */
    const char *optimizer;      /* "sgd" | "adamw" */
    const char *schedule;       /* "constant" | "cosine" */
    const char *device;         /* "auto" | "cpu" | "cuda" */
    const char *metrics;        /* JSON lines (rank 0), NULL: none */
    const char *export_params;  /* final parameters (HDF5), NULL: none */
    const char *init_params;    /* a fresh run's parameters from this file, NULL: drawn */
    const char *ckpt_dir;       /* NULL: no checkpoints */
    const char *resume;         /* "auto" | "never" | a checkpoint file */
    const char *ckpt_write;     /* "async" (a writer thread writes a copy) | "sync" */
    int batch;                  /* rows per rank per micro-batch; 0: from the checkpoint */
    int epochs, steps;          /* one of them (steps 0: epochs) */
    int accum, warmup, seed, log_every, threads, eval_every, ckpt_every, keep;
    double lr, momentum;
    double weight_decay;        /* < 0: the optimizer's default */
    double grad_clip, bucket_mb;
    const char *overlap;        /* "thread" | "layers" | "off" (trainer/run/grad_sync.h) */
    int zero;                   /* 0 | 1: ZeRO-1 sharded optimizer state */
    const char *trace;          /* Chrome-trace timeline, per rank; NULL: none */
    const char *tensorboard;    /* event-file directory (rank 0); NULL: none */
    bool skip_nonfinite, tf32, eager;
    bool shuffle;               /* false: records in file order (tests, debugging) */
} train_config_t;

/* The defaults of `ringtrain train`: adamw, constant, auto, lr 1e-3,
 * momentum 0.9, epochs 1, accum 1, log every 50, keep 3, resume auto,
 * checkpoints written asynchronously,
 * buckets of 4 MiB, overlap on a thread, no ZeRO, shuffled. */
void train_config_default(train_config_t *c);

/* Checks every value (not the files: the session opens those). */
rt_status train_config_check(const train_config_t *c);

/* The settings as a JSON object, with the canonical model spec and the
 * number of ranks; returns the length it needs (as snprintf) and cuts the
 * text at size. */
size_t train_config_json(const train_config_t *c, const char *model_spec, int world, char *buf,
                         size_t size);

/* Appends s to buf as a JSON string literal (quotes and escapes); *len
 * advances as snprintf would. */
void json_append_string(char *buf, size_t size, size_t *len, const char *s);

#endif
