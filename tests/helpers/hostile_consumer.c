/*
 * hostile_consumer: what a consumer may try against the shared state of a
 * running store, for tests/security/.
 *
 *   hostile_consumer commit STORE GROUP TOPIC QUEUE OFFSET
 *       Send one COMMIT_OFFSET frame to the master as it is given (no
 *       client-side check: the master is the judge).  OFFSET is a number,
 *       or "max+N" / "max-N" relative to the queue's max offset as the
 *       control block shows it.  Prints "committed" (exit 0) or
 *       "refused: TEXT" (exit 3).
 *   hostile_consumer topic STORE TOPIC QUEUES
 *       Ask the master for a topic (ENSURE_TOPIC, as a send-back does).
 *       Prints "created" (exit 0) or "refused: TEXT" (exit 3).
 *   hostile_consumer scribble STORE
 *       Attach as a consumer does (read-only) and try to write the control
 *       block and the consumer area: open them O_RDWR (refused unless this
 *       is the store's own user or root: reported, not counted), mprotect the
 *       mappings writable, store through them (in a child, which must die
 *       of SIGSEGV), and write through /proc/self/mem.  Prints one line per
 *       attempt, "refused ..." or "WROTE ...": exit 0 when every write was
 *       refused, 4 when one went through.
 *
 * Exit 1 on other errors, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/ctl.h"
#include "shm/reg.h"
#include "shmq/errors.h"

static int usage(void)
{
    fprintf(stderr, "usage: hostile_consumer commit STORE GROUP TOPIC QUEUE OFFSET|max+N|max-N\n"
                    "       hostile_consumer topic STORE TOPIC QUEUES\n"
                    "       hostile_consumer scribble STORE\n");
    return 2;
}

static int queue_max(const char *store, const char *topic, int32_t qid, int64_t *max)
{
    shmq_ctl_t ctl;
    int rc = shmq_ctl_attach(store, SHMQ_CTL_RDONLY, &ctl);
    if (rc < 0) {
        fprintf(stderr, "attach %s: %s\n", store, shmq_error_detail());
        return rc;
    }
    shmq_ctl_queue_t *q = shmq_ctl_queue_find(&ctl, topic, strlen(topic), qid);
    *max = q != NULL ? atomic_load_explicit(&q->max_offset, memory_order_acquire) : 0;
    shmq_ctl_detach(&ctl);
    return 0;
}

static int commit(char **argv)
{
    const char *store = argv[0];
    shmq_reg_msg_t req = {.type = SHMQ_REG_COMMIT_OFFSET, .queue_id = atoi(argv[3])};
    snprintf(req.group, sizeof(req.group), "%s", argv[1]);
    snprintf(req.topic, sizeof(req.topic), "%s", argv[2]);
    const char *off = argv[4];
    if (strncmp(off, "max", 3) == 0) {
        int64_t max;
        if (queue_max(store, req.topic, req.queue_id, &max) < 0) {
            return 1;
        }
        req.offset = max + strtoll(off + 3, NULL, 10);
    } else {
        req.offset = strtoll(off, NULL, 10);
    }
    char root[PATH_MAX];
    if (realpath(store, root) == NULL) {
        perror(store);
        return 1;
    }
    int fd = shmq_reg_connect(root);
    if (fd < 0) {
        printf("refused: %s\n", shmq_error_detail());
        return 3;
    }
    shmq_reg_msg_t rep;
    int rc = shmq_reg_call(fd, &req, &rep, NULL, SHMQ_REG_TIMEOUT_MS);
    close(fd);
    if (rc < 0) {
        printf("refused: %s\n", shmq_error_detail());
        return 3;
    }
    printf("committed %s@%s/%d offset %lld\n", req.topic, req.group, (int)req.queue_id,
           (long long)req.offset);
    return 0;
}

/* Store one byte at p in a child: true when the child died of SIGSEGV or SIGBUS. */
static bool store_faults(volatile uint8_t *p)
{
    pid_t pid = fork();
    if (pid == 0) {
        /* The kernel's verdict, not a sanitizer's handler turning the fault into an exit. */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        *p = (uint8_t)(*p + 1);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && (WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS);
}

static int attempt_object(const char *what, const char *name, void *map, size_t size)
{
    int wrote = 0;
    int fd = shm_open(name, O_RDWR, 0);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && (st.st_uid == geteuid() || geteuid() == 0)) {
        /* docs/security.md: a process of the store's own user (or root) is not kept out. */
        printf("same user: %s: opened %s O_RDWR (uid %ld owns it or is root)\n", what, name,
               (long)geteuid());
        close(fd);
    } else if (fd >= 0) {
        printf("WROTE %s: opened %s O_RDWR\n", what, name);
        close(fd);
        wrote = 1;
    } else {
        printf("refused %s: open %s O_RDWR: %s\n", what, name, strerror(errno));
    }
    if (mprotect(map, size, PROT_READ | PROT_WRITE) == 0) {
        printf("WROTE? %s: mprotect PROT_WRITE allowed\n", what);
        wrote = 1;
    } else {
        printf("refused %s: mprotect PROT_WRITE: %s\n", what, strerror(errno));
    }
    /* Every page's first byte, and the last byte. */
    int through = 0;
    for (size_t off = 0; off < size; off += 4096 * 64) {
        if (!store_faults((uint8_t *)map + off)) {
            through++;
        }
    }
    if (!store_faults((uint8_t *)map + size - 1)) {
        through++;
    }
    if (through > 0) {
        printf("WROTE %s: %d stores through the mapping did not fault\n", what, through);
        wrote = 1;
    } else {
        printf("refused %s: every store through the mapping faulted\n", what);
    }
    int mem = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
    if (mem >= 0) {
        uint8_t b = 0;
        ssize_t n = pwrite(mem, &b, 1, (off_t)(uintptr_t)map);
        if (n == 1) {
            printf("WROTE %s: /proc/self/mem write went through\n", what);
            wrote = 1;
        } else {
            printf("refused %s: /proc/self/mem write: %s\n", what, strerror(errno));
        }
        close(mem);
    }
    return wrote;
}

