/*
 * Fuzz target: <root>/checkpoint (libshm/format/store_files.c) and the arithmetic
 * recovery does on its times (shmq_checkpoint_min_ts, the abnormal
 * recovery's scan start).  The input is the file: a 4096-byte input is a
 * checkpoint of the right size (zero-padded when shorter and the first
 * byte is even, so that short inputs reach the fields too); any other
 * length is kept as is and must be refused.
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "format/store_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char root[512], path[600];
    fuzz_fresh_dir("cp", root, sizeof(root));
    snprintf(path, sizeof(path), "%s/checkpoint", root);
    bool pad = size > 0 && (data[0] & 1) == 0;
    fuzz_write_file(path, size ? data : (const uint8_t *)"", size,
                    pad ? SHMQ_CHECKPOINT_SIZE : (long long)size);
    shmq_checkpoint_t cp;
    int rc = shmq_checkpoint_read(root, &cp);
    if (rc == 0) {
        int64_t ts = shmq_checkpoint_min_ts(&cp);
        if (ts < 0) {
            abort(); /* floored at 0 */
        }
        /* Written back and read again: the same fields. */
        if (shmq_checkpoint_write(root, &cp) == 0) {
            shmq_checkpoint_t again;
            if (shmq_checkpoint_read(root, &again) != 0 ||
                again.physic_msg_ts != cp.physic_msg_ts ||
                again.logics_msg_ts != cp.logics_msg_ts || again.index_msg_ts != cp.index_msg_ts ||
                again.master_flushed != cp.master_flushed ||
                again.confirm_phys != cp.confirm_phys) {
                abort();
            }
        }
    } else if (size == SHMQ_CHECKPOINT_SIZE || pad) {
        abort(); /* a file of the right size always reads */
    }
    return 0;
}
