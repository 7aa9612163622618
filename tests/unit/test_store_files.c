/*
 * Unit tests for libshm/format/store_files.c and libshm/format/json_meta.c: the store lock,
 * the abort marker, the checkpoint, atomic file replacement, and the JSON
 * metadata files in RocketMQ's dialect.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmp_tree.h"
#include "format/json_meta.h"
#include "shmq/errors.h"
#include "format/store_files.h"

/* ---- fixtures ------------------------------------------------------------ */

static int setup_dir(void **state)
{
    char *dir = tmp_tree_make("/tmp/shmq-test-store-files-XXXXXX");
    if (dir == NULL) {
        return -1;
    }
    *state = dir;
    return 0;
}

static int teardown_dir(void **state)
{
    return tmp_tree_teardown(state);
}

static void path_of(char *out, size_t len, const char *dir, const char *name)
{
    int n = snprintf(out, len, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < len);
}

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[4096];
    path_of(path, sizeof(path), dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    write_file(dir, name, text, strlen(text));
}

/* Whole file as a NUL-terminated string (test-owned, freed by the caller). */
static char *read_text(const char *dir, const char *name)
{
    char path[4096], *data;
    size_t len;
    path_of(path, sizeof(path), dir, name);
    int rc = shmq_file_read_all(path, 1 << 20, &data, &len);
    if (rc < 0) {
        return NULL;
    }
    return data;
}

static bool exists(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    path_of(path, sizeof(path), dir, name);
    return stat(path, &st) == 0;
}

static void make_config_dir(const char *root)
{
    char path[4096];
    path_of(path, sizeof(path), root, "config");
    assert_int_equal(mkdir(path, 0755), 0);
}

/* ---- lock ---------------------------------------------------------------- */

static void test_lock_second_open_in_same_process_is_refused_with_holder_pid(void **state)
{
    const char *root = *state;
    int fd1, fd2;
    char want[64];

    assert_int_equal(shmq_store_lock(root, &fd1), 0);
    assert_true(fd1 >= 0);
    /* OFD locks conflict between two open file descriptions of one process. */
    assert_int_equal(shmq_store_lock(root, &fd2), SHMQ_E_LOCKED);
    assert_int_equal(fd2, -1);
    snprintf(want, sizeof(want), "locked by pid %ld (started ", (long)getpid());
    assert_non_null(strstr(shmq_error_detail(), want));
    assert_non_null(strstr(shmq_error_detail(), root));

    shmq_store_unlock(fd1);
    assert_int_equal(shmq_store_lock(root, &fd2), 0);
    shmq_store_unlock(fd2);
}

static void test_lock_creates_root_and_names_holder_in_file(void **state)
{
    char root[4096], want[64];
    int fd;

    path_of(root, sizeof(root), *state, "a/b/store");
    assert_int_equal(shmq_store_lock(root, &fd), 0);
    char *text = read_text(root, "lock");
    assert_non_null(text);
    snprintf(want, sizeof(want), "lock pid=%ld start=", (long)getpid());
    assert_true(strncmp(text, want, strlen(want)) == 0);
    free(text);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    shmq_store_unlock(fd);
}

static void test_lock_stale_file_of_dead_holder_does_not_block(void **state)
{
    const char *root = *state;
    int fd;

    write_text(root, "lock", "lock pid=999999 start=1\n");
    char path[4096];
    path_of(path, sizeof(path), root, "lock");
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(shmq_store_lock(root, &fd), 0);
    char *text = read_text(root, "lock");
    char want[64];
    snprintf(want, sizeof(want), "lock pid=%ld ", (long)getpid());
    assert_true(strncmp(text, want, strlen(want)) == 0);
    free(text);
    shmq_store_unlock(fd);
}

static void test_lock_file_readable_by_others_is_refused(void **state)
{
    const char *root = *state;
    int fd;

    write_text(root, "lock", "lock pid=999999 start=1\n");
    char path[4096];
    path_of(path, sizeof(path), root, "lock");
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(shmq_store_lock(root, &fd), -EPERM);
    assert_non_null(strstr(shmq_error_detail(), path));
    assert_non_null(strstr(shmq_error_detail(), "0644"));
}

/* Clients no longer lock it: a lock file the group may open (older versions) is refused too. */
static void test_lock_file_open_to_the_group_is_refused(void **state)
{
    const char *root = *state;
    int fd;

    write_text(root, "lock", "lock pid=999999 start=1\n");
    char path[4096];
    path_of(path, sizeof(path), root, "lock");
    assert_int_equal(chmod(path, 0660), 0);
    assert_int_equal(shmq_store_lock(root, &fd), -EPERM);
    assert_non_null(strstr(shmq_error_detail(), "0660"));
    assert_non_null(strstr(shmq_error_detail(), "chmod 0600"));
}

static void test_lock_file_created_without_access_for_others(void **state)
{
    const char *root = *state;
    int fd;
    char path[4096];
    struct stat st;

    mode_t old = umask(0);
    assert_int_equal(shmq_store_lock(root, &fd), 0);
    umask(old);
    path_of(path, sizeof(path), root, "lock");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    shmq_store_unlock(fd);
}

