/* Fuzz target: config/delayOffset.json (shmq_delay_offsets_load_ex); see fuzz_json.h. */
#include "fuzz_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char root[512];
    fuzz_json_root(data, size, "delayOffset.json", root, sizeof(root));
    shmq_offset_table_t t = {0};
    if (shmq_delay_offsets_load_ex(root, &t, fuzz_queue_max, NULL, NULL) == 0) {
        if (shmq_delay_offsets_save(root, &t) == 0) {
            shmq_offset_table_t again = {0};
            if (shmq_delay_offsets_load_ex(root, &again, fuzz_queue_max, NULL, NULL) != 0) {
                abort(); /* what the loader accepted and the saver wrote must load */
            }
            shmq_offset_table_free(&again);
        }
    }
    shmq_offset_table_free(&t);
    return 0;
}
