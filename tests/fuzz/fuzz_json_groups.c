/* Fuzz target: config/subscriptionGroup.json (shmq_groups_load_ex); see fuzz_json.h. */
#include "fuzz_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char root[512];
    fuzz_json_root(data, size, "subscriptionGroup.json", root, sizeof(root));
    shmq_group_table_t t = {0};
    if (shmq_groups_load_ex(root, &t, NULL) == 0) {
        if (shmq_groups_save(root, &t) == 0) {
            shmq_group_table_t again = {0};
            if (shmq_groups_load_ex(root, &again, NULL) != 0) {
                abort(); /* what the loader accepted and the saver wrote must load */
            }
            shmq_group_table_free(&again);
        }
    }
    shmq_group_table_free(&t);
    return 0;
}