static void test_symlinks_in_store_are_refused_and_targets_untouched(void **state)
{
    const char *root = *state;
    char outside[4096], link[4096];
    int fd;

    path_of(outside, sizeof(outside), root, "outside");
    write_text(root, "outside", "precious");
    path_of(link, sizeof(link), root, "lock");
    assert_int_equal(symlink(outside, link), 0);
    assert_int_equal(shmq_store_lock(root, &fd), -ELOOP);
    assert_non_null(strstr(shmq_error_detail(), link));
    unlink(link);

    path_of(link, sizeof(link), root, "abort");
    assert_int_equal(symlink(outside, link), 0);
    assert_true(shmq_abort_exists(root));
    assert_int_equal(shmq_abort_create(root), -ELOOP);
    unlink(link);

    path_of(link, sizeof(link), root, "checkpoint");
    assert_int_equal(symlink(outside, link), 0);
    shmq_checkpoint_t cp = {.physic_msg_ts = 1};
    assert_int_equal(shmq_checkpoint_write(root, &cp), -ELOOP);
    assert_int_equal(shmq_checkpoint_read(root, &cp), -ELOOP);
    unlink(link);

    /* A planted temp link is removed (the name only), the file written beside it. */
    char file[4096];
    path_of(file, sizeof(file), root, "meta.json");
    path_of(link, sizeof(link), root, "meta.json.tmp");
    assert_int_equal(symlink(outside, link), 0);
    assert_int_equal(shmq_file_write_atomic(file, "{}", 2), 0);
    char *text = read_text(root, "outside");
    assert_string_equal(text, "precious");
    free(text);
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0007, 0);
}

static void test_fifo_checkpoint_is_refused_without_blocking(void **state)
{
    const char *root = *state;
    char path[4096];
    shmq_checkpoint_t cp;

    path_of(path, sizeof(path), root, "checkpoint");
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(shmq_checkpoint_read(root, &cp), -EINVAL);
    assert_non_null(strstr(shmq_error_detail(), "FIFO"));
    assert_int_equal(shmq_checkpoint_write(root, &cp), -EINVAL);
}

static void test_lock_held_by_child_refused_until_child_killed(void **state)
{
    const char *root = *state;
    int pipefd[2], fd;
    char c = 0, want[64];

    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        int cfd;
        char r = shmq_store_lock(root, &cfd) == 0 ? 'L' : 'F';
        if (write(pipefd[1], &r, 1) != 1) {
            _exit(1);
        }
        for (;;) {
            pause();
        }
    }
    close(pipefd[1]);
    assert_int_equal(read(pipefd[0], &c, 1), 1);
    close(pipefd[0]);
    assert_int_equal(c, 'L');

    assert_int_equal(shmq_store_lock(root, &fd), SHMQ_E_LOCKED);
    snprintf(want, sizeof(want), "locked by pid %ld ", (long)pid);
    assert_non_null(strstr(shmq_error_detail(), want));

    int status;
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    /* The kernel dropped the dead holder's lock; the file still names it. */
    assert_int_equal(shmq_store_lock(root, &fd), 0);
    shmq_store_unlock(fd);
}

/* ---- abort --------------------------------------------------------------- */

static void test_abort_create_exists_remove(void **state)
{
    const char *root = *state;
    char want[32];

    assert_false(shmq_abort_exists(root));
    assert_int_equal(shmq_abort_create(root), 0);
    assert_true(shmq_abort_exists(root));
    char *text = read_text(root, "abort");
    snprintf(want, sizeof(want), "%ld", (long)getpid());
    assert_string_equal(text, want);
    free(text);
    assert_int_equal(shmq_abort_remove(root), 0);
    assert_false(shmq_abort_exists(root));
    assert_int_equal(shmq_abort_remove(root), 0); /* missing is fine */
}

/* ---- checkpoint ---------------------------------------------------------- */

static void test_checkpoint_round_trip_is_big_endian_at_rocketmq_offsets(void **state)
{
    const char *root = *state;
    shmq_checkpoint_t cp =
                          {
                              .physic_msg_ts = 0x0102030405060708LL,
                              .logics_msg_ts = 0x1112131415161718LL,
                              .index_msg_ts = 0x2122232425262728LL,
                              .master_flushed = 0x3132333435363738LL,
                              .confirm_phys = -2,
                          },
                      back;

    assert_int_equal(shmq_checkpoint_write(root, &cp), 0);
    char path[4096], *raw;
    size_t len;
    path_of(path, sizeof(path), root, "checkpoint");
    assert_int_equal(shmq_file_read_all(path, 8192, &raw, &len), 0);
    assert_int_equal(len, SHMQ_CHECKPOINT_SIZE);
    const uint8_t *b = (const uint8_t *)raw;
    for (int f = 0; f < 4; f++) {
        for (int i = 0; i < 8; i++) {
            assert_int_equal(b[f * 8 + i], (f << 4 | (i + 1)));
        }
    }
    for (int i = 32; i < 39; i++) {
        assert_int_equal(b[i], 0xff);
    }
    assert_int_equal(b[39], 0xfe);
    for (size_t i = 40; i < len; i++) {
        assert_int_equal(b[i], 0);
    }
    free(raw);
    assert_false(exists(root, "checkpoint.tmp"));

    assert_int_equal(shmq_checkpoint_read(root, &back), 0);
    assert_int_equal(back.physic_msg_ts, cp.physic_msg_ts);
    assert_int_equal(back.logics_msg_ts, cp.logics_msg_ts);
    assert_int_equal(back.index_msg_ts, cp.index_msg_ts);
    assert_int_equal(back.master_flushed, cp.master_flushed);
    assert_int_equal(back.confirm_phys, cp.confirm_phys);
    assert_false(back.crc_marker);

    /* Second write goes in place. */
    cp.physic_msg_ts = 1700000000123LL;
    assert_int_equal(shmq_checkpoint_write(root, &cp), 0);
    assert_int_equal(shmq_checkpoint_read(root, &back), 0);
    assert_int_equal(back.physic_msg_ts, 1700000000123LL);
    assert_int_equal(back.confirm_phys, -2);
}

