/*
 * shmq error codes.
 *
 * Every shmq library function returns 0 (or a non-negative count/size) on
 * success and a negative value on failure: either a negative errno
 * (-ENOENT, -ENOSPC, ...) or one of the SHMQ_E_* codes below, which live in
 * their own range well below any errno.  shmq_strerror() names both kinds.
 *
 * Library code never prints.  Where a failure has a useful context (a file
 * name, an offset, the value that was expected) it records it with
 * shmq_error_set(); the caller may show it with shmq_error_detail().  The
 * detail is per thread and only meaningful right after a failing call.
 */
#ifndef SHMQ_ERRORS_H
#define SHMQ_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

enum shmq_error {
    SHMQ_E_BASE = -10000,
    SHMQ_E_CORRUPT = -10001,     /* data on disk is inconsistent */
    SHMQ_E_VERSION = -10002,     /* unknown layout or format version */
    SHMQ_E_TOO_BIG = -10003,     /* body larger than maxMessageSize */
    SHMQ_E_MAGIC = -10004,       /* record magic is neither V1, V2 nor blank */
    SHMQ_E_SIZE = -10005,        /* TOTALSIZE out of bounds or not matching fields */
    SHMQ_E_BODY_CRC = -10006,    /* BODYCRC does not match the body */
    SHMQ_E_RECORD_CRC = -10007,  /* __CRC32# property does not match the record */
    SHMQ_E_PHYS_OFFSET = -10008, /* PHYSICALOFFSET differs from the record's position */
    SHMQ_E_TRUNCATED = -10009,   /* fewer bytes available than the record needs */
    SHMQ_E_TOPIC = -10010,       /* topic name empty, too long or with bad characters */
    SHMQ_E_PROPS = -10011,       /* properties over 32767 bytes or malformed */
    SHMQ_E_CONFIG = -10012,      /* bad configuration value */
    SHMQ_E_LOCKED = -10013,      /* store is locked by another process */
    SHMQ_E_FENCED = -10014,      /* a flush failed; the store takes no writes until recovery */
    SHMQ_E_NOT_FOUND = -10015,   /* no such message, queue or offset */
    SHMQ_E_RANGE = -10016,       /* offset or index outside the valid range */
    SHMQ_E_JSON = -10017,        /* malformed JSON metadata file */
    SHMQ_E_SEGMENT = -10018,     /* segment file of the wrong size or misplaced */
    SHMQ_E_ARG = -10019,         /* invalid argument */
    SHMQ_E_MSGID = -10020,       /* malformed message id */
    SHMQ_E_END = -10021,         /* end of the log or queue reached */
    SHMQ_E_DISK_FULL = -10022,   /* disk usage above diskSpaceWarningLevelRatio: no new messages */
    SHMQ_E_NOT_OWNER = -10023,   /* the queue is another member's (the group was divided again) */
    SHMQ_E_NOT_MASTER = -10024,  /* controller mode: no lease from the group as the set's master */
    SHMQ_E_LAST = -10025
};

/* Human-readable text for an error code (negative errno or SHMQ_E_*). Never NULL. */
const char *shmq_strerror(int err);

/*
 * Record a context string for the current thread's last error (printf
 * format).  Returns err so that callers can write
 *     return shmq_error_set(SHMQ_E_CORRUPT, "%s: bad magic at %lld", path, off);
 * An argument may be shmq_error_detail() itself (the earlier detail, quoted).
 */
int shmq_error_set(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Like shmq_error_set(), but keeps the detail already recorded (or the text
 * of err when there is none) after the new context: "<new>: <old>".
 */
int shmq_error_wrap(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The context recorded by the last shmq_error_set() in this thread, or "". */
const char *shmq_error_detail(void);

/* Forget the recorded context. */
void shmq_error_clear(void);

#ifdef __cplusplus
}
#endif

#endif
