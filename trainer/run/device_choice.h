/* device_choice.h - where a rank trains, from --device: "cpu"; "cuda" (the
 * node-local rank's GPU, which must exist); "auto" (that GPU when one is
 * visible, else the CPU). Ranks on a node take GPUs in turn: the device
 * ordinal is the node-local rank modulo the visible devices. */
#ifndef RT_TRAINER_RUN_DEVICE_CHOICE_H
#define RT_TRAINER_RUN_DEVICE_CHOICE_H

#include <stddef.h>

#include "common/status.h"
#include "trainer/ops/device.h"

/* Before MPI: "cuda" needs a CUDA build and a visible device (else
 * RT_ERR_USAGE, exit 2); "auto" and "cpu" always pass. */
rt_status device_choice_check(const char *flag);

/* This rank's device; writes a line saying what was chosen and why into why. */
rt_status device_choice(const char *flag, int local_rank, int local_size, device_config_t *out,
                        char *why, size_t why_size);

#endif
