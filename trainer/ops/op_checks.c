/* op_checks.c - type and shape checks of the op table's views (see
 * op_checks.h). */
#include "trainer/ops/op_checks.h"

#include "common/check.h"

#define F32 RT_DTYPE_F32
#define I32 RT_DTYPE_I32

static rt_status expect_shape(const rt_tensor_t *t, rt_dtype dt, int64_t d0, int64_t d1,
                              const char *op, const char *arg)
{
    TRY(tensor_expect(t, dt, d1 < 0 ? 1 : 2, op, arg));
    TRY(tensor_expect_dim(t, 0, d0, op, arg));
    return d1 < 0 ? RT_OK : tensor_expect_dim(t, 1, d1, op, arg);
}

static rt_status linear_sizes(const char *op, const rt_tensor_t *inp, const rt_tensor_t *weight,
                              int *B, int *C, int *OC)
{
    TRY(tensor_expect(inp, F32, 2, op, "inp"));
    TRY(tensor_expect(weight, F32, 2, op, "weight"));
    TRY(tensor_expect_dim(weight, 1, inp->shape[1], op, "weight"));
    CHECK_ARG(inp->shape[0] <= INT32_MAX && inp->shape[1] <= INT32_MAX &&
                  weight->shape[0] <= INT32_MAX,
              "%s: sizes beyond the int range", op);
    *B = (int)inp->shape[0];
    *C = (int)inp->shape[1];
    *OC = (int)weight->shape[0];
    return RT_OK;
}

rt_status op_check_linear_forward(const rt_tensor_t *out, const rt_tensor_t *inp,
                                  const rt_tensor_t *weight, const rt_tensor_t *bias, int *B,
                                  int *C, int *OC)
{
    const char *op = "linear_forward";
    TRY(linear_sizes(op, inp, weight, B, C, OC));
    TRY(expect_shape(out, F32, *B, *OC, op, "out"));
    return bias ? expect_shape(bias, F32, *OC, -1, op, "bias") : RT_OK;
}

rt_status op_check_linear_backward(const rt_tensor_t *dinp, const rt_tensor_t *dweight,
                                   const rt_tensor_t *dbias, const rt_tensor_t *dout,
                                   const rt_tensor_t *inp, const rt_tensor_t *weight, int *B,
                                   int *C, int *OC)
{
    const char *op = "linear_backward";
    TRY(linear_sizes(op, inp, weight, B, C, OC));
    TRY(expect_shape(dout, F32, *B, *OC, op, "dout"));
    if (dinp)
        TRY(expect_shape(dinp, F32, *B, *C, op, "dinp"));
    if (dweight)
        TRY(expect_shape(dweight, F32, *OC, *C, op, "dweight"));
    if (dbias)
        TRY(expect_shape(dbias, F32, *OC, -1, op, "dbias"));
    return RT_OK;
}

rt_status op_check_linear_weight_rows(const rt_tensor_t *dweight, const rt_tensor_t *dout,
                                      const rt_tensor_t *inp, int64_t row0, int *B, int *C,
                                      int *OC, int *R)
{
    const char *op = "linear_weight_rows";
    TRY(tensor_expect(inp, F32, 2, op, "inp"));
    TRY(tensor_expect(dout, F32, 2, op, "dout"));
    TRY(tensor_expect(dweight, F32, 2, op, "dweight"));
    TRY(tensor_expect_dim(dout, 0, inp->shape[0], op, "dout"));
    TRY(tensor_expect_dim(dweight, 1, inp->shape[1], op, "dweight"));
    CHECK_ARG(inp->shape[0] <= INT32_MAX && inp->shape[1] <= INT32_MAX &&
                  dout->shape[1] <= INT32_MAX,
              "%s: sizes beyond the int range", op);
    CHECK_ARG(row0 >= 0 && row0 + dweight->shape[0] <= dout->shape[1],
              "%s: rows [%lld, %lld) outside the %lld outputs", op, (long long)row0,
              (long long)(row0 + dweight->shape[0]), (long long)dout->shape[1]);
    *B = (int)inp->shape[0];
    *C = (int)inp->shape[1];
    *OC = (int)dout->shape[1];
    *R = (int)dweight->shape[0];
    return RT_OK;
}

rt_status op_check_same_f32(const char *op, const rt_tensor_t *a, const char *aname,
                            const rt_tensor_t *b, const char *bname, int64_t *n)
{
    TRY(tensor_expect(a, F32, 0, op, aname));
    TRY(tensor_expect(b, F32, 0, op, bname));
    *n = tensor_numel(a);
    CHECK_ARG(tensor_numel(b) == *n, "%s: %s has %lld elements, %s %lld", op, aname,
              (long long)*n, bname, (long long)tensor_numel(b));
    return RT_OK;
}

rt_status op_check_xent(const char *op, const rt_tensor_t *matrix0, const char *name0,
                        const rt_tensor_t *labels, const rt_tensor_t *rowvec,
                        const char *rowvec_name, const rt_tensor_t *matrix,
                        const char *matrix_name, int *B, int *V)
{
    TRY(tensor_expect(matrix0, F32, 2, op, name0));
    CHECK_ARG(matrix0->shape[0] <= INT32_MAX && matrix0->shape[1] <= INT32_MAX,
              "%s: sizes beyond the int range", op);
    *B = (int)matrix0->shape[0];
    *V = (int)matrix0->shape[1];
    TRY(expect_shape(labels, I32, *B, -1, op, "labels"));
    if (rowvec)
        TRY(expect_shape(rowvec, F32, *B, -1, op, rowvec_name));
    if (matrix)
        TRY(expect_shape(matrix, F32, *B, *V, op, matrix_name));
    return RT_OK;
}

