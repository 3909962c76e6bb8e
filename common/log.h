/* log.h - rank-prefixed logging: `[r3/8 node07] file.c:142 ERROR: ...`.
 *
 * The level comes from RT_LOG_LEVEL (error, warn, info, debug; default info).
 * Before MPI is up the prefix uses the launcher's environment
 * (OMPI_COMM_WORLD_RANK/SIZE) so early messages still name the rank.
 */
#ifndef RT_COMMON_LOG_H
#define RT_COMMON_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { RT_LOG_ERROR = 0, RT_LOG_WARN, RT_LOG_INFO, RT_LOG_DEBUG } rt_log_level;

/* Sets the rank and world size shown in the prefix. */
void rt_log_set_rank(int rank, int size);
int rt_log_rank(void);
int rt_log_enabled(rt_log_level level);

void rt_log_write(rt_log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define RT_LOG(level, ...) \
    do { if (rt_log_enabled(level)) rt_log_write(level, __FILE__, __LINE__, __VA_ARGS__); } while (0)
#define LOG_ERROR(...) RT_LOG(RT_LOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...) RT_LOG(RT_LOG_WARN, __VA_ARGS__)
#define LOG_INFO(...) RT_LOG(RT_LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) RT_LOG(RT_LOG_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif
