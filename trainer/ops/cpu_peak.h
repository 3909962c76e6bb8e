/* cpu_peak.h - the CPU's measured matrix-multiply peak, the denominator of
 * the model FLOPs utilisation (MFU) that training reports on the CPU. */
#ifndef RT_TRAINER_OPS_CPU_PEAK_H
#define RT_TRAINER_OPS_CPU_PEAK_H

/* FLOP/s of the best of several float32 sgemm products of 1024 x 1024 x
 * 1024 (2 * 1024^3 FLOPs each) on OpenBLAS's current threads, after one
 * untimed product; about 0.1 s. 0 if memory is short. */
double cpu_sgemm_peak_flops(void);

#endif
