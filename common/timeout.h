/* timeout.h - the default deadline of collective calls (host ring, NCCL
 * wait, the trainer's device steps): one rule, read from RT_COLL_TIMEOUT;
 * and the fraction of it after which a stalled host collective warns
 * (RT_COLL_WARN_FRACTION). */
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

/* A stalled collective warns once after this fraction of its timeout
 * without progress (0.1: 30 s of the default 300 s), early enough to look at
 * the stuck rank while the job still waits. */
#define RT_TIMEOUT_WARN_DEFAULT 0.1

/* RT_COLL_WARN_FRACTION (a plain number in [0, 1); 0 turns the warning off)
 * when set to such a value, else RT_TIMEOUT_WARN_DEFAULT. A value that is set
 * but not accepted is logged as a warning and ignored. Reads the
 * environment each time. */
double rt_timeout_warn_fraction(void);

#ifdef __cplusplus
}
#endif

#endif
