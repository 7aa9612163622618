/*
 * Removing a unit test's temporary directory tree (files, links and
 * directories, never following a link out of it).
 */
#ifndef SHMQ_TEST_TMP_TREE_H
#define SHMQ_TEST_TMP_TREE_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int tmp_tree_entry_remove(const char *path, const struct stat *sb, int flag,
                                        struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Remove path and everything under it: 0, or -1 (errno set) when something stayed. */
static inline int tmp_tree_remove(const char *path)
{
    return nftw(path, tmp_tree_entry_remove, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new directory from a mkdtemp() template ("/tmp/shmq-test-x-XXXXXX"), malloc'd: free it
 * with tmp_tree_teardown(); NULL when it cannot be made. */
static inline char *tmp_tree_make(const char *tmpl)
{
    char *dir = strdup(tmpl);
    if (dir != NULL && mkdtemp(dir) == NULL) {
        free(dir);
        dir = NULL;
    }
    return dir;
}

/* A cmocka teardown for a *state made by tmp_tree_make(): the tree removed, the name freed. */
static inline int tmp_tree_teardown(void **state)
{
    char *dir = *state;
    tmp_tree_remove(dir);
    free(dir);
    return 0;
}

#endif