rt_status op_check_update(const char *op, const rt_tensor_t *params, const rt_tensor_t *grads,
                          const rt_tensor_t *s0, const char *s0name, const rt_tensor_t *s1,
                          const char *s1name, int64_t *n)
{
    TRY(op_check_same_f32(op, params, "params", grads, "grads", n));
    int64_t m = 0;
    if (s0)
        TRY(op_check_same_f32(op, params, "params", s0, s0name, &m));
    if (s1)
        TRY(op_check_same_f32(op, params, "params", s1, s1name, &m));
    return RT_OK;
}

static rt_status int_sizes(const char *op, const rt_tensor_t *t, const char *arg)
{
    for (int i = 0; i < t->ndim; i++)
        CHECK_ARG(t->shape[i] <= INT32_MAX, "%s: %s: sizes beyond the int range", op, arg);
    return RT_OK;
}

rt_status op_check_embedding(const char *op, const rt_tensor_t *out, const rt_tensor_t *tokens,
                             const rt_tensor_t *wte, const rt_tensor_t *wpe, int *B, int *T,
                             int *C)
{
    TRY(tensor_expect(tokens, I32, 2, op, "tokens"));
    TRY(tensor_expect(out, F32, 2, op, "out"));
    TRY(int_sizes(op, tokens, "tokens"));
    TRY(int_sizes(op, out, "out"));
    *B = (int)tokens->shape[0];
    *T = (int)tokens->shape[1];
    *C = (int)out->shape[1];
    TRY(tensor_expect_dim(out, 0, (int64_t)*B * *T, op, "out"));
    if (wte) {
        TRY(tensor_expect(wte, F32, 2, op, "wte"));
        TRY(tensor_expect_dim(wte, 1, *C, op, "wte"));
    }
    if (wpe) {
        TRY(tensor_expect(wpe, F32, 2, op, "wpe"));
        TRY(tensor_expect_dim(wpe, 1, *C, op, "wpe"));
        CHECK_ARG(wpe->shape[0] >= *T, "%s: wpe has %lld positions, the tokens %d", op,
                  (long long)wpe->shape[0], *T);
    }
    return RT_OK;
}

rt_status op_check_layernorm(const char *op, const rt_tensor_t *out, const rt_tensor_t *mean,
                             const rt_tensor_t *rstd, const rt_tensor_t *inp,
                             const rt_tensor_t *weight, const rt_tensor_t *bias, int64_t *N,
                             int *C)
{
    TRY(tensor_expect(inp, F32, 2, op, "inp"));
    TRY(int_sizes(op, inp, "inp"));
    *N = inp->shape[0];
    *C = (int)inp->shape[1];
    if (out)
        TRY(expect_shape(out, F32, *N, *C, op, "out"));
    TRY(expect_shape(mean, F32, *N, -1, op, "mean"));
    TRY(expect_shape(rstd, F32, *N, -1, op, "rstd"));
    TRY(expect_shape(weight, F32, *C, -1, op, "weight"));
    return bias ? expect_shape(bias, F32, *C, -1, op, "bias") : RT_OK;
}

rt_status op_check_attention(const char *op, const rt_tensor_t *out, const rt_tensor_t *att,
                             const rt_tensor_t *scratch, const rt_tensor_t *qkv, int *B, int *T,
                             int *C, int *NH)
{
    TRY(tensor_expect(qkv, F32, 3, op, "qkv"));
    TRY(tensor_expect(att, F32, 4, op, "att"));
    TRY(int_sizes(op, qkv, "qkv"));
    TRY(int_sizes(op, att, "att"));
    *B = (int)qkv->shape[0];
    *T = (int)qkv->shape[1];
    CHECK_ARG(qkv->shape[2] % 3 == 0, "%s: qkv has %lld columns, not 3 * C", op,
              (long long)qkv->shape[2]);
    *C = (int)(qkv->shape[2] / 3);
    *NH = (int)att->shape[1];
    CHECK_ARG(*NH >= 1 && *C % *NH == 0, "%s: %d channels do not split into %d heads", op, *C,
              *NH);
    const int64_t ashape[4] = {*B, *NH, *T, *T};
    for (int i = 0; i < 4; i++) {
        TRY(tensor_expect_dim(att, i, ashape[i], op, "att"));
        if (scratch)
            TRY(tensor_expect_dim(scratch, i, ashape[i], op, "scratch"));
    }
    if (scratch)
        TRY(tensor_expect(scratch, F32, 4, op, "scratch"));
    if (out) {
        TRY(tensor_expect(out, F32, 3, op, "out"));
        TRY(tensor_expect_dim(out, 0, *B, op, "out"));
        TRY(tensor_expect_dim(out, 1, *T, op, "out"));
        TRY(tensor_expect_dim(out, 2, *C, op, "out"));
    }
    return RT_OK;
}