/* shmq's record-CRC marker: bytes 64-87, believed only while physicMsgTimestamp is its copy. */
static void test_checkpoint_crc_marker_round_trip_and_foreign_rewrite(void **state)
{
    const char *root = *state;
    shmq_checkpoint_t cp = {.physic_msg_ts = 1700000000000LL, .confirm_phys = 4096}, back;
    cp.crc_marker = true;
    cp.crc_tail_from = 0x0102030405060708LL;
    assert_int_equal(shmq_checkpoint_write(root, &cp), 0);
    assert_int_equal(shmq_checkpoint_read(root, &back), 0);
    assert_true(back.crc_marker);
    assert_int_equal(back.crc_tail_from, cp.crc_tail_from);

    char path[4096], *raw;
    size_t len;
    path_of(path, sizeof(path), root, "checkpoint");
    assert_int_equal(shmq_file_read_all(path, 8192, &raw, &len), 0);
    assert_memory_equal(raw + 64, "SHMQCRC1", 8);
    assert_int_equal((uint8_t)raw[72], 0x01);
    assert_int_equal((uint8_t)raw[79], 0x08);
    for (size_t i = 88; i < len; i++) {
        assert_int_equal(raw[i], 0);
    }
    free(raw);

    /* Another program (RocketMQ) moves physicMsgTimestamp and leaves bytes 64-87. */
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 7, SEEK_SET), 0);
    fputc(0x7f, fp);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(shmq_checkpoint_read(root, &back), 0);
    assert_false(back.crc_marker);

    /* Written without a marker: none is read back. */
    cp.crc_marker = false;
    assert_int_equal(shmq_checkpoint_write(root, &cp), 0);
    assert_int_equal(shmq_checkpoint_read(root, &back), 0);
    assert_false(back.crc_marker);
}

static void test_checkpoint_missing_reads_zeros(void **state)
{
    shmq_checkpoint_t cp;
    memset(&cp, 0x5a, sizeof(cp));
    assert_int_equal(shmq_checkpoint_read(*state, &cp), 0);
    assert_int_equal(cp.physic_msg_ts, 0);
    assert_int_equal(cp.logics_msg_ts, 0);
    assert_int_equal(cp.index_msg_ts, 0);
    assert_int_equal(cp.master_flushed, 0);
    assert_int_equal(cp.confirm_phys, 0);
}

static void test_checkpoint_wrong_size_is_corrupt(void **state)
{
    const char *root = *state;
    static char buf[SHMQ_CHECKPOINT_SIZE + 1];
    shmq_checkpoint_t cp;
    const size_t sizes[] = {0, 24, 40, SHMQ_CHECKPOINT_SIZE - 1, SHMQ_CHECKPOINT_SIZE + 1};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        write_file(root, "checkpoint", buf, sizes[i]);
        assert_int_equal(shmq_checkpoint_read(root, &cp), SHMQ_E_CORRUPT);
        assert_non_null(strstr(shmq_error_detail(), "checkpoint"));
    }
}

static void test_checkpoint_min_ts_is_min_minus_3000_floored(void **state)
{
    (void)state;
    shmq_checkpoint_t cp = {.physic_msg_ts = 10000, .logics_msg_ts = 8000};
    assert_int_equal(shmq_checkpoint_min_ts(&cp), 5000);
    cp.logics_msg_ts = 20000;
    assert_int_equal(shmq_checkpoint_min_ts(&cp), 7000);
    cp.physic_msg_ts = 1000;
    assert_int_equal(shmq_checkpoint_min_ts(&cp), 0);
}

/* ---- atomic write -------------------------------------------------------- */

static void test_atomic_write_keeps_previous_version_as_bak(void **state)
{
    const char *root = *state;
    char path[4096];
    path_of(path, sizeof(path), root, "f.json");

    assert_int_equal(shmq_file_write_atomic(path, "one", 3), 0);
    assert_false(exists(root, "f.json.bak"));
    assert_int_equal(shmq_file_write_atomic(path, "two", 3), 0);
    char *t = read_text(root, "f.json"), *b = read_text(root, "f.json.bak");
    assert_string_equal(t, "two");
    assert_string_equal(b, "one");
    free(t);
    free(b);
    assert_int_equal(shmq_file_write_atomic(path, "three", 5), 0);
    t = read_text(root, "f.json");
    b = read_text(root, "f.json.bak");
    assert_string_equal(t, "three");
    assert_string_equal(b, "two");
    free(t);
    free(b);
    assert_false(exists(root, "f.json.tmp"));
    assert_false(exists(root, "f.json.bak.tmp"));
}

typedef struct opener {
    const char *path;
    atomic_bool stop;
    long opens, missing;
} opener_t;

