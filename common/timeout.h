/* timeout.h - the default deadline of collective calls (host ring, NCCL
 * wait, the trainer's device steps): one rule, read from RT_COLL_TIMEOUT. */
#ifndef RT_COMMON_TIMEOUT_H
#define RT_COMMON_TIMEOUT_H

#ifdef __cplusplus
extern "C" {
#endif

/* Seconds without progress before a collective gives up, when neither the
 * caller nor the environment says otherwise. */
#define RT_TIMEOUT_DEFAULT_S 300.0
/* The range RT_COLL_TIMEOUT must lie in to be taken. */
#define RT_TIMEOUT_MIN_S 0.001
#define RT_TIMEOUT_MAX_S 1e9

/* RT_COLL_TIMEOUT (seconds, a plain number in [RT_TIMEOUT_MIN_S,
 * RT_TIMEOUT_MAX_S]) when set to such a value, else RT_TIMEOUT_DEFAULT_S.
 * A value that is set but not accepted is logged as a warning (on every
 * call) and ignored. Reads the environment each time. */
double rt_timeout_default(void);

#ifdef __cplusplus
}
#endif

#endif
