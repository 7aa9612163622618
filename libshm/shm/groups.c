/*
 * Consumer group membership and the division of queues (see groups.h).
 *
 * The member table (ctl.h, shmq_ctl_member_t) is written here only, by the
 * master's loop; each entry under its seq (odd while written), and
 * members_gen moved after every change so that members notice with one
 * load.  A division works on copies of the group's bitmaps and writes back
 * the entries that changed.
 */
#include "shm/groups.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmq/errors.h"

#define TICK_EVERY_MS 1000

typedef struct bits {
    uint64_t own[SHMQ_MEMBER_QWORDS];
    uint64_t own_retry;
    uint64_t release[SHMQ_MEMBER_QWORDS];
    uint64_t release_retry;
} bits_t;

/* ---- entries ------------------------------------------------------------------------------ */

static void member_begin(shmq_ctl_member_t *m)
{
    uint32_t s = atomic_load_explicit(&m->seq, memory_order_relaxed);
    atomic_store_explicit(&m->seq, (s | 1u) == s ? s + 2 : s + 1, memory_order_relaxed);
    /* Release fence: the odd seq is visible before any field changes. */
    atomic_thread_fence(memory_order_release);
}

static void member_end(shmq_ctl_member_t *m)
{
    uint32_t s = atomic_load_explicit(&m->seq, memory_order_relaxed);
    /* Release: the fields are complete before readers see an even seq. */
    atomic_store_explicit(&m->seq, s + 1, memory_order_release);
}

static void gen_bump(shmq_ctl_t *ctl)
{
    /* Release: members that see the new value see the entries written before it. */
    atomic_fetch_add_explicit(&ctl->cons->members_gen, 1, memory_order_release);
}

static bool is_clustering(const shmq_ctl_member_t *m, const char *group)
{
    return m->state == SHMQ_ENTRY_ACTIVE && !(m->flags & SHMQ_MEMBER_BROADCASTING) &&
           strcmp(m->group, group) == 0;
}

static int count_bits(const uint64_t *w, size_t n)
{
    int c = 0;
    for (size_t i = 0; i < n; i++) {
        c += __builtin_popcountll(w[i]);
    }
    return c;
}

static bool any_bits(const uint64_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (w[i] != 0) {
            return true;
        }
    }
    return false;
}

/* Queues e holds (own and own_retry), for queues_held. */
static int held_count(const shmq_ctl_member_t *e)
{
    return count_bits(e->own, SHMQ_MEMBER_QWORDS) + count_bits(&e->own_retry, 1);
}

static void retry_topic(const char *group, char *out, size_t len)
{
    snprintf(out, len, "%s%s", SHMQ_RETRY_PREFIX, group);
}

/* Readable queues of topic, at most cap (0 when the topic does not exist). */
static int32_t topic_queues(const shmq_ctl_t *ctl, const char *topic, int32_t cap)
{
    shmq_ctl_topic_t t;
    if (shmq_ctl_topic_get(ctl, topic, strlen(topic), &t) != 0 || t.read_queue_nums <= 0) {
        return 0;
    }
    return t.read_queue_nums < cap ? t.read_queue_nums : cap;
}

/* ---- the division ------------------------------------------------------------------------ */

static const shmq_ctl_cons_t *sort_cons;

static int by_client_id(const void *a, const void *b)
{
    const shmq_ctl_member_t *x = &sort_cons->members[*(const int *)a];
    const shmq_ctl_member_t *y = &sort_cons->members[*(const int *)b];
    return strcmp(x->client_id, y->client_id);
}

static void bit_set(uint64_t *w, int32_t q, bool on)
{
    if (on) {
        w[q / 64] |= 1ull << (q % 64);
    } else {
        w[q / 64] &= ~(1ull << (q % 64));
    }
}

/*
 * Divide queues [0, m) of one topic among the k members of list (bits
 * b[list[i]]; retry: their own_retry, else own), AllocateMessageQueueAveragely:
 * member i of k takes a contiguous range, the first m % k members one queue
 * more.  Queues from m up to cap are nobody's: their owners release them.
 */