static void *open_in_a_loop(void *arg)
{
    opener_t *o = arg;
    while (!atomic_load(&o->stop)) {
        int fd = open(o->path, O_RDONLY);
        if (fd < 0) {
            o->missing++;
        } else {
            close(fd);
        }
        o->opens++;
    }
    return NULL;
}

/* A reader at any moment finds the file: the old version or the new, never none. */
static void test_atomic_write_never_leaves_the_name_missing(void **state)
{
    const char *root = *state;
    char path[4096];
    path_of(path, sizeof(path), root, "g.json");
    assert_int_equal(shmq_file_write_atomic(path, "0", 1), 0);
    opener_t o = {.path = path};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, open_in_a_loop, &o), 0);
    for (int i = 0; i < 300; i++) {
        char v[16];
        int n = snprintf(v, sizeof(v), "%d", i);
        assert_int_equal(shmq_file_write_atomic(path, v, (size_t)n), 0);
    }
    atomic_store(&o.stop, true);
    pthread_join(t, NULL);
    assert_true(o.opens > 0);
    assert_int_equal(o.missing, 0);
    char *b = read_text(root, "g.json.bak");
    assert_string_equal(b, "298");
    free(b);
}

static void test_read_all_bounds_length_and_reports_missing(void **state)
{
    const char *root = *state;
    char path[4096], *data;
    size_t len;

    path_of(path, sizeof(path), root, "x");
    assert_int_equal(shmq_file_read_all(path, 16, &data, &len), -ENOENT);
    write_text(root, "x", "0123456789abcdefg");
    assert_int_equal(shmq_file_read_all(path, 16, &data, &len), -EFBIG);
    assert_null(data);
    assert_int_equal(shmq_file_read_all(path, 17, &data, &len), 0);
    assert_int_equal(len, 17);
    assert_string_equal(data, "0123456789abcdefg");
    free(data);
}

/* ---- JSON dialect -------------------------------------------------------- */

static void check_quote(const char *in, const char *want)
{
    char *out = shmq_json_quote_int_keys(in, strlen(in));
    assert_non_null(out);
    assert_string_equal(out, want);
    free(out);
}

static void test_quote_int_keys_quotes_bare_keys_only(void **state)
{
    (void)state;
    check_quote("{0:5,1:7}", "{\"0\":5,\"1\":7}");
    check_quote("{\"offsetTable\":{\"T@G\":{0:5, 12 :7}}}",
                "{\"offsetTable\":{\"T@G\":{\"0\":5, \"12\" :7}}}");
    check_quote("{\n\t-1:3,\n\t2:\t[0,1,{3:4}]\n}", "{\n\t\"-1\":3,\n\t\"2\":\t[0,1,{\"3\":4}]\n}");
    check_quote("{\"a\":1,\"b\":[0,1],\"c\":-2}", "{\"a\":1,\"b\":[0,1],\"c\":-2}");
    check_quote("{\"0\":1}", "{\"0\":1}");
    check_quote("[1,2]", "[1,2]");
}

static void test_quote_int_keys_leaves_strings_and_escapes_untouched(void **state)
{
    (void)state;
    check_quote("{\"a{0:1}\":\"x{1:2}\"}", "{\"a{0:1}\":\"x{1:2}\"}");
    check_quote("{\"a\\\"{0:1}\":1, 2:3}", "{\"a\\\"{0:1}\":1, \"2\":3}");
    check_quote("{\"a\":\"\\\\\",0:1}", "{\"a\":\"\\\\\",\"0\":1}");
    check_quote("{\"a\":\"\\\",0:1\"}", "{\"a\":\"\\\",0:1\"}");
}

/* ---- offsets ------------------------------------------------------------- */

static void test_consumer_offsets_load_bare_integer_keys(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    int64_t off;

    make_config_dir(root);
    /* As fastjson pretty-prints it: tabs, bare integer keys. */
    write_text(root, "config/consumerOffset.json",
               "{\n\t\"offsetTable\":{\n\t\t\"T@G\":{0:5,1:7\n\t\t},\n"
               "\t\t\"%RETRY%G@G\":{0:0\n\t\t}\n\t}\n}");
    assert_int_equal(shmq_consumer_offsets_load(root, &t), 0);
    assert_int_equal(t.count, 3);
    assert_int_equal(shmq_offset_table_get(&t, "T@G", 0, &off), 0);
    assert_int_equal(off, 5);
    assert_int_equal(shmq_offset_table_get(&t, "T@G", 1, &off), 0);
    assert_int_equal(off, 7);
    assert_int_equal(shmq_offset_table_get(&t, "%RETRY%G@G", 0, &off), 0);
    assert_int_equal(off, 0);
    assert_int_equal(shmq_offset_table_get(&t, "T@G", 2, &off), SHMQ_E_NOT_FOUND);
    shmq_offset_table_free(&t);
}

static void test_consumer_offsets_load_quoted_keys(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    int64_t off;

    make_config_dir(root);
    write_text(root, "config/consumerOffset.json", "{\"offsetTable\":{\"T@G\":{\"0\":5,\"1\":7}}}");
    assert_int_equal(shmq_consumer_offsets_load(root, &t), 0);
    assert_int_equal(t.count, 2);
    assert_int_equal(shmq_offset_table_get(&t, "T@G", 1, &off), 0);
    assert_int_equal(off, 7);
    shmq_offset_table_free(&t);
}

