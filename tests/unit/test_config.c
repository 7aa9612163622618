/*
 * Unit tests for libshm/format/config.c: RocketMQ defaults, the broker.conf
 * reader, value checking (strict integers, booleans, enums, delay levels),
 * ratio clamping, ConsumeQueue size rounding and the cross-field checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmp_tree.h"
#include "format/config.h"
#include "shmq/errors.h"

/* ---- fixtures ------------------------------------------------------------ */

typedef struct fixture {
    char dir[64];
    char path[128];
    int warnings;
    char last_warning[512];
    char last_file[128];
    int last_line;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/shmq-test-config-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/broker.conf", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tmp_tree_remove(f->dir);
    free(f);
    return 0;
}

static void capture_warning(void *arg, const char *file, int line, const char *msg)
{
    fixture_t *f = arg;
    f->warnings++;
    snprintf(f->last_warning, sizeof(f->last_warning), "%s", msg);
    snprintf(f->last_file, sizeof(f->last_file), "%s", file ? file : "");
    f->last_line = line;
}

static void write_conf(fixture_t *f, const char *text)
{
    int fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (strstr(hay, needle) == NULL) {
        fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
    }
}

/* ---- defaults ------------------------------------------------------------ */

static void test_defaults_equal_rocketmq(void **state)
{
    (void)state;
    shmq_config_t c;
    char dir[4096];

    memset(&c, 0x77, sizeof(c));
    shmq_config_defaults(&c);
    assert_string_equal(c.store_path_root_dir, "./data");
    assert_string_equal(c.store_path_commit_log, "");
    shmq_config_commitlog_dir(&c, dir, sizeof(dir));
    assert_string_equal(dir, "./data/commitlog");
    assert_string_equal(c.broker_name, "broker-a");
    assert_string_equal(c.broker_cluster_name, "DefaultCluster");
    assert_int_equal(c.broker_id, 0);
    assert_int_equal(c.listen_port, 10911);
    assert_string_equal(c.broker_ip1, "");
    assert_int_equal(c.mapped_file_size_commit_log, 1073741824LL);
    assert_int_equal(c.mapped_file_size_consume_queue, 6000000);
    assert_int_equal(c.max_message_size, 4194304);
    assert_int_equal(c.max_topic_length, 127);
    assert_int_equal(c.flush_disk_type, SHMQ_ASYNC_FLUSH);
    assert_int_equal(c.broker_role, SHMQ_ASYNC_MASTER);
    assert_int_equal(c.flush_interval_commit_log, 500);
    assert_true(c.flush_commit_log_timed);
    assert_int_equal(c.flush_commit_log_least_pages, 4);
    assert_int_equal(c.flush_commit_log_thorough_interval, 10000);
    assert_int_equal(c.flush_interval_consume_queue, 1000);
    assert_int_equal(c.flush_consume_queue_least_pages, 2);
    assert_int_equal(c.flush_consume_queue_thorough_interval, 60000);
    assert_int_equal(c.sync_flush_timeout, 5000);
    assert_int_equal(c.put_message_timeout, 8000);
    assert_true(c.check_crc_on_recover);
    assert_false(c.warm_mapped_file_enable);
    assert_false(c.mlock_enable);
    assert_int_equal(c.file_reserved_time, 72);
    assert_string_equal(c.delete_when, "04");
    assert_int_equal(c.disk_max_used_space_ratio, 75);
    assert_int_equal(c.disk_space_warning_level_ratio, 90);
    assert_int_equal(c.disk_space_clean_forcibly_ratio, 85);
    assert_int_equal(c.clean_resource_interval, 10000);
    assert_int_equal(c.delete_commit_log_files_interval, 100);
    assert_int_equal(c.delete_file_batch_max, 10);
    assert_true(c.clean_file_forcibly_enable);
    assert_true(c.message_index_enable);
    assert_false(c.message_index_safe);
    assert_int_equal(c.max_hash_slot_num, 5000000);
    assert_int_equal(c.max_index_num, 20000000);
    assert_int_equal(c.max_msgs_num_batch, 64);
    assert_true(c.auto_create_topic_enable);
    assert_int_equal(c.default_topic_queue_nums, 4);
    assert_string_equal(c.message_delay_level,
                        "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h");
    const int64_t delays[18] = {1000,   5000,   10000,   30000,   60000,   120000,
                                180000, 240000, 300000,  360000,  420000,  480000,
                                540000, 600000, 1200000, 1800000, 3600000, 7200000};
    assert_int_equal(c.delay_level_count, 18);
    for (int i = 0; i < 18; i++) {
        assert_int_equal(c.delay_level_ms[i], delays[i]);
    }
    assert_int_equal(c.flush_delay_offset_interval, 10000);
    assert_int_equal(c.timer_precision_ms, 1000);
    assert_int_equal(c.timer_max_delay_sec, 259200);
    assert_true(c.timer_wheel_enable);
    assert_int_equal(c.mapped_file_size_timer_log, 100LL * 1024 * 1024);
    assert_int_equal(c.max_reconsume_times, 16);
    assert_int_equal(c.ha_listen_port, 10912);
    assert_string_equal(c.ha_master_address, "");
    assert_int_equal(c.ha_send_heartbeat_interval, 5000);
    assert_int_equal(c.ha_housekeeping_interval, 20000);
    assert_int_equal(c.ha_transfer_batch_size, 32768);
    assert_int_equal(c.ha_max_gap_not_in_sync, 256LL * 1024 * 1024);
    assert_int_equal(c.slave_timeout, 3000);

    assert_int_equal(shmq_config_validate(&c), 0);
}

