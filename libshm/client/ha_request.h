/*
 * shmq's requests on a master's HA port (format/ha_frame.h), as a client:
 * blocking, bounded by a timeout, one request per connection.  shmqd and
 * the ha-receiver of a slave ask the master for its epoch table with it.
 */
#ifndef SHMQ_CLIENT_HA_REQUEST_H
#define SHMQ_CLIENT_HA_REQUEST_H

#include <stdint.h>

#include "format/epoch.h"
#include "net/net.h"

/*
 * Ask the master at hostport ("host:port", a name is looked up) for its
 * epoch table and log end (request code 2), over tls (the link's; NULL:
 * plain), all within timeout_ms.  0 with *t (empty when the
 * master has none) and *end; a transport error is a negative errno (worth
 * retrying); an answer that is not one (not an shmq master, a damaged
 * table, a status that is not an shmq code) SHMQ_E_CORRUPT; the master's
 * refusal its status (an SHMQ_E_* code).  Details set.
 */
int shmq_ha_fetch_epochs(const char *hostport, const shmq_net_tls_t *tls, int timeout_ms,
                         shmq_epoch_table_t *t, int64_t *end);

#endif
