/* op_checks.h - the argument checks of every op in the table (ops.h), one
 * function per op, shared by the device tables (device_cpu.c,
 * device_cuda.cu) so that both refuse the same views with the same message
 * (RT_ERR_INVALID naming the op and the argument). Each returns the sizes
 * the kernels take. */
#ifndef RT_TRAINER_OPS_OP_CHECKS_H
#define RT_TRAINER_OPS_OP_CHECKS_H

#include <stdint.h>

#include "common/status.h"
#include "trainer/ops/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

rt_status op_check_linear_forward(const rt_tensor_t *out, const rt_tensor_t *inp,
                                  const rt_tensor_t *weight, const rt_tensor_t *bias, int *B,
                                  int *C, int *OC);
rt_status op_check_linear_backward(const rt_tensor_t *dinp, const rt_tensor_t *dweight,
                                   const rt_tensor_t *dbias, const rt_tensor_t *dout,
                                   const rt_tensor_t *inp, const rt_tensor_t *weight, int *B,
                                   int *C, int *OC);
/* dweight [R, C], dout [B, OC], inp [B, C], 0 <= row0, row0 + R <= OC. */
rt_status op_check_linear_weight_rows(const rt_tensor_t *dweight, const rt_tensor_t *dout,
                                      const rt_tensor_t *inp, int64_t row0, int *B, int *C,
                                      int *OC, int *R);
/* Elementwise pair: a and b of type f32 and the same number of elements. */
rt_status op_check_same_f32(const char *op, const rt_tensor_t *a, const char *aname,
                            const rt_tensor_t *b, const char *bname, int64_t *n);
/* matrix0 [B, V] f32 (named name0) and int32 labels [B]; rowvec [B] and
 * matrix [B, V] (f32) when not NULL. */
rt_status op_check_xent(const char *op, const rt_tensor_t *matrix0, const char *name0,
                        const rt_tensor_t *labels, const rt_tensor_t *rowvec,
                        const char *rowvec_name, const rt_tensor_t *matrix,
                        const char *matrix_name, int *B, int *V);
/* Optimizer views: params, grads and each non-NULL state view f32 with
 * params' element count. */
rt_status op_check_update(const char *op, const rt_tensor_t *params, const rt_tensor_t *grads,
                          const rt_tensor_t *s0, const char *s0name, const rt_tensor_t *s1,
                          const char *s1name, int64_t *n);

/* The transformer's ops: the views of ops.h, sizes returned. */
rt_status op_check_embedding(const char *op, const rt_tensor_t *out, const rt_tensor_t *tokens,
                             const rt_tensor_t *wte, const rt_tensor_t *wpe, int *B, int *T,
                             int *C);
rt_status op_check_layernorm(const char *op, const rt_tensor_t *out, const rt_tensor_t *mean,
                             const rt_tensor_t *rstd, const rt_tensor_t *inp,
                             const rt_tensor_t *weight, const rt_tensor_t *bias, int64_t *N,
                             int *C);
/* out [B,T,C] (may be NULL), att and scratch [B,NH,T,T] (scratch may be
 * NULL), qkv [B,T,3C], C divisible by NH. */
rt_status op_check_attention(const char *op, const rt_tensor_t *out, const rt_tensor_t *att,
                             const rt_tensor_t *scratch, const rt_tensor_t *qkv, int *B, int *T,
                             int *C, int *NH);

#ifdef __cplusplus
}
#endif

#endif