/* ---- broker.conf --------------------------------------------------------- */

static void test_sample_broker_conf_with_comments_aliases_crlf_loads(void **state)
{
    fixture_t *f = *state;
    shmq_config_t c;
    char dir[4096];

    shmq_config_defaults(&c);
    write_conf(f, "# RocketMQ broker.conf\r\n"
                  "! another comment style\r\n"
                  "\r\n"
                  "brokerClusterName = ProdCluster\r\n"
                  "brokerName=broker-b\r\n"
                  "  brokerId : 0   \r\n"
                  "deleteWhen=04;16\r\n"
                  "fileReservedTime=48\r\n"
                  "brokerRole=SYNC_MASTER\r\n"
                  "flushDiskType=sync_flush\r\n"
                  "storePathRootDir=/var/lib/shmq\r\n"
                  "storePathCommitLog=/data/commitlog\r\n"
                  "mapedFileSizeCommitLog=67108864\r\n"
                  "mapedFileSizeConsumeQueue=300000\r\n"
                  "messageIndexEnable=FALSE\r\n"
                  "haMasterAddress=10.0.0.2:10912\r\n"
                  "brokerIP1=10.0.0.1\r\n"
                  "messageDelayLevel=1s 10s 1m 1h 1d\r\n"
                  "diskMaxUsedSpaceRatio=88"); /* last line without newline */
    assert_int_equal(shmq_config_load(&c, f->path, capture_warning, f), 0);
    assert_string_equal(c.broker_cluster_name, "ProdCluster");
    assert_string_equal(c.broker_name, "broker-b");
    assert_int_equal(c.broker_id, 0);
    assert_string_equal(c.delete_when, "04;16");
    assert_int_equal(c.file_reserved_time, 48);
    assert_int_equal(c.broker_role, SHMQ_SYNC_MASTER);
    assert_int_equal(c.flush_disk_type, SHMQ_SYNC_FLUSH);
    assert_string_equal(c.store_path_root_dir, "/var/lib/shmq");
    shmq_config_commitlog_dir(&c, dir, sizeof(dir));
    assert_string_equal(dir, "/data/commitlog");
    assert_int_equal(c.mapped_file_size_commit_log, 67108864);
    assert_int_equal(c.mapped_file_size_consume_queue, 300000);
    assert_false(c.message_index_enable);
    assert_string_equal(c.ha_master_address, "10.0.0.2:10912");
    assert_string_equal(c.broker_ip1, "10.0.0.1");
    assert_int_equal(c.delay_level_count, 5);
    assert_int_equal(c.delay_level_ms[4], 86400000);
    assert_string_equal(c.message_delay_level, "1s 10s 1m 1h 1d");
    assert_int_equal(c.disk_max_used_space_ratio, 88);
    /* The two old spellings were warned about. */
    assert_int_equal(f->warnings, 2);
    assert_contains(f->last_warning, "mapedFileSizeConsumeQueue");
    assert_string_equal(f->last_file, f->path);
    assert_int_equal(f->last_line, 14);
    /* A SYNC_MASTER needs its link to slaves. */
    assert_int_equal(shmq_config_validate(&c), SHMQ_E_CONFIG);
    assert_contains(shmq_error_detail(), "key 'haSecretFile'");
    assert_contains(shmq_error_detail(), "haPlainLink=true");
    c.ha_plain_link = true;
    assert_int_equal(shmq_config_validate(&c), 0);
}

