/*
 * The bucket bounds of the control block's histograms (stats.h).  Changing
 * them changes what the buckets mean: bump SHMQ_CTL_VERSION with them.
 */
#include "shm/stats.h"

#define US 1000LL
#define MS 1000000LL
#define S  1000000000LL

static const int64_t send_ns[] = {1 * MS,   2 * MS,   5 * MS, 10 * MS,   25 * MS, 50 * MS, 100 * MS,
                                  250 * MS, 500 * MS, 1 * S,  2500 * MS, 5 * S,   10 * S};
static const int64_t flush_ns[] = {10 * US,  25 * US,   50 * US,  100 * US, 250 * US, 500 * US,
                                   1 * MS,   2500 * US, 5 * MS,   10 * MS,  25 * MS,  50 * MS,
                                   100 * MS, 250 * MS,  500 * MS, 1 * S};

_Static_assert(sizeof(send_ns) / sizeof(send_ns[0]) <= SHMQ_HIST_BOUNDS, "send buckets");
_Static_assert(sizeof(flush_ns) / sizeof(flush_ns[0]) <= SHMQ_HIST_BOUNDS, "flush buckets");

const shmq_hist_bounds_t shmq_hist_send = {send_ns, (int)(sizeof(send_ns) / sizeof(send_ns[0]))};
const shmq_hist_bounds_t shmq_hist_flush = {flush_ns,
                                            (int)(sizeof(flush_ns) / sizeof(flush_ns[0]))};