static void divide_topic(bits_t *b, const int *list, int k, int32_t m, int32_t cap, bool retry)
{
    int target[SHMQ_TOPIC_QUEUES_MAX];
    for (int32_t q = 0; q < cap; q++) {
        target[q] = -1;
    }
    for (int i = 0; i < k && m > 0; i++) {
        int32_t mod = m % k;
        int32_t avg = m <= k ? 1 : (mod > 0 && i < mod ? m / k + 1 : m / k);
        int32_t start = (mod > 0 && i < mod) ? i * avg : i * avg + mod;
        int32_t range = avg < m - start ? avg : m - start;
        for (int32_t q = start; q < start + range; q++) {
            target[q] = i;
        }
    }
    for (int32_t q = 0; q < cap; q++) {
        int cur = -1;
        for (int i = 0; i < k; i++) {
            uint64_t *own = retry ? &b[list[i]].own_retry : b[list[i]].own;
            uint64_t *rel = retry ? &b[list[i]].release_retry : b[list[i]].release;
            if (!shmq_member_bit(own, q)) {
                continue;
            }
            if (cur >= 0) { /* never two owners: the later one loses it */
                bit_set(own, q, false);
                bit_set(rel, q, false);
                continue;
            }
            cur = i;
        }
        if (cur == target[q]) {
            if (cur >= 0) {
                bit_set(retry ? &b[list[cur]].release_retry : b[list[cur]].release, q, false);
            }
        } else if (cur < 0) {
            bit_set(retry ? &b[list[target[q]]].own_retry : b[list[target[q]]].own, q, true);
        } else {
            bit_set(retry ? &b[list[cur]].release_retry : b[list[cur]].release, q, true);
        }
    }
}

/* Divide group's queues again; the entries that changed are written, members_gen moved. */
static void divide(shmq_ctl_t *ctl, const char *group, int64_t now)
{
    shmq_ctl_cons_t *cons = ctl->cons;
    static bits_t b[SHMQ_CTL_MAX_MEMBERS];
    int list[SHMQ_CTL_MAX_MEMBERS], sub[SHMQ_CTL_MAX_MEMBERS];
    bool done[SHMQ_CTL_MAX_MEMBERS];
    int k = 0;
    for (int i = 0; i < SHMQ_CTL_MAX_MEMBERS; i++) {
        shmq_ctl_member_t *e = &cons->members[i];
        if (!is_clustering(e, group)) {
            continue;
        }
        list[k++] = i;
        memcpy(b[i].own, e->own, sizeof(e->own));
        b[i].own_retry = e->own_retry;
        memcpy(b[i].release, e->release, sizeof(e->release));
        b[i].release_retry = e->release_retry;
    }
    if (k == 0) {
        return;
    }
    sort_cons = cons;
    qsort(list, (size_t)k, sizeof(list[0]), by_client_id);
    /* The retry topic: every clustering member of the group subscribes to it. */
    char retry[SHMQ_TOPIC_MAX_ANY + 1];
    retry_topic(group, retry, sizeof(retry));
    divide_topic(b, list, k, topic_queues(ctl, retry, SHMQ_MEMBER_RETRY_MAX), SHMQ_MEMBER_RETRY_MAX,
                 true);
    /* Each topic among the members subscribed to it. */
    memset(done, 0, sizeof(done));
    for (int i = 0; i < k; i++) {
        if (done[i]) {
            continue;
        }
        const char *topic = cons->members[list[i]].topic;
        int ks = 0;
        for (int j = i; j < k; j++) {
            if (!done[j] && strcmp(cons->members[list[j]].topic, topic) == 0) {
                sub[ks++] = list[j];
                done[j] = true;
            }
        }
        divide_topic(b, sub, ks, topic_queues(ctl, topic, SHMQ_TOPIC_QUEUES_MAX),
                     SHMQ_TOPIC_QUEUES_MAX, false);
    }
    bool changed = false;
    for (int i = 0; i < k; i++) {
        shmq_ctl_member_t *e = &cons->members[list[i]];
        bits_t *x = &b[list[i]];
        if (memcmp(x->own, e->own, sizeof(e->own)) == 0 && x->own_retry == e->own_retry &&
            memcmp(x->release, e->release, sizeof(e->release)) == 0 &&
            x->release_retry == e->release_retry) {
            continue;
        }
        bool releasing = any_bits(x->release, SHMQ_MEMBER_QWORDS) || x->release_retry != 0;
        member_begin(e);
        memcpy(e->own, x->own, sizeof(e->own));
        e->own_retry = x->own_retry;
        memcpy(e->release, x->release, sizeof(e->release));
        e->release_retry = x->release_retry;
        e->queues_held = held_count(e);
        e->release_since_ms = !releasing ? 0 : e->release_since_ms ? e->release_since_ms : now;
        member_end(e);
        changed = true;
    }
    if (changed) {
        gen_bump(ctl);
    }
}