static void test_unknown_key_warns_and_is_not_an_error(void **state)
{
    fixture_t *f = *state;
    shmq_config_t c;

    shmq_config_defaults(&c);
    assert_int_equal(shmq_config_set(&c, "fooBarBaz", "1", capture_warning, f), 1);
    assert_int_equal(f->warnings, 1);
    assert_contains(f->last_warning, "unknown key 'fooBarBaz'");
    assert_string_equal(f->last_file, "");
    assert_int_equal(f->last_line, 0);

    write_conf(f, "listenPort=10920\nnoSuchKey=x\n");
    assert_int_equal(shmq_config_load(&c, f->path, capture_warning, f), 0);
    assert_int_equal(f->warnings, 2);
    assert_contains(f->last_warning, "unknown key 'noSuchKey'");
    assert_int_equal(f->last_line, 2);
    assert_int_equal(c.listen_port, 10920);

    /* No callback: still not an error. */
    assert_int_equal(shmq_config_set(&c, "fooBarBaz", "1", NULL, NULL), 1);
}

static void test_rocketmq_key_without_effect_warns_and_is_accepted(void **state)
{
    fixture_t *f = *state;
    shmq_config_t c;

    shmq_config_defaults(&c);
    assert_int_equal(shmq_config_set(&c, "namesrvAddr", "127.0.0.1:9876", capture_warning, f), 0);
    assert_int_equal(f->warnings, 1);
    assert_contains(f->last_warning, "has no effect in shmq");
    assert_int_equal(shmq_config_set(&c, "transientStorePoolEnable", "true", capture_warning, f),
                     0);
}

static void test_inert_key_warns_only_off_its_default(void **state)
{
    fixture_t *f = *state;
    shmq_config_t c;

    shmq_config_defaults(&c);
    /* RocketMQ's default: what shmq does; silent, and printed configs read back quietly. */
    assert_int_equal(shmq_config_set(&c, "flushCommitLogTimed", "true", capture_warning, f), 0);
    assert_int_equal(shmq_config_set(&c, "putMessageTimeout", "8000", capture_warning, f), 0);
    assert_int_equal(f->warnings, 0);
    /* Another value is accepted and checked, with a warning saying why it changes nothing. */
    assert_int_equal(shmq_config_set(&c, "flushCommitLogTimed", "false", capture_warning, f), 0);
    assert_int_equal(f->warnings, 1);
    assert_contains(f->last_warning, "flushCommitLogTimed=false' has no effect in shmq");
    assert_int_equal(shmq_config_set(&c, "warmMapedFileEnable", "true", capture_warning, f), 0);
    assert_int_equal(f->warnings, 2);
    assert_contains(f->last_warning, "pre-faulted");
    assert_int_equal(shmq_config_set(&c, "putMessageTimeout", "0", capture_warning, f),
                     SHMQ_E_CONFIG);
    assert_int_equal(c.put_message_timeout, 8000);
}

