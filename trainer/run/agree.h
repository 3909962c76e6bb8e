/* agree.h - ranks agreeing on an outcome before they go on, so that none
 * trains alone or waits in a collective for a peer that already gave up. */
#ifndef RT_TRAINER_RUN_AGREE_H
#define RT_TRAINER_RUN_AGREE_H

#include <stdbool.h>

#include "collectives/coll.h"
#include "common/status.h"

/* Collective over comm (NULL: this process alone): every rank returns the
 * first failing rank's status (RT_OK when none failed); *speak is true on
 * that rank only, so a bad flag on 4 ranks prints one message. A rank that
 * did not fail itself gets the message "rank N failed to set up". */
rt_status ranks_agree(coll_comm_t *comm, rt_status local, bool *speak);

#endif