static void test_json_load_falls_back_to_bak_when_main_is_garbage(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    int64_t off;

    make_config_dir(root);
    write_text(root, "config/consumerOffset.json", "{\"offsetTable\":{\"T@G\":{0:");
    write_text(root, "config/consumerOffset.json.bak", "{\"offsetTable\":{\"T@G\":{0:3}}}");
    assert_int_equal(shmq_consumer_offsets_load(root, &t), 0);
    assert_int_equal(shmq_offset_table_get(&t, "T@G", 0, &off), 0);
    assert_int_equal(off, 3);
    shmq_offset_table_free(&t);

    /* An empty main file falls back too. */
    write_text(root, "config/consumerOffset.json", "");
    assert_int_equal(shmq_consumer_offsets_load(root, &t), 0);
    assert_int_equal(t.count, 1);
    shmq_offset_table_free(&t);
}

static void test_json_load_both_missing_is_empty_table(void **state)
{
    shmq_offset_table_t t;
    shmq_topic_table_t tt;
    shmq_group_table_t gt;
    assert_int_equal(shmq_consumer_offsets_load(*state, &t), 0);
    assert_int_equal(t.count, 0);
    assert_int_equal(shmq_delay_offsets_load(*state, &t), 0);
    assert_int_equal(t.count, 0);
    assert_int_equal(shmq_topics_load(*state, &tt), 0);
    assert_int_equal(tt.count, 0);
    assert_int_equal(shmq_groups_load(*state, &gt), 0);
    assert_int_equal(gt.count, 0);
}

static void test_json_load_both_bad_fails_naming_files(void **state)
{
    const char *root = *state;
    shmq_topic_table_t t;

    make_config_dir(root);
    write_text(root, "config/topics.json", "not json");
    assert_int_equal(shmq_topics_load(root, &t), SHMQ_E_JSON);
    assert_non_null(strstr(shmq_error_detail(), "topics.json"));
    write_text(root, "config/topics.json.bak", "[1,2]");
    assert_int_equal(shmq_topics_load(root, &t), SHMQ_E_JSON);
    assert_non_null(strstr(shmq_error_detail(), "topics.json.bak"));
    assert_int_equal(t.count, 0);
}

/* Warnings of the last load (json_meta.h's sink), one per line. */
static char warned[8192];

static void capture_warning(void *arg, enum shmq_meta_level level, const char *msg)
{
    (void)arg;
    (void)level;
    size_t n = strlen(warned);
    snprintf(warned + n, sizeof(warned) - n, "%s\n", msg);
}

static void expect_warned(const char *needle)
{
    if (strstr(warned, needle) == NULL) {
        fail_msg("warnings \"%s\" lack \"%s\"", warned, needle);
    }
}

/* A bad entry is dropped (no .bak to take it from) with a warning naming file and entry. */
static void expect_offsets_dropped(const char *root, const char *text, const char *needle)
{
    shmq_offset_table_t t;
    int64_t off;
    warned[0] = '\0';
    write_text(root, "config/consumerOffset.json", text);
    assert_int_equal(shmq_consumer_offsets_load(root, &t), 0);
    expect_warned("consumerOffset.json");
    expect_warned(needle);
    expect_warned("dropped");
    assert_int_equal(shmq_offset_table_get(&t, "T@G", 0, &off), SHMQ_E_NOT_FOUND);
    shmq_offset_table_free(&t);
}

static void test_consumer_offsets_bad_entry_is_dropped_with_a_warning(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    make_config_dir(root);
    shmq_meta_set_warn(capture_warning, NULL);
    expect_offsets_dropped(root, "{\"offsetTable\":{\"T@G\":{0:-1}}}", "topic T, queue 0");
    expect_offsets_dropped(root, "{\"offsetTable\":{\"T@G\":{0:\"5\"}}}", "group G");
    expect_offsets_dropped(root, "{\"offsetTable\":{\"T@G\":{\"x\":5}}}", "\"x\"");
    expect_offsets_dropped(root, "{\"offsetTable\":{\"T@G\":{65536:5}}}", "65536");
    expect_offsets_dropped(root, "{\"offsetTable\":{\"A@B\":{0:1},\"T@G\":[1]}}", "T@G");
    expect_offsets_dropped(root, "{\"offsetTable\":{\"\":{0:1}}}", "entry");
    /* No table at all: the file is damaged, and with no .bak the load is refused. */
    write_text(root, "config/consumerOffset.json", "{\"offsetTable\":[]}");
    assert_int_equal(shmq_consumer_offsets_load(root, &t), SHMQ_E_JSON);
    assert_non_null(strstr(shmq_error_detail(), "offsetTable"));
    assert_int_equal(t.count, 0);
    shmq_meta_set_warn(NULL, NULL);
}