static void test_line_without_separator_is_refused_naming_line(void **state)
{
    fixture_t *f = *state;
    shmq_config_t c;
    char want[256];

    shmq_config_defaults(&c);
    write_conf(f, "# comment\nbrokerName=b\njust some words\n");
    assert_int_equal(shmq_config_load(&c, f->path, NULL, NULL), SHMQ_E_CONFIG);
    snprintf(want, sizeof(want), "%s:3: ", f->path);
    assert_contains(shmq_error_detail(), want);

    write_conf(f, "storePathRootDir=/a\\\n/b\n");
    assert_int_equal(shmq_config_load(&c, f->path, NULL, NULL), SHMQ_E_CONFIG);
    assert_contains(shmq_error_detail(), "continuation");

    write_conf(f, "=value\n");
    assert_int_equal(shmq_config_load(&c, f->path, NULL, NULL), SHMQ_E_CONFIG);
}

static void test_bad_value_in_file_names_file_line_key_and_value(void **state)
{
    fixture_t *f = *state;
    shmq_config_t c;
    char want[256];

    shmq_config_defaults(&c);
    write_conf(f, "brokerName=b\r\n\r\nlistenPort = 99999\r\nbrokerId=3\r\n");
    assert_int_equal(shmq_config_load(&c, f->path, NULL, NULL), SHMQ_E_CONFIG);
    snprintf(want, sizeof(want), "%s:3: key 'listenPort': bad value '99999': expected ", f->path);
    assert_contains(shmq_error_detail(), want);
    assert_int_equal(c.broker_id, 0); /* stopped at the bad line */
}

static void test_missing_file_is_enoent(void **state)
{
    fixture_t *f = *state;
    shmq_config_t c;
    shmq_config_defaults(&c);
    assert_int_equal(shmq_config_load(&c, f->path, NULL, NULL), -ENOENT);
}

/* ---- bad values ---------------------------------------------------------- */

static void expect_refused(const char *key, const char *value, const char *expect_part)
{
    shmq_config_t c;
    char want[256];

    shmq_config_defaults(&c);
    shmq_config_t before = c;
    assert_int_equal(shmq_config_set(&c, key, value, NULL, NULL), SHMQ_E_CONFIG);
    snprintf(want, sizeof(want), "key '%s': bad value '%s': expected ", key, value);
    if (strncmp(shmq_error_detail(), want, strlen(want)) != 0) {
        fail_msg("detail \"%s\" does not start with \"%s\"", shmq_error_detail(), want);
    }
    assert_contains(shmq_error_detail(), expect_part);
    assert_memory_equal(&c, &before, sizeof(c)); /* nothing changed */
}

static void test_non_numeric_integer_refused(void **state)
{
    (void)state;
    expect_refused("maxMessageSize", "abc", "an integer");
    expect_refused("maxMessageSize", "4m", "an integer");
    expect_refused("maxMessageSize", "0x100", "an integer");
    expect_refused("maxMessageSize", " 100", "an integer");
    expect_refused("maxMessageSize", "", "an integer");
    expect_refused("maxMessageSize", "-", "an integer");
    expect_refused("brokerId", "99999999999999999999", "an integer");
    expect_refused("diskMaxUsedSpaceRatio", "high", "percentage");
}

static void test_out_of_range_integer_refused(void **state)
{
    (void)state;
    expect_refused("listenPort", "0", "1..65535");
    expect_refused("listenPort", "65536", "1..65535");
    expect_refused("mappedFileSizeCommitLog", "4095", "4096..");
    expect_refused("mappedFileSizeCommitLog", "2199023255553", "..1099511627776");
    expect_refused("mappedFileSizeConsumeQueue", "19", "20..");
    expect_refused("maxMessageSize", "0", "1..");
    expect_refused("maxTopicLength", "256", "1..255");
    expect_refused("timerPrecisionMs", "50", "100..1000");
    expect_refused("flushIntervalCommitLog", "-5", "1..");
    expect_refused("defaultTopicQueueNums", "0", "1..1024");
    expect_refused("defaultTopicQueueNums", "1025", "1..1024");
}

