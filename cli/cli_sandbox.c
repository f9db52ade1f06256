/*
 * cli_sandbox — confines `sealpost serve` after the privilege drop: with
 * Landlock (Linux 5.13+), the process and every child it forks may create,
 * write, truncate, rename or remove files only beneath [server] data_dir
 * (and write to /dev/null). Everything else it can still read, as the
 * unprivileged user's permissions allow; sockets are unaffected (SMTP, HTTP
 * and the relay host are reached through descriptors and connect, not
 * paths). A setuid drop alone would leave /tmp, /var/tmp and /dev/shm
 * writable to a compromised session thread; this closes them.
 *
 * Data flow: cli_serve calls serve_confine once, after privileges_drop and
 * before any service thread starts, so every thread inherits the domain.
 *
 * Trust: none needed; a kernel without Landlock gets a warning and runs
 * unconfined (the privilege drop still holds).
 */
#include "cli/cli.h"
#include "lib/log.h"
#include "policy/config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Debian 12's headers describe Landlock ABI 2; ABI 3 (Linux 6.2) added
 * truncate, with this value (include/uapi/linux/landlock.h). */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif

/* Write-type accesses of Landlock ABI 1, then those added by ABI 2 and 3. */
#define SANDBOX_FS_WRITE_V1                                                                        \
    (LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |                               \
     LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR | \
     LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |   \
     LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM)
#define SANDBOX_FS_REFER_V2 LANDLOCK_ACCESS_FS_REFER
#define SANDBOX_FS_TRUNCATE_V3 LANDLOCK_ACCESS_FS_TRUNCATE

static int add_path(int ruleset, const char *path, uint64_t access)
{
    struct landlock_path_beneath_attr pb = {.allowed_access = access};
    pb.parent_fd = open(path, O_PATH | O_CLOEXEC);
    if (pb.parent_fd < 0)
        return -1;
    long r = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
    int e = errno;
    close(pb.parent_fd);
    errno = e;
    return r < 0 ? -1 : 0;
}

int serve_confine(const struct config *cfg)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 1) {
        msg_warn("-: landlock not available (%s): file writes are not confined to %s",
                 strerror(errno), scrub(cfg->data_dir));
        return 0;
    }
    uint64_t handled = SANDBOX_FS_WRITE_V1;
    if (abi >= 2)
        handled |= SANDBOX_FS_REFER_V2;
    if (abi >= 3)
        handled |= SANDBOX_FS_TRUNCATE_V3;
    struct landlock_ruleset_attr ra = {.handled_access_fs = handled};
    int rs = (int)syscall(SYS_landlock_create_ruleset, &ra, sizeof(ra), 0);
    if (rs < 0) {
        msg_error("-: landlock ruleset: %s", strerror(errno));
        return -1;
    }
    /* /dev/null: a file rule may carry only file rights. */
    uint64_t file_rights = LANDLOCK_ACCESS_FS_WRITE_FILE | (abi >= 3 ? SANDBOX_FS_TRUNCATE_V3 : 0);
    int r = 0;
    if (add_path(rs, cfg->data_dir, handled) < 0) {
        msg_error("-: landlock rule for %s: %s", scrub(cfg->data_dir), strerror(errno));
        r = -1;
    } else if (add_path(rs, "/dev/null", file_rights) < 0) {
        msg_error("-: landlock rule for /dev/null: %s", strerror(errno));
        r = -1;
    } else if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
               syscall(SYS_landlock_restrict_self, rs, 0) != 0) {
        msg_error("-: landlock restrict: %s", strerror(errno));
        r = -1;
    }
    close(rs);
    if (r == 0)
        msg_info("-: file writes confined to %s (landlock abi %ld)", scrub(cfg->data_dir), abi);
    return r;
}