static void test_consumer_offsets_save_load_round_trip(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t = {0}, back;
    int64_t off;

    for (int q = 0; q < 12; q++) {
        assert_int_equal(shmq_offset_table_set(&t, "TopicTest@G1", q, 1000 + q), 0);
    }
    assert_int_equal(shmq_offset_table_set(&t, "%RETRY%G1@G1", 0, 4), 0);
    assert_int_equal(shmq_offset_table_set(&t, "TopicTest@G1", 3, 1LL << 40), 0); /* replace */
    assert_int_equal(t.count, 13);
    assert_int_equal(shmq_consumer_offsets_save(root, &t), 0);

    char *text = read_text(root, "config/consumerOffset.json");
    assert_non_null(strstr(text, "\"offsetTable\""));
    assert_non_null(strstr(text, "\"TopicTest@G1\""));
    free(text);

    assert_int_equal(shmq_consumer_offsets_load(root, &back), 0);
    assert_int_equal(back.count, t.count);
    for (size_t i = 0; i < t.count; i++) {
        assert_int_equal(
            shmq_offset_table_get(&back, t.entries[i].key, t.entries[i].queue_id, &off), 0);
        assert_int_equal(off, t.entries[i].offset);
    }
    /* A second save keeps the first as .bak, which loads too. */
    assert_int_equal(shmq_offset_table_set(&t, "TopicTest@G1", 0, 1), 0);
    assert_int_equal(shmq_consumer_offsets_save(root, &t), 0);
    assert_true(exists(root, "config/consumerOffset.json.bak"));
    shmq_offset_table_free(&back);
    shmq_offset_table_free(&t);
}

static void test_delay_offsets_load_bare_keys_and_round_trip(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t, back;
    int64_t off;

    make_config_dir(root);
    write_text(root, "config/delayOffset.json",
               "{\n\t\"dataVersion\":{\"counter\":7,\"stateVersion\":0,\"timestamp\":1},\n"
               "\t\"offsetTable\":{1:5,2:0,18:99\n\t}\n}");
    assert_int_equal(shmq_delay_offsets_load(root, &t), 0);
    assert_int_equal(t.count, 3);
    assert_int_equal(t.data_version_counter, 7);
    assert_int_equal(shmq_offset_table_get(&t, "", 18, &off), 0);
    assert_int_equal(off, 99);

    assert_int_equal(shmq_delay_offsets_save(root, &t), 0);
    char *text = read_text(root, "config/delayOffset.json");
    assert_non_null(strstr(text, "\"dataVersion\""));
    assert_non_null(strstr(text, "\"18\": 99"));
    free(text);
    assert_int_equal(shmq_delay_offsets_load(root, &back), 0);
    assert_int_equal(back.count, 3);
    assert_int_equal(back.data_version_counter, 7);
    assert_int_equal(shmq_offset_table_get(&back, "", 1, &off), 0);
    assert_int_equal(off, 5);
    shmq_offset_table_free(&back);
    shmq_offset_table_free(&t);

    /* Level 0 does not exist: dropped with a warning (no .bak to restore the others from). */
    char bak[4096];
    path_of(bak, sizeof(bak), root, "config/delayOffset.json.bak");
    assert_int_equal(unlink(bak), 0);
    warned[0] = '\0';
    shmq_meta_set_warn(capture_warning, NULL);
    write_text(root, "config/delayOffset.json", "{\"offsetTable\":{0:5}}");
    assert_int_equal(shmq_delay_offsets_load(root, &t), 0);
    assert_int_equal(t.count, 0);
    expect_warned("delayOffset.json: \"0\" is not a delay level");
    shmq_meta_set_warn(NULL, NULL);
    shmq_offset_table_free(&t);
}

/* ---- topics -------------------------------------------------------------- */

static void assert_topic_equal(const shmq_topic_config_t *x, const shmq_topic_config_t *y)
{
    assert_string_equal(x->name, y->name);
    assert_int_equal(x->read_queue_nums, y->read_queue_nums);
    assert_int_equal(x->write_queue_nums, y->write_queue_nums);
    assert_int_equal(x->perm, y->perm);
    assert_int_equal(x->order, y->order);
    assert_int_equal(x->topic_sys_flag, y->topic_sys_flag);
    assert_int_equal(x->multi_tag, y->multi_tag);
    assert_string_equal(x->attributes, y->attributes);
}

static void test_topics_save_load_round_trip(void **state)
{
    const char *root = *state;
    shmq_topic_table_t t = {0}, back;
    shmq_topic_config_t a = {
        .name = "TopicTest", .read_queue_nums = 4, .write_queue_nums = 4, .perm = 6};
    shmq_topic_config_t b = {.name = "SCHEDULE_TOPIC_XXXX",
                             .read_queue_nums = 18,
                             .write_queue_nums = 18,
                             .perm = 2,
                             .order = true,
                             .topic_sys_flag = 1,
                             .multi_tag = true,
                             .attributes = "{\"message.type\":\"FIFO\"}"};

    assert_int_equal(shmq_topic_table_put(&t, &a), 0);
    assert_int_equal(shmq_topic_table_put(&t, &b), 0);
    assert_int_equal(shmq_topics_save(root, &t), 0);

    char *text = read_text(root, "config/topics.json");
    const char *fields[] = {"\"dataVersion\"",
                            "\"counter\": 2",
                            "\"stateVersion\": 0",
                            "\"timestamp\"",
                            "\"topicConfigTable\"",
                            "\"attributes\": {}",
                            "\"order\": false",
                            "\"perm\": 6",
                            "\"readQueueNums\": 4",
                            "\"topicFilterType\": \"SINGLE_TAG\"",
                            "\"topicName\": \"TopicTest\"",
                            "\"topicSysFlag\": 0",
                            "\"writeQueueNums\": 4",
                            "\"MULTI_TAG\"",
                            "\"message.type\": \"FIFO\""};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (strstr(text, fields[i]) == NULL) {
            fail_msg("topics.json lacks %s:\n%s", fields[i], text);
        }
    }
    free(text);

    assert_int_equal(shmq_topics_load(root, &back), 0);
    assert_int_equal(back.count, 2);
    assert_int_equal(back.data_version_counter, 2);
    const shmq_topic_config_t *ra = shmq_topic_table_get(&back, "TopicTest");
    const shmq_topic_config_t *rb = shmq_topic_table_get(&back, "SCHEDULE_TOPIC_XXXX");
    assert_non_null(ra);
    assert_non_null(rb);
    assert_topic_equal(ra, &a);
    assert_topic_equal(rb, &b);

    assert_int_equal(shmq_topic_table_remove(&back, "TopicTest"), 0);
    assert_int_equal(shmq_topic_table_remove(&back, "TopicTest"), SHMQ_E_NOT_FOUND);
    assert_null(shmq_topic_table_get(&back, "TopicTest"));
    assert_int_equal(back.count, 1);
    shmq_topic_table_free(&back);
    shmq_topic_table_free(&t);
}