static void test_integer_accepts_sign_and_exact_bounds(void **state)
{
    (void)state;
    shmq_config_t c;
    shmq_config_defaults(&c);
    assert_int_equal(shmq_config_set(&c, "listenPort", "+65535", NULL, NULL), 0);
    assert_int_equal(c.listen_port, 65535);
    assert_int_equal(shmq_config_set(&c, "mappedFileSizeCommitLog", "1099511627776", NULL, NULL),
                     0);
    assert_int_equal(c.mapped_file_size_commit_log, 1099511627776LL);
    assert_int_equal(shmq_config_set(&c, "brokerId", "9223372036854775807", NULL, NULL), 0);
    assert_int_equal(c.broker_id, INT64_MAX);
}

static void test_bad_enum_refused(void **state)
{
    (void)state;
    expect_refused("flushDiskType", "FAST_FLUSH", "ASYNC_FLUSH or SYNC_FLUSH");
    expect_refused("brokerRole", "MASTER", "ASYNC_MASTER, SYNC_MASTER or SLAVE");
    shmq_config_t c;
    shmq_config_defaults(&c);
    assert_int_equal(shmq_config_set(&c, "brokerRole", "SLAVE", NULL, NULL), 0);
    assert_int_equal(c.broker_role, SHMQ_SLAVE);
}

static void test_bad_bool_refused(void **state)
{
    (void)state;
    expect_refused("messageIndexEnable", "yes", "true or false");
    expect_refused("mlockEnable", "1", "true or false");
    expect_refused("checkCRCOnRecover", "", "true or false");
    shmq_config_t c;
    shmq_config_defaults(&c);
    assert_int_equal(shmq_config_set(&c, "mlockEnable", "True", NULL, NULL), 0);
    assert_true(c.mlock_enable); /* allAckInSyncStateSet: shmq's default true (RocketMQ's false),
                                    and it can be turned off. */
    expect_refused("allAckInSyncStateSet", "no", "true or false");
    assert_true(c.all_ack_in_sync_state_set);
    assert_int_equal(shmq_config_set(&c, "allAckInSyncStateSet", "false", NULL, NULL), 0);
    assert_false(c.all_ack_in_sync_state_set);
}

static void test_bad_delay_level_string_refused(void **state)
{
    (void)state;
    expect_refused("messageDelayLevel", "1s 5x", "delays like");
    expect_refused("messageDelayLevel", "", "delays like");
    expect_refused("messageDelayLevel", "0s", "delays like");
    expect_refused("messageDelayLevel", "5", "delays like");
    expect_refused("messageDelayLevel", "s", "delays like");
    expect_refused("messageDelayLevel", "1S", "delays like");
    expect_refused("messageDelayLevel", "1.5s", "delays like");
    expect_refused("messageDelayLevel", "-1s", "delays like");
    expect_refused("messageDelayLevel", "1s,5s", "delays like");
}

static void test_delay_levels_parse_units_and_count_limit(void **state)
{
    (void)state;
    int64_t ms[SHMQ_MAX_DELAY_LEVELS];
    char s[512] = "";

    assert_int_equal(shmq_config_parse_delay_levels("1s  5m\t2h 1d", ms, SHMQ_MAX_DELAY_LEVELS), 4);
    assert_int_equal(ms[0], 1000);
    assert_int_equal(ms[1], 300000);
    assert_int_equal(ms[2], 7200000);
    assert_int_equal(ms[3], 86400000);

    for (int i = 0; i < SHMQ_MAX_DELAY_LEVELS; i++) {
        strcat(s, "1s ");
    }
    assert_int_equal(shmq_config_parse_delay_levels(s, ms, SHMQ_MAX_DELAY_LEVELS),
                     SHMQ_MAX_DELAY_LEVELS);
    strcat(s, "1s");
    assert_int_equal(shmq_config_parse_delay_levels(s, ms, SHMQ_MAX_DELAY_LEVELS), SHMQ_E_CONFIG);
}