/* ---- membership -------------------------------------------------------------------------- */

static bool same_subscription(const shmq_ctl_member_t *a, const shmq_ctl_member_t *b)
{
    return strcmp(a->topic, b->topic) == 0 && a->sub_hash == b->sub_hash &&
           (a->flags & SHMQ_MEMBER_BROADCASTING) == (b->flags & SHMQ_MEMBER_BROADCASTING);
}

bool shmq_groups_consistent(const shmq_ctl_t *ctl, const char *group)
{
    const shmq_ctl_member_t *first = NULL;
    for (int i = 0; i < SHMQ_CTL_MAX_MEMBERS; i++) {
        const shmq_ctl_member_t *e = &ctl->cons->members[i];
        if (e->state != SHMQ_ENTRY_ACTIVE || strcmp(e->group, group) != 0) {
            continue;
        }
        if (first == NULL) {
            first = e;
        } else if (!same_subscription(first, e)) {
            return false;
        }
    }
    return true;
}

int shmq_groups_join(shmq_ctl_t *ctl, int slot, const shmq_member_join_t *j, uint64_t *id,
                     char *note, size_t len)
{
    if (note != NULL && len > 0) {
        note[0] = '\0';
    }
    if (slot < 0 || slot >= SHMQ_CTL_MAX_MEMBERS) {
        return shmq_error_set(SHMQ_E_ARG, "member slot %d outside 0..%d", slot,
                              SHMQ_CTL_MAX_MEMBERS - 1);
    }
    int rc = shmq_group_validate(j->group, strlen(j->group));
    if (rc < 0) {
        return rc;
    }
    if ((rc = shmq_topic_validate(j->topic, strlen(j->topic), SHMQ_TOPIC_MAX_ANY)) < 0) {
        return rc;
    }
    if (j->flags & ~(uint32_t)(SHMQ_MEMBER_BROADCASTING | SHMQ_MEMBER_ORDERLY)) {
        return shmq_error_set(SHMQ_E_ARG,
                              "member flags 0x%x: only 0x1 (broadcasting) and 0x2 "
                              "(orderly) are known",
                              j->flags);
    }
    shmq_ctl_member_t *e = &ctl->cons->members[slot];
    if (e->state == SHMQ_ENTRY_ACTIVE) {
        return shmq_error_set(-EBUSY, "this connection is a member of group %s already", e->group);
    }
    static uint64_t next_id;
    member_begin(e);
    memset((char *)e + sizeof(e->seq), 0, sizeof(*e) - sizeof(e->seq));
    e->id = ++next_id;
    e->pid = (int32_t)j->pid;
    e->uid = (uint32_t)j->uid;
    e->flags = j->flags;
    e->joined_ms = shmq_now_ms();
    snprintf(e->group, sizeof(e->group), "%s", j->group);
    snprintf(e->topic, sizeof(e->topic), "%s", j->topic);
    snprintf(e->sub, sizeof(e->sub), "%s", j->sub != NULL && j->sub[0] ? j->sub : "*");
    e->sub_hash = j->sub_hash;
    snprintf(e->client_id, sizeof(e->client_id), "%d@%llu", (int)j->pid, (unsigned long long)e->id);
    e->state = SHMQ_ENTRY_ACTIVE;
    member_end(e);
    *id = e->id;
    for (int i = 0; i < SHMQ_CTL_MAX_MEMBERS && note != NULL; i++) {
        const shmq_ctl_member_t *o = &ctl->cons->members[i];
        if (i == slot || o->state != SHMQ_ENTRY_ACTIVE || strcmp(o->group, j->group) != 0 ||
            same_subscription(o, e)) {
            continue;
        }
        snprintf(note, len,
                 "group %s is inconsistent: member %s subscribes %s '%s' (%s), member %s "
                 "%s '%s' (%s); each topic's queues are divided among its own subscribers",
                 j->group, e->client_id, e->topic, e->sub,
                 (e->flags & SHMQ_MEMBER_BROADCASTING) ? "broadcasting" : "clustering",
                 o->client_id, o->topic, o->sub,
                 (o->flags & SHMQ_MEMBER_BROADCASTING) ? "broadcasting" : "clustering");
        break;
    }
    gen_bump(ctl);
    divide(ctl, j->group, shmq_mono_ms());
    return 0;
}

