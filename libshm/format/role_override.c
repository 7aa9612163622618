/*
 * <root>/roleOverride (role_override.h).
 */
#include "format/role_override.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/store_files.h"
#include "shmq/errors.h"

const char *shmq_broker_role_name(enum shmq_broker_role role)
{
    switch (role) {
    case SHMQ_SYNC_MASTER:
        return "SYNC_MASTER";
    case SHMQ_SLAVE:
        return "SLAVE";
    default:
        return "ASYNC_MASTER";
    }
}

static void path_of(const char *root, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", root, SHMQ_ROLE_OVERRIDE_FILE);
}

/* One line "key=value" (trimmed) of the file, applied to cfg. */
static int apply_line(shmq_config_t *cfg, const char *path, int lineno, char *line)
{
    while (*line == ' ' || *line == '\t') {
        line++;
    }
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r')) {
        line[--n] = '\0';
    }
    if (n == 0 || line[0] == '#') {
        return 0;
    }
    char *eq = strchr(line, '=');
    if (eq == NULL) {
        return shmq_error_set(SHMQ_E_CONFIG, "%s:%d: expected key=value", path, lineno);
    }
    *eq = '\0';
    if (strcmp(line, "brokerRole") != 0 && strcmp(line, "haMasterAddress") != 0) {
        return shmq_error_set(SHMQ_E_CONFIG,
                              "%s:%d: key %s (only brokerRole and haMasterAddress may be "
                              "overridden)",
                              path, lineno, line);
    }
    int rc = shmq_config_set(cfg, line, eq + 1, NULL, NULL);
    if (rc < 0) {
        return shmq_error_wrap(rc, "%s:%d", path, lineno);
    }
    return 0;
}

int shmq_role_override_apply(const char *root, shmq_config_t *cfg, bool *present)
{
    char path[PATH_MAX];
    path_of(root, path, sizeof(path));
    *present = false;
    char *text = NULL;
    size_t len = 0;
    int rc = shmq_file_read_all(path, SHMQ_ROLE_OVERRIDE_MAX, &text, &len);
    if (rc == -ENOENT) {
        return 0;
    }
    if (rc < 0) {
        return shmq_error_wrap(rc, "reading %s", path);
    }
    if (memchr(text, '\0', len) != NULL) {
        free(text);
        return shmq_error_set(SHMQ_E_CONFIG, "%s: not text", path);
    }
    *present = true;
    int lineno = 0;
    char *save = NULL;
    rc = 0;
    for (char *line = strtok_r(text, "\n", &save); line != NULL && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        rc = apply_line(cfg, path, lineno, line);
    }
    free(text);
    /* In controller mode the controller assigns ids: brokerId 0 stays. */
    if (rc == 0 && cfg->broker_role == SHMQ_SLAVE && cfg->broker_id <= 0 &&
        !cfg->enable_controller_mode) {
        cfg->broker_id = 1; /* a master's broker.conf (brokerId 0) made a slave: RocketMQ's 1 */
    }
    return rc;
}

int shmq_role_override_save(const char *root, enum shmq_broker_role role, const char *master)
{
    char path[PATH_MAX];
    path_of(root, path, sizeof(path));
    char text[SHMQ_ROLE_OVERRIDE_MAX];
    int n = snprintf(text, sizeof(text),
                     "# written by shmqctl role: overrides broker.conf's brokerRole\n"
                     "brokerRole=%s\n",
                     shmq_broker_role_name(role));
    if (role == SHMQ_SLAVE && master != NULL && master[0]) {
        n += snprintf(text + n, sizeof(text) - (size_t)n, "haMasterAddress=%s\n", master);
    }
    if (n <= 0 || (size_t)n >= sizeof(text)) {
        return shmq_error_set(SHMQ_E_ARG, "%s: master address too long", path);
    }
    int rc = shmq_file_write_atomic(path, text, (size_t)n);
    if (rc < 0) {
        return shmq_error_wrap(rc, "writing %s", path);
    }
    return 0;
}

int shmq_role_override_clear(const char *root)
{
    char path[PATH_MAX];
    path_of(root, path, sizeof(path));
    if (unlink(path) < 0 && errno != ENOENT) {
        return shmq_error_set(-errno, "removing %s: %s", path, strerror(errno));
    }
    char bak[PATH_MAX + 8];
    snprintf(bak, sizeof(bak), "%s.bak", path);
    unlink(bak);
    return 0;
}