static void test_bad_strings_refused(void **state)
{
    (void)state;
    expect_refused("deleteWhen", "24", "hours 00..23");
    expect_refused("deleteWhen", "04;", "hours 00..23");
    expect_refused("deleteWhen", "004", "hours 00..23");
    expect_refused("brokerIP1", "10.0.0.256", "IPv4 or IPv6");
    expect_refused("haMasterAddress", "10.0.0.2", "host:port");
    expect_refused("haMasterAddress", "10.0.0.2:0", "host:port");
    expect_refused("storePathCommitLog", "/a,/b", "single directory");
    expect_refused("storePathRootDir", "", "non-empty");
    expect_refused("brokerName", "", "non-empty");
}

/* ---- clamping and rounding ----------------------------------------------- */

static void test_disk_ratios_are_clamped_like_rocketmq(void **state)
{
    fixture_t *f = *state;
    shmq_config_t c;

    shmq_config_defaults(&c);
    assert_int_equal(shmq_config_set(&c, "diskMaxUsedSpaceRatio", "99", capture_warning, f), 0);
    assert_int_equal(c.disk_max_used_space_ratio, 95);
    assert_int_equal(f->warnings, 1);
    assert_contains(f->last_warning, "clamped to 95");
    assert_int_equal(shmq_config_set(&c, "diskMaxUsedSpaceRatio", "5", capture_warning, f), 0);
    assert_int_equal(c.disk_max_used_space_ratio, 10);
    assert_int_equal(shmq_config_set(&c, "diskSpaceWarningLevelRatio", "20", NULL, NULL), 0);
    assert_int_equal(c.disk_space_warning_level_ratio, 35);
    assert_int_equal(shmq_config_set(&c, "diskSpaceWarningLevelRatio", "95", NULL, NULL), 0);
    assert_int_equal(c.disk_space_warning_level_ratio, 90);
    assert_int_equal(shmq_config_set(&c, "diskSpaceCleanForciblyRatio", "90", NULL, NULL), 0);
    assert_int_equal(c.disk_space_clean_forcibly_ratio, 85);
    assert_int_equal(shmq_config_set(&c, "diskSpaceCleanForciblyRatio", "-3", NULL, NULL), 0);
    assert_int_equal(c.disk_space_clean_forcibly_ratio, 30);
    f->warnings = 0;
    assert_int_equal(shmq_config_set(&c, "diskSpaceCleanForciblyRatio", "60", capture_warning, f),
                     0);
    assert_int_equal(c.disk_space_clean_forcibly_ratio, 60);
    assert_int_equal(f->warnings, 0);
    assert_int_equal(shmq_config_validate(&c), 0);
}

static void test_consume_queue_size_rounded_up_to_multiple_of_20(void **state)
{
    (void)state;
    shmq_config_t c;
    shmq_config_defaults(&c);
    assert_int_equal(shmq_config_set(&c, "mappedFileSizeConsumeQueue", "1000001", NULL, NULL), 0);
    assert_int_equal(c.mapped_file_size_consume_queue, 1000020);
    assert_int_equal(shmq_config_set(&c, "mappedFileSizeConsumeQueue", "21", NULL, NULL), 0);
    assert_int_equal(c.mapped_file_size_consume_queue, 40);
    assert_int_equal(shmq_config_set(&c, "mappedFileSizeConsumeQueue", "6000000", NULL, NULL), 0);
    assert_int_equal(c.mapped_file_size_consume_queue, 6000000);
}

/* ---- validate ------------------------------------------------------------ */

static void expect_invalid(const shmq_config_t *c, const char *key)
{
    char want[128];
    assert_int_equal(shmq_config_validate(c), SHMQ_E_CONFIG);
    snprintf(want, sizeof(want), "key '%s'", key);
    assert_contains(shmq_error_detail(), want);
}

