/* test_dtype.c - the element-type enum: fixed numeric values (they travel
 * in collective headers), sizes against sizeof of the C types, names,
 * out-of-range values, and bf16 rounding against hand-worked bit patterns. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/dtype.h"
#include "test_util.h"

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int main(void)
{
    EXPECT(RT_DTYPE_F32 == 0 && RT_DTYPE_F64 == 1 && RT_DTYPE_BF16 == 2 && RT_DTYPE_U8 == 3 &&
           RT_DTYPE_I32 == 4 && RT_DTYPE_I64 == 5 && RT_DTYPE_U16 == 6 && RT_DTYPE_U32 == 7 &&
           RT_DTYPE_U64 == 8 && RT_DTYPE_COUNT == 9, "numeric values changed");
    const struct { rt_dtype t; size_t size; const char *name; } want[] = {
        {RT_DTYPE_F32, sizeof(float), "f32"},   {RT_DTYPE_F64, sizeof(double), "f64"},
        {RT_DTYPE_BF16, sizeof(uint16_t), "bf16"}, {RT_DTYPE_U8, sizeof(uint8_t), "u8"},
        {RT_DTYPE_I32, sizeof(int32_t), "i32"}, {RT_DTYPE_I64, sizeof(int64_t), "i64"},
        {RT_DTYPE_U16, sizeof(uint16_t), "u16"}, {RT_DTYPE_U32, sizeof(uint32_t), "u32"},
        {RT_DTYPE_U64, sizeof(uint64_t), "u64"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        EXPECT(rt_dtype_size(want[i].t) == want[i].size, "size of %s: %zu", want[i].name,
               rt_dtype_size(want[i].t));
        EXPECT(!strcmp(rt_dtype_name(want[i].t), want[i].name), "name %d: %s", (int)want[i].t,
               rt_dtype_name(want[i].t));
    }
    EXPECT(rt_dtype_size(RT_DTYPE_COUNT) == 0 && rt_dtype_size((rt_dtype)-1) == 0 &&
           rt_dtype_size((rt_dtype)99) == 0, "out-of-range values have size 0");
    EXPECT(!strcmp(rt_dtype_name(RT_DTYPE_COUNT), "unknown") &&
           !strcmp(rt_dtype_name((rt_dtype)-1), "unknown"), "out-of-range name");

    /* bf16 keeps the top 16 bits of a float32, rounding the low 16 to
     * nearest, ties to the even top half. */
    EXPECT(rt_bf16_from_float(1.0f) == 0x3f80, "1.0 -> 0x%04x", rt_bf16_from_float(1.0f));
    EXPECT(rt_bf16_from_float(from_bits(0x3f808000u)) == 0x3f80, "tie rounds to even (down)");
    EXPECT(rt_bf16_from_float(from_bits(0x3f818000u)) == 0x3f82, "tie rounds to even (up)");
    EXPECT(rt_bf16_from_float(from_bits(0x3f808001u)) == 0x3f81, "above the tie rounds up");
    EXPECT(rt_bf16_from_float(from_bits(0x3f807fffu)) == 0x3f80, "below the tie rounds down");
    EXPECT(rt_bf16_from_float(from_bits(0x7f7fffffu)) == 0x7f80, "FLT_MAX rounds to +inf");
    EXPECT(rt_bf16_from_float(-INFINITY) == 0xff80, "-inf");
    uint16_t nan = rt_bf16_from_float(from_bits(0x7f800001u)); /* signalling NaN, low payload */
    EXPECT((nan & 0x7f80) == 0x7f80 && (nan & 0x7f) != 0, "NaN stays NaN: 0x%04x", nan);
    EXPECT(rt_bf16_to_float(0x3f80) == 1.0f && rt_bf16_to_float(0xc040) == -3.0f, "to float");
    for (uint32_t h = 0; h < 0x10000; h += 7) { /* every finite bf16 round-trips */
        if ((h & 0x7f80) == 0x7f80)
            continue;
        EXPECT(rt_bf16_from_float(rt_bf16_to_float((uint16_t)h)) == h, "round trip 0x%04x", h);
    }
    return TEST_EXIT();
}