static int scribble(const char *store)
{
    shmq_ctl_t ctl;
    int rc = shmq_ctl_attach(store, SHMQ_CTL_RDONLY, &ctl);
    if (rc < 0) {
        fprintf(stderr, "attach %s: %s\n", store, shmq_error_detail());
        return 1;
    }
    char cname[96];
    snprintf(cname, sizeof(cname), "%s.cons", ctl.name);
    int wrote = attempt_object("control block", ctl.name, ctl.blk, ctl.blk_size);
    wrote |= attempt_object("consumer area", cname, ctl.cons, ctl.cons_size);
    rc = shmq_ctl_offset_set(&ctl, "HostileGroup", "TopicB", 0, 1);
    if (rc == 0) {
        printf("WROTE consumer area: shmq_ctl_offset_set went through\n");
        wrote = 1;
    } else {
        printf("refused consumer area: shmq_ctl_offset_set: %s\n", shmq_error_detail());
    }
    shmq_ctl_detach(&ctl);
    return wrote ? 4 : 0;
}

static int topic(const char *store, const char *name, int32_t queues)
{
    char root[PATH_MAX];
    if (realpath(store, root) == NULL) {
        perror(store);
        return 1;
    }
    if (shmq_reg_request_topic(root, name, queues) < 0) {
        printf("refused: %s\n", shmq_error_detail());
        return 3;
    }
    printf("created %s\n", name);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "topic") == 0) {
        return topic(argv[2], argv[3], atoi(argv[4]));
    }
    if (argc == 7 && strcmp(argv[1], "commit") == 0) {
        return commit(argv + 2);
    }
    if (argc == 3 && strcmp(argv[1], "scribble") == 0) {
        return scribble(argv[2]);
    }
    return usage();
}