static void test_topics_load_rocketmq_file_with_defaults_for_absent_fields(void **state)
{
    const char *root = *state;
    shmq_topic_table_t t;

    make_config_dir(root);
    write_text(root, "config/topics.json",
               "{\n\t\"dataVersion\":{\n\t\t\"counter\":3,\n\t\t\"timestamp\":1700000000000\n\t},\n"
               "\t\"topicConfigTable\":{\n"
               "\t\t\"TBW102\":{\n\t\t\t\"order\":false,\n\t\t\t\"perm\":7,\n"
               "\t\t\t\"readQueueNums\":8,\n\t\t\t\"topicFilterType\":\"SINGLE_TAG\",\n"
               "\t\t\t\"topicName\":\"TBW102\",\n\t\t\t\"topicSysFlag\":0,\n"
               "\t\t\t\"writeQueueNums\":8\n\t\t},\n"
               "\t\t\"Bare\":{\"topicName\":\"Bare\"}\n\t}\n}\n");
    assert_int_equal(shmq_topics_load(root, &t), 0);
    assert_int_equal(t.count, 2);
    assert_int_equal(t.data_version_counter, 3);
    const shmq_topic_config_t *tc = shmq_topic_table_get(&t, "TBW102");
    assert_int_equal(tc->perm, 7);
    assert_int_equal(tc->read_queue_nums, 8);
    tc = shmq_topic_table_get(&t, "Bare");
    assert_int_equal(tc->read_queue_nums, 16);
    assert_int_equal(tc->write_queue_nums, 16);
    assert_int_equal(tc->perm, 6);
    assert_false(tc->multi_tag);
    assert_string_equal(tc->attributes, "");
    shmq_topic_table_free(&t);
}

static void expect_topic_dropped(const char *root, const char *entry, const char *needle)
{
    char text[1024];
    shmq_topic_table_t t;
    snprintf(text, sizeof(text), "{\"topicConfigTable\":{\"Good\":{},\"T\":%s}}", entry);
    write_text(root, "config/topics.json", text);
    warned[0] = '\0';
    assert_int_equal(shmq_topics_load(root, &t), 0);
    assert_int_equal(t.count, 1);
    assert_non_null(shmq_topic_table_get(&t, "Good"));
    if (strstr(warned, "topics.json: topic \"T\"") == NULL || strstr(warned, needle) == NULL ||
        strstr(warned, "dropped") == NULL) {
        fail_msg("warnings \"%s\" lack the file, the topic or \"%s\"", warned, needle);
    }
    shmq_topic_table_free(&t);
}

static void test_topics_bad_entry_is_dropped_with_a_warning(void **state)
{
    const char *root = *state;
    make_config_dir(root);
    shmq_meta_set_warn(capture_warning, NULL);
    expect_topic_dropped(root, "{\"readQueueNums\":0}", "readQueueNums");
    expect_topic_dropped(root, "{\"writeQueueNums\":65536}", "writeQueueNums");
    expect_topic_dropped(root, "{\"perm\":\"6\"}", "perm");
    expect_topic_dropped(root, "{\"order\":1}", "order");
    expect_topic_dropped(root, "{\"topicFilterType\":\"X\"}", "topicFilterType");
    expect_topic_dropped(root, "{\"topicName\":\"Other\"}", "topicName");
    expect_topic_dropped(root, "{\"attributes\":[]}", "attributes");
    expect_topic_dropped(root, "7", "object");
    shmq_meta_set_warn(NULL, NULL);
}

/* ---- groups -------------------------------------------------------------- */

static void test_group_defaults_follow_rocketmq(void **state)
{
    (void)state;
    shmq_group_config_t g;
    shmq_group_config_init(&g, "G1");
    assert_string_equal(g.name, "G1");
    assert_true(g.consume_enable);
    assert_true(g.consume_broadcast_enable);
    assert_true(g.consume_from_min_enable);
    assert_false(g.consume_message_orderly);
    assert_int_equal(g.retry_max_times, 16);
    assert_int_equal(g.retry_queue_nums, 1);
    assert_int_equal(g.broker_id, 0);
    assert_int_equal(g.which_broker_when_consume_slowly, 1);
}

