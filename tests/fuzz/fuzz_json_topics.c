/* Fuzz target: config/topics.json (shmq_topics_load_ex); see fuzz_json.h. */
#include "fuzz_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char root[512];
    fuzz_json_root(data, size, "topics.json", root, sizeof(root));
    shmq_topic_table_t t = {0};
    if (shmq_topics_load_ex(root, &t, 0, NULL) == 0) {
        if (shmq_topics_save(root, &t) == 0) {
            shmq_topic_table_t again = {0};
            if (shmq_topics_load_ex(root, &again, 0, NULL) != 0) {
                abort(); /* what the loader accepted and the saver wrote must load */
            }
            shmq_topic_table_free(&again);
        }
    }
    shmq_topic_table_free(&t);
    return 0;
}
