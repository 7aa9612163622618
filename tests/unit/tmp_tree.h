/*
 * Removing a unit test's temporary directory tree (files, links and
 * directories, never following a link out of it).
 */
#ifndef SHMQ_TEST_TMP_TREE_H
#define SHMQ_TEST_TMP_TREE_H

#include <ftw.h>
#include <stdio.h>

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

#endif