static void test_groups_save_load_round_trip(void **state)
{
    const char *root = *state;
    shmq_group_table_t t = {0}, back;
    shmq_group_config_t a, b;

    shmq_group_config_init(&a, "G1");
    shmq_group_config_init(&b, "G2");
    b.consume_enable = false;
    b.consume_message_orderly = true;
    b.retry_max_times = 3;
    b.retry_queue_nums = 2;
    b.broker_id = 1;
    b.which_broker_when_consume_slowly = 0;
    assert_int_equal(shmq_group_table_put(&t, &a), 0);
    assert_int_equal(shmq_group_table_put(&t, &b), 0);
    assert_int_equal(shmq_group_table_put(&t, &b), 0); /* replace */
    assert_int_equal(t.count, 2);
    assert_int_equal(shmq_groups_save(root, &t), 0);

    char *text = read_text(root, "config/subscriptionGroup.json");
    const char *fields[] = {"\"dataVersion\"",
                            "\"forbiddenTable\": {}",
                            "\"subscriptionGroupTable\"",
                            "\"groupName\": \"G2\"",
                            "\"consumeEnable\": false",
                            "\"retryMaxTimes\": 3",
                            "\"whichBrokerWhenConsumeSlowly\": 0",
                            "\"consumeBroadcastEnable\""};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (strstr(text, fields[i]) == NULL) {
            fail_msg("subscriptionGroup.json lacks %s:\n%s", fields[i], text);
        }
    }
    free(text);

    assert_int_equal(shmq_groups_load(root, &back), 0);
    assert_int_equal(back.count, 2);
    assert_memory_equal(shmq_group_table_get(&back, "G1"), &a, sizeof(a));
    assert_memory_equal(shmq_group_table_get(&back, "G2"), &b, sizeof(b));
    assert_null(shmq_group_table_get(&back, "G3"));
    shmq_group_table_free(&back);
    shmq_group_table_free(&t);
}

static void test_groups_bad_entry_is_dropped_with_a_warning(void **state)
{
    const char *root = *state;
    shmq_group_table_t t;
    make_config_dir(root);
    shmq_meta_set_warn(capture_warning, NULL);
    warned[0] = '\0';
    write_text(root, "config/subscriptionGroup.json",
               "{\"subscriptionGroupTable\":{\"G1\":{\"consumeEnable\":\"yes\"},\"G2\":{}}}");
    assert_int_equal(shmq_groups_load(root, &t), 0);
    assert_int_equal(t.count, 1);
    assert_non_null(shmq_group_table_get(&t, "G2"));
    expect_warned("subscriptionGroup.json: group \"G1\": field \"consumeEnable\"");
    shmq_group_table_free(&t);
    warned[0] = '\0';
    write_text(root, "config/subscriptionGroup.json",
               "{\"subscriptionGroupTable\":{\"G1\":{\"retryQueueNums\":-1}}}");
    assert_int_equal(shmq_groups_load(root, &t), 0);
    assert_int_equal(t.count, 0);
    expect_warned("retryQueueNums");
    shmq_meta_set_warn(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)
        T(test_lock_second_open_in_same_process_is_refused_with_holder_pid),
        T(test_lock_creates_root_and_names_holder_in_file),
        T(test_lock_stale_file_of_dead_holder_does_not_block),
        T(test_lock_file_readable_by_others_is_refused),
        T(test_lock_file_open_to_the_group_is_refused),
        T(test_lock_file_created_without_access_for_others),
        T(test_symlinks_in_store_are_refused_and_targets_untouched),
        T(test_fifo_checkpoint_is_refused_without_blocking),
        T(test_lock_held_by_child_refused_until_child_killed),
        T(test_abort_create_exists_remove),
        T(test_checkpoint_round_trip_is_big_endian_at_rocketmq_offsets),
        T(test_checkpoint_crc_marker_round_trip_and_foreign_rewrite),
        T(test_checkpoint_missing_reads_zeros),
        T(test_checkpoint_wrong_size_is_corrupt),
        T(test_checkpoint_min_ts_is_min_minus_3000_floored),
        T(test_atomic_write_keeps_previous_version_as_bak),
        T(test_atomic_write_never_leaves_the_name_missing),
        T(test_read_all_bounds_length_and_reports_missing),
        T(test_quote_int_keys_quotes_bare_keys_only),
        T(test_quote_int_keys_leaves_strings_and_escapes_untouched),
        T(test_consumer_offsets_load_bare_integer_keys),
        T(test_consumer_offsets_load_quoted_keys),
        T(test_json_load_falls_back_to_bak_when_main_is_garbage),
        T(test_json_load_both_missing_is_empty_table),
        T(test_json_load_both_bad_fails_naming_files),
        T(test_consumer_offsets_bad_entry_is_dropped_with_a_warning),
        T(test_consumer_offsets_save_load_round_trip),
        T(test_delay_offsets_load_bare_keys_and_round_trip),
        T(test_topics_save_load_round_trip),
        T(test_topics_load_rocketmq_file_with_defaults_for_absent_fields),
        T(test_topics_bad_entry_is_dropped_with_a_warning),
        T(test_group_defaults_follow_rocketmq),
        T(test_groups_save_load_round_trip),
        T(test_groups_bad_entry_is_dropped_with_a_warning),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
