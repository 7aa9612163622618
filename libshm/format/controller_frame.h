/*
 * The controller's client protocol and log entries: one frame is a 4-byte
 * big-endian length and that many bytes of one JSON object (UTF-8), at most
 * SHMQ_CTRL_FRAME_MAX bytes.  A request names its command in "cmd":
 *
 *   {"cmd":"register","brokerName":"b","brokerAddress":"h:p","brokerId":0,
 *    "clusterName":"c","maxOffset":0,"epoch":0,"gatewayAddress":"h:p"}
 *   {"cmd":"heartbeat","brokerName":"b","brokerId":1,"brokerAddress":"h:p",
 *    "maxOffset":1234,"epoch":2}
 *   {"cmd":"elect_master","brokerName":"b","brokerId":0}
 *   {"cmd":"alter_sync_state_set","brokerName":"b","masterId":1,"masterEpoch":2,
 *    "syncStateSet":[1,2],"syncStateSetEpoch":3}
 *   {"cmd":"replica_info","brokerName":"b"}     {"cmd":"status"}
 *
 * and an answer is {"ok":true,...} or {"ok":false,"error":"...","code":"..."}.
 * The same objects (with the fields the leader adds: an election's "alive"
 * replicas and "unclean", a "member" command's "memberId" and "address")
 * are the entries of the Raft log, decoded again by every controller before
 * it applies them: untrusted either way.  Anything unexpected (a field of
 * the wrong type, a name too long, a number out of range, an unknown
 * command, duplicate ids) refuses the whole request with a detail.
 */
#ifndef SHMQ_FORMAT_CONTROLLER_FRAME_H
#define SHMQ_FORMAT_CONTROLLER_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "format/controller_state.h"

#define SHMQ_CTRL_FRAME_HEAD 4
#define SHMQ_CTRL_FRAME_MAX  (64u * 1024u) /* bytes of JSON in one frame */

/*
 * How far buf (len bytes received) holds a frame: the frame's whole length
 * (head included) once the head is in, 0 while it is not, SHMQ_E_TOO_BIG
 * for a length of 0 or above SHMQ_CTRL_FRAME_MAX.
 */
long shmq_ctrl_frame_size(const uint8_t *buf, size_t len);

/*
 * Decode one request body (the JSON after the head).  allow_internal: the
 * fields only the leader adds ("alive", "unclean", the member command) are
 * taken (a log entry) instead of ignored or refused (a client's request).
 * 0, or SHMQ_E_JSON / SHMQ_E_ARG with the reason in err (errlen bytes).
 */
int shmq_ctrl_cmd_decode(const char *body, size_t len, bool allow_internal, shmq_ctrl_cmd_t *c,
                         char *err, size_t errlen);

/* A command as JSON text (the log entry): malloc'd, NUL-terminated.  0 or -ENOMEM. */
int shmq_ctrl_cmd_encode(const shmq_ctrl_cmd_t *c, char **out, size_t *len);

/* The name of a command's kind in "cmd". */
const char *shmq_ctrl_cmd_name(shmq_ctrl_cmd_kind_t kind);

#endif