/* members[slot] when slot is in range and a member, else NULL. */
static shmq_ctl_member_t *active_member(shmq_ctl_t *ctl, int slot)
{
    if (slot < 0 || slot >= SHMQ_CTL_MAX_MEMBERS) {
        return NULL;
    }
    shmq_ctl_member_t *e = &ctl->cons->members[slot];
    return e->state == SHMQ_ENTRY_ACTIVE ? e : NULL;
}

void shmq_groups_leave(shmq_ctl_t *ctl, int slot)
{
    shmq_ctl_member_t *e = active_member(ctl, slot);
    if (e == NULL) {
        return;
    }
    char group[SHMQ_GROUP_MAX + 1];
    snprintf(group, sizeof(group), "%s", e->group);
    member_begin(e);
    memset((char *)e + sizeof(e->seq), 0, sizeof(*e) - sizeof(e->seq));
    member_end(e);
    gen_bump(ctl);
    divide(ctl, group, shmq_mono_ms());
}

/* Which bitmaps of member e topic names: 1 its topic, 2 the group's retry topic, 0 neither. */
static int topic_kind(const shmq_ctl_member_t *e, const char *topic)
{
    if (strcmp(topic, e->topic) == 0) {
        return 1;
    }
    char retry[SHMQ_TOPIC_MAX_ANY + 1];
    retry_topic(e->group, retry, sizeof(retry));
    return strcmp(topic, retry) == 0 ? 2 : 0;
}

int shmq_groups_may_commit(const shmq_ctl_t *ctl, int slot, const char *group, const char *topic,
                           int32_t queue_id)
{
    if (slot < 0 || slot >= SHMQ_CTL_MAX_MEMBERS) {
        return 0;
    }
    const shmq_ctl_member_t *e = &ctl->cons->members[slot];
    if (!is_clustering(e, group)) {
        return 0;
    }
    int kind = topic_kind(e, topic);
    if (kind == 0) {
        return 0;
    }
    int32_t cap = kind == 1 ? SHMQ_TOPIC_QUEUES_MAX : SHMQ_MEMBER_RETRY_MAX;
    if (queue_id >= 0 && queue_id < cap &&
        shmq_member_bit(kind == 1 ? e->own : &e->own_retry, queue_id)) {
        return 0;
    }
    return shmq_error_set(SHMQ_E_NOT_OWNER,
                          "group %s: queue %s/%d is not held by this member (pid %d): the group's "
                          "queues were divided again; the new owner starts from the last commit",
                          group, topic, (int)queue_id, (int)e->pid);
}

void shmq_groups_committed(shmq_ctl_t *ctl, int slot)
{
    shmq_ctl_member_t *e = active_member(ctl, slot);
    if (e == NULL) {
        return;
    }
    member_begin(e);
    e->last_commit_ms = shmq_now_ms();
    member_end(e);
}

