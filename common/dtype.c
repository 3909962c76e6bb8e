/* dtype.c - sizes and names of the element types (common/dtype.h). */
#include "common/dtype.h"

/* Indexed by rt_dtype; the static asserts keep the tables in step with the enum. */
static const size_t dtype_sizes[] = {4, 8, 2, 1, 4, 8, 2, 4, 8};
static const char *const dtype_names[] = {"f32", "f64", "bf16", "u8", "i32",
                                          "i64", "u16", "u32", "u64"};
_Static_assert(sizeof dtype_sizes / sizeof dtype_sizes[0] == RT_DTYPE_COUNT,
               "one size per rt_dtype");
_Static_assert(sizeof dtype_names / sizeof dtype_names[0] == RT_DTYPE_COUNT,
               "one name per rt_dtype");

size_t rt_dtype_size(rt_dtype dt)
{
    /* The unsigned compare also rejects negative values cast to rt_dtype. */
    return (unsigned)dt < RT_DTYPE_COUNT ? dtype_sizes[dt] : 0;
}

const char *rt_dtype_name(rt_dtype dt)
{
    return (unsigned)dt < RT_DTYPE_COUNT ? dtype_names[dt] : "unknown";
}