static void test_validate_refuses_inconsistent_values(void **state)
{
    (void)state;
    shmq_config_t c;

    shmq_config_defaults(&c);
    assert_int_equal(shmq_config_set(&c, "mappedFileSizeCommitLog", "1048576", NULL, NULL), 0);
    expect_invalid(&c, "maxMessageSize"); /* 4 MiB messages in 1 MiB segments */
    assert_int_equal(shmq_config_set(&c, "maxMessageSize", "65536", NULL, NULL), 0);
    assert_int_equal(shmq_config_validate(&c), 0);

    shmq_config_defaults(&c);
    assert_int_equal(shmq_config_set(&c, "timerPrecisionMs", "300", NULL, NULL), 0);
    expect_invalid(&c, "timerPrecisionMs");
    assert_int_equal(shmq_config_set(&c, "timerPrecisionMs", "250", NULL, NULL), 0);
    assert_int_equal(shmq_config_validate(&c), 0);

    shmq_config_defaults(&c);
    assert_int_equal(shmq_config_set(&c, "brokerRole", "SYNC_MASTER", NULL, NULL), 0);
    expect_invalid(&c, "haSecretFile"); /* a SYNC_MASTER needs a link to its slaves */
    assert_int_equal(shmq_config_set(&c, "haPlainLink", "true", NULL, NULL), 0);
    assert_int_equal(shmq_config_validate(&c), 0);
    /* Plain or authenticated, not both; the secret file's path is absolute. */
    assert_int_equal(shmq_config_set(&c, "haSecretFile", "ha.secret", NULL, NULL), SHMQ_E_CONFIG);
    assert_contains(shmq_error_detail(), "an absolute path");
    assert_int_equal(shmq_config_set(&c, "haSecretFile", "/etc/shmq/ha.secret", NULL, NULL), 0);
    expect_invalid(&c, "haSecretFile");
    assert_int_equal(shmq_config_set(&c, "haPlainLink", "false", NULL, NULL), 0);
    assert_int_equal(shmq_config_validate(&c), 0);
    assert_string_equal(c.ha_secret_file, "/etc/shmq/ha.secret");

    shmq_config_defaults(&c);
    assert_int_equal(shmq_config_set(&c, "brokerRole", "SLAVE", NULL, NULL), 0);
    expect_invalid(&c, "haSecretFile");
    assert_int_equal(shmq_config_set(&c, "haSecretFile", "/etc/shmq/ha.secret", NULL, NULL), 0);
    expect_invalid(&c, "brokerId");
    assert_int_equal(shmq_config_set(&c, "brokerId", "1", NULL, NULL), 0);
    expect_invalid(&c, "haMasterAddress");
    assert_int_equal(shmq_config_set(&c, "haMasterAddress", "master:10912", NULL, NULL), 0);
    assert_int_equal(shmq_config_validate(&c), 0);

    shmq_config_defaults(&c);
    assert_int_equal(shmq_config_set(&c, "haListenPort", "10911", NULL, NULL), 0);
    expect_invalid(&c, "haListenPort");

    shmq_config_defaults(&c);
    assert_int_equal(shmq_config_set(&c, "maxIndexNum", "200000000", NULL, NULL), 0);
    expect_invalid(&c, "maxIndexNum");

    shmq_config_defaults(&c);
    c.disk_max_used_space_ratio = 99; /* set directly, bypassing the clamp */
    expect_invalid(&c, "diskMaxUsedSpaceRatio");

    shmq_config_defaults(&c);
    c.mapped_file_size_consume_queue = 1001;
    expect_invalid(&c, "mappedFileSizeConsumeQueue");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_defaults_equal_rocketmq),
        T(test_sample_broker_conf_with_comments_aliases_crlf_loads),
        T(test_unknown_key_warns_and_is_not_an_error),
        T(test_rocketmq_key_without_effect_warns_and_is_accepted),
        T(test_inert_key_warns_only_off_its_default),
        T(test_line_without_separator_is_refused_naming_line),
        T(test_bad_value_in_file_names_file_line_key_and_value),
        T(test_missing_file_is_enoent),
        T(test_non_numeric_integer_refused),
        T(test_out_of_range_integer_refused),
        T(test_integer_accepts_sign_and_exact_bounds),
        T(test_bad_enum_refused),
        T(test_bad_bool_refused),
        T(test_bad_delay_level_string_refused),
        T(test_delay_levels_parse_units_and_count_limit),
        T(test_bad_strings_refused),
        T(test_disk_ratios_are_clamped_like_rocketmq),
        T(test_consume_queue_size_rounded_up_to_multiple_of_20),
        T(test_validate_refuses_inconsistent_values),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
