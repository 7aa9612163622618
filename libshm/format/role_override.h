/*
 * The role override: <root>/roleOverride, the role `shmqctl role` gave
 * this store, which wins over broker.conf's brokerRole (and
 * haMasterAddress) at every start of shmqd until it is cleared
 * (docs/operations.md "Failover").  A promoted slave keeps being a master
 * across restarts this way while its broker.conf still says SLAVE.
 *
 * Text in broker.conf's syntax, two keys at most, written atomically
 * (shmq_file_write_atomic):
 *
 *   brokerRole=ASYNC_MASTER | SYNC_MASTER | SLAVE
 *   haMasterAddress=HOST:PORT          (with SLAVE)
 *
 * A SLAVE by override whose broker.conf says brokerId=0 (a master's) takes
 * brokerId 1, as a slave must have one above 0 (not in controller mode,
 * where the controller assigns ids).
 *
 * Read as untrusted input: any other key, a bad value or a file over
 * SHMQ_ROLE_OVERRIDE_MAX bytes is refused with a detail naming the line.
 */
#ifndef SHMQ_FORMAT_ROLE_OVERRIDE_H
#define SHMQ_FORMAT_ROLE_OVERRIDE_H

#include <stdbool.h>

#include "format/config.h"

#define SHMQ_ROLE_OVERRIDE_FILE "roleOverride"
#define SHMQ_ROLE_OVERRIDE_MAX  1024

/*
 * Apply <root>/roleOverride to cfg: *present tells whether the file exists
 * (0 and false when it does not).  SHMQ_E_CONFIG with a detail otherwise.
 */
int shmq_role_override_apply(const char *root, shmq_config_t *cfg, bool *present);

/* Write the override: role, and master ("HOST:PORT") for a SLAVE (NULL otherwise). */
int shmq_role_override_save(const char *root, enum shmq_broker_role role, const char *master);

/* Remove the override (missing is fine): broker.conf decides again at the next start. */
int shmq_role_override_clear(const char *root);

/* "ASYNC_MASTER", "SYNC_MASTER", "SLAVE". */
const char *shmq_broker_role_name(enum shmq_broker_role role);

#endif