int shmq_groups_release(shmq_ctl_t *ctl, int slot, const char *group, const char *topic,
                        int32_t queue_id)
{
    if (slot < 0 || slot >= SHMQ_CTL_MAX_MEMBERS) {
        return shmq_error_set(SHMQ_E_ARG, "not a member");
    }
    shmq_ctl_member_t *e = &ctl->cons->members[slot];
    if (!is_clustering(e, group)) {
        return shmq_error_set(SHMQ_E_ARG,
                              "release of %s/%d: this connection is no clustering "
                              "member of group %s",
                              topic, (int)queue_id, group);
    }
    int kind = topic_kind(e, topic);
    int32_t cap = kind == 1 ? SHMQ_TOPIC_QUEUES_MAX : SHMQ_MEMBER_RETRY_MAX;
    uint64_t *own = kind == 1 ? e->own : &e->own_retry;
    uint64_t *rel = kind == 1 ? e->release : &e->release_retry;
    if (kind == 0 || queue_id < 0 || queue_id >= cap || !shmq_member_bit(rel, queue_id)) {
        return shmq_error_set(SHMQ_E_ARG,
                              "release of %s/%d: group %s did not ask this member "
                              "to release it",
                              topic, (int)queue_id, group);
    }
    member_begin(e);
    bit_set(own, queue_id, false);
    bit_set(rel, queue_id, false);
    e->queues_held--;
    if (!any_bits(e->release, SHMQ_MEMBER_QWORDS) && e->release_retry == 0) {
        e->release_since_ms = 0;
    }
    member_end(e);
    gen_bump(ctl);
    divide(ctl, group, shmq_mono_ms());
    return 0;
}

int shmq_groups_tick(shmq_ctl_t *ctl, int64_t now, char *note, size_t len)
{
    static int64_t next;
    if (now < next) {
        return 0;
    }
    next = now + TICK_EVERY_MS;
    shmq_ctl_cons_t *cons = ctl->cons;
    int taken = 0;
    /* Queues not released in time are taken. */
    for (int i = 0; i < SHMQ_CTL_MAX_MEMBERS; i++) {
        shmq_ctl_member_t *e = &cons->members[i];
        if (e->state != SHMQ_ENTRY_ACTIVE || e->release_since_ms == 0) {
            continue;
        }
        int64_t limit =
            (e->flags & SHMQ_MEMBER_ORDERLY) ? SHMQ_GROUP_LOCK_MS : SHMQ_GROUP_RELEASE_MS;
        if (now - e->release_since_ms < limit) {
            continue;
        }
        int n = count_bits(e->release, SHMQ_MEMBER_QWORDS) + count_bits(&e->release_retry, 1);
        if (taken == 0 && note != NULL) {
            snprintf(note, len,
                     "group %s: member %s (pid %d) did not release %d queue(s) within %lld ms: "
                     "taken from it; its later commits of them are refused",
                     e->group, e->client_id, (int)e->pid, n, (long long)limit);
        }
        taken += n;
        member_begin(e);
        for (int w = 0; w < SHMQ_MEMBER_QWORDS; w++) {
            e->own[w] &= ~e->release[w];
            e->release[w] = 0;
        }
        e->own_retry &= ~e->release_retry;
        e->release_retry = 0;
        e->release_since_ms = 0;
        e->queues_held = held_count(e);
        member_end(e);
        gen_bump(ctl);
    }
    /* Every group again: topics gain queues, retry topics appear. */
    for (int i = 0; i < SHMQ_CTL_MAX_MEMBERS; i++) {
        shmq_ctl_member_t *e = &cons->members[i];
        if (e->state != SHMQ_ENTRY_ACTIVE || (e->flags & SHMQ_MEMBER_BROADCASTING)) {
            continue;
        }
        bool first = true;
        for (int j = 0; j < i && first; j++) {
            first = !is_clustering(&cons->members[j], e->group);
        }
        if (first) {
            divide(ctl, e->group, now);
        }
    }
    return taken;
}
