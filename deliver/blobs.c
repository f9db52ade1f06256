/*
 * blobs — where vault blob files go: their names, their directories
 * (blobs/XX/) and a small stock of spare containers (see blobs.h).
 *
 * Data flow: deliver_prepare names and creates a blob here (or takes a
 * spare), writes it, and deliver_commit makes it durable; a long-lived
 * daemon keeps the spare stock filled from a thread of its own
 * (deliver_spares_fill) and asks for more when it runs low.
 *
 * Directories: items prepared in the same short window share one
 * directory: the committer moves the prefix on for every batch it takes,
 * so a batch's blobs usually sit in one or two directories and need one
 * directory fsync each, not one per item. The rest of a blob name stays
 * random (18 symbols, about 89 bits), so names stay unguessable and unique.
 * A directory is used for a committed row only once its own entry in
 * blobs/ is known durable: the first batch of this process that uses it
 * fsyncs blobs/ too (a directory left by an earlier process may never have
 * been synced if that process died in between).
 *
 * Spare containers: creating a file costs the delivery an inode allocation
 * (on ext4 ~0.1 ms, much more shortly after many files were deleted) and
 * the commit a directory fsync. A spare is an empty blob file made ahead
 * of time whose directory was fsynced after it was made, so the delivery
 * that takes it only opens it by name and the commit fsyncs the file
 * alone. Spares are invisible to readers (no row names them) and are
 * crash leftovers like any unreferenced blob: deliver_cleanup removes them
 * after DELIVER_ORPHAN_GRACE. So a spare is used only while well inside
 * that grace (BLOB_SPARE_MAX_AGE), opened by name under the delivery's
 * shared cleanup lock: one that cleanup removed meanwhile is simply not
 * found, and the delivery creates its blob the usual way. A daemon that
 * stops removes the spares it did not use.
 *
 * Trusts: the data directory (ours); nothing here reads a message.
 */
#include "deliver/blobs.h"
#include "deliver/deliver.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Spare containers kept ready, and the stock below which a fill is wanted
 * (a fill makes them in one directory, with one directory fsync). */
#define BLOB_SPARES_MAX 64
#define BLOB_SPARES_LOW (BLOB_SPARES_MAX / 2)
/* A spare older than this is not used: cleanup may remove it soon. */
#define BLOB_SPARE_MAX_AGE (DELIVER_ORPHAN_GRACE / 2)

static pthread_mutex_t blob_prefix_lock = PTHREAD_MUTEX_INITIALIZER;
static char blob_prefix[BLOB_PREFIX_LEN + 1];
/* Blob directories this process knows to exist with a durable entry in
 * blobs/, for the blobs/ named in durable_for (a reload to another data
 * directory starts over); both under blob_prefix_lock. */
static bool blob_dir_durable[BLOB_DIRS];
static char *durable_for;

/* Caller holds blob_prefix_lock. */
static bool *durable_table(const char *blobs_dir)
{
    if (durable_for == NULL || strcmp(durable_for, blobs_dir) != 0) {
        free(durable_for);
        durable_for = xstrdup(blobs_dir);
        memset(blob_dir_durable, 0, sizeof(blob_dir_durable));
    }
    return blob_dir_durable;
}

bool blob_dir_known(const char *blobs_dir, size_t di)
{
    pthread_mutex_lock(&blob_prefix_lock);
    bool known = durable_table(blobs_dir)[di];
    pthread_mutex_unlock(&blob_prefix_lock);
    return known;
}

void blob_dir_mark(const char *blobs_dir, size_t di)
{
    pthread_mutex_lock(&blob_prefix_lock);
    durable_table(blobs_dir)[di] = true;
    pthread_mutex_unlock(&blob_prefix_lock);
}

void deliver_blob_prefix_next(void)
{
    pthread_mutex_lock(&blob_prefix_lock);
    rand_string(blob_prefix, BLOB_PREFIX_LEN, RAND_ALPHA_LOWER);
    pthread_mutex_unlock(&blob_prefix_lock);
}

void blob_id_new(char out[RAND_ID_LEN + 1])
{
    rand_id(out);
    pthread_mutex_lock(&blob_prefix_lock);
    if (blob_prefix[0] == '\0')
        rand_string(blob_prefix, BLOB_PREFIX_LEN, RAND_ALPHA_LOWER);
    memcpy(out, blob_prefix, BLOB_PREFIX_LEN);
    pthread_mutex_unlock(&blob_prefix_lock);
}

size_t blob_dir_index(const char *blob)
{
    const char *a = strchr(RAND_ALPHA_LOWER, blob[0]);
    const char *b = strchr(RAND_ALPHA_LOWER, blob[1]);
    if (a == NULL || b == NULL || blob[0] == '\0' || blob[1] == '\0')
        msg_panic("blob_dir_index: blob id outside the alphabet");
    return (size_t)(a - RAND_ALPHA_LOWER) * BLOB_ALPHA_N + (size_t)(b - RAND_ALPHA_LOWER);
}

int blob_dirs_prepare(const char *blobs_dir, char **err)
{
    char name[BLOB_PREFIX_LEN + 1] = {0};
    for (size_t a = 0; a < BLOB_ALPHA_N; a++) {
        for (size_t b = 0; b < BLOB_ALPHA_N; b++) {
            name[0] = RAND_ALPHA_LOWER[a];
            name[1] = RAND_ALPHA_LOWER[b];
            char *dir = xasprintf("%s/%s", blobs_dir, name);
            int r = mkdir(dir, 0700);
            int e = errno;
            free(dir);
            if (r < 0 && e != EEXIST) {
                *err = xasprintf("mkdir %s/%s: %s", blobs_dir, name, strerror(e));
                return -1;
            }
        }
    }
    if (fsync_dir(blobs_dir) < 0) {
        *err = xasprintf("fsync of %s: %s", blobs_dir, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < BLOB_DIRS; i++)
        blob_dir_mark(blobs_dir, i);
    return 0;
}

/* A blob's directory (blobs/XX) and path (blobs/XX/BLOB), malloc'd. */
static void blob_path(const char *blobs_dir, const char *blob, char **dir, char **path)
{
    *dir = xasprintf("%s/%.*s", blobs_dir, BLOB_PREFIX_LEN, blob);
    *path = xasprintf("%s/%s", *dir, blob);
}

int blob_create(const char *blobs_dir, const char *blob, char **dir, char **path)
{
    char *dp, *pp;
    blob_path(blobs_dir, blob, &dp, &pp);
    if (!blob_dir_known(blobs_dir, blob_dir_index(blob)) && mkdir(dp, 0700) < 0 &&
        errno != EEXIST) {
        int e = errno;
        free(pp);
        free(dp);
        errno = e;
        return -1;
    }
    int fd = open(pp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        free(pp);
        free(dp);
        errno = e;
        return -1;
    }
    *dir = dp;
    *path = pp;
    return fd;
}

/* ---- spare containers ---- */

struct spare {
    char blob[RAND_ID_LEN + 1];
    time_t made;
};

/* The stock (a ring, oldest first) and the blobs/ it is in; under
 * spares_lock. */
static pthread_mutex_t spares_lock = PTHREAD_MUTEX_INITIALIZER;
static struct spare spares[BLOB_SPARES_MAX];
static size_t spares_head, spares_n;
static char *spares_dir;
/* A fill failed (logged once until one succeeds again). */
static bool spares_failing;

/* Removes spares taken out of the stock (not under spares_lock). */
static void spares_unlink(const char *blobs_dir, const struct spare *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *dir, *path;
        blob_path(blobs_dir, v[i].blob, &dir, &path);
        (void)unlink(path);
        free(dir);
        free(path);
    }
}

/* Empties the stock into out[] (BLOB_SPARES_MAX); returns its blobs/
 * (the caller frees it) and sets *n. Caller holds spares_lock. */
static char *spares_take_all(struct spare *out, size_t *n)
{
    for (size_t i = 0; i < spares_n; i++)
        out[i] = spares[(spares_head + i) % BLOB_SPARES_MAX];
    *n = spares_n;
    spares_head = spares_n = 0;
    char *dir = spares_dir;
    spares_dir = NULL;
    return dir;
}

bool blob_spares_wanted(const char *blobs_dir)
{
    pthread_mutex_lock(&spares_lock);
    bool want =
        spares_dir == NULL || strcmp(spares_dir, blobs_dir) != 0 || spares_n < BLOB_SPARES_LOW;
    pthread_mutex_unlock(&spares_lock);
    return want;
}

/* Empties the stock; removes the files too when unlink (not when cleanup
 * took them already). */
static void spares_retire(bool unlink_them)
{
    struct spare v[BLOB_SPARES_MAX];
    size_t n;
    pthread_mutex_lock(&spares_lock);
    char *dir = spares_take_all(v, &n);
    pthread_mutex_unlock(&spares_lock);
    if (dir && unlink_them)
        spares_unlink(dir, v, n);
    free(dir);
}

int blob_spare_take(const char *blobs_dir, char blob[RAND_ID_LEN + 1], char **dir, char **path)
{
    struct spare s;
    pthread_mutex_lock(&spares_lock);
    bool have = spares_n > 0 && spares_dir && strcmp(spares_dir, blobs_dir) == 0;
    if (have) {
        s = spares[spares_head]; /* the oldest */
        spares_head = (spares_head + 1) % BLOB_SPARES_MAX;
        spares_n--;
    }
    pthread_mutex_unlock(&spares_lock);
    if (!have)
        return -1;
    blob_path(blobs_dir, s.blob, dir, path);
    if (time(NULL) - s.made >= BLOB_SPARE_MAX_AGE) {
        /* The stock sat unused for half of cleanup's grace (an idle
         * server): it goes, and the commit asks for a new one. */
        (void)unlink(*path);
        spares_retire(true);
    } else {
        int fd = open(*path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0) {
            memcpy(blob, s.blob, sizeof(s.blob));
            return fd;
        }
        if (fd >= 0)
            close(fd);
        /* Removed (vault cleanup), or not what we made: the others are
         * as old, so the stock goes (what is left of it is cleanup's). */
        msg_info("deliver: spare container %s gone; making a new stock", s.blob);
        spares_retire(false);
    }
    free(*dir);
    free(*path);
    *dir = *path = NULL;
    return -1;
}

void deliver_spares_drop(void)
{
    spares_retire(true);
}

int blob_spares_fill(const char *blobs_dir)
{
    struct spare old[BLOB_SPARES_MAX];
    size_t nold = 0;
    pthread_mutex_lock(&spares_lock);
    char *olddir = NULL;
    if (spares_dir && strcmp(spares_dir, blobs_dir) != 0) /* a reload moved the data */
        olddir = spares_take_all(old, &nold);
    size_t want = BLOB_SPARES_MAX - spares_n;
    pthread_mutex_unlock(&spares_lock);
    if (olddir)
        spares_unlink(olddir, old, nold);
    free(olddir);
    if (want == 0)
        return 0;

    /* One directory for the whole fill: one directory fsync. */
    struct spare made[BLOB_SPARES_MAX];
    char prefix[BLOB_PREFIX_LEN + 1]; /* rand_string ends it with a NUL */
    rand_string(prefix, BLOB_PREFIX_LEN, RAND_ALPHA_LOWER);
    size_t n = 0;
    int e = 0;
    time_t now = time(NULL);
    for (; n < want; n++) {
        rand_id(made[n].blob);
        memcpy(made[n].blob, prefix, BLOB_PREFIX_LEN);
        made[n].made = now;
        char *dir, *path;
        int fd = blob_create(blobs_dir, made[n].blob, &dir, &path);
        if (fd < 0) {
            e = errno;
            break;
        }
        close(fd);
        free(dir);
        free(path);
    }
    if (n > 0) {
        size_t di = blob_dir_index(made[0].blob);
        bool top = !blob_dir_known(blobs_dir, di);
        char *dir, *path;
        blob_path(blobs_dir, made[0].blob, &dir, &path);
        if (fsync_dir(dir) < 0 || (top && fsync_dir(blobs_dir) < 0)) {
            e = errno;
            spares_unlink(blobs_dir, made, n);
            n = 0;
        } else if (top) {
            blob_dir_mark(blobs_dir, di);
        }
        free(dir);
        free(path);
    }

    pthread_mutex_lock(&spares_lock);
    if (spares_dir == NULL)
        spares_dir = xstrdup(blobs_dir);
    bool ours = strcmp(spares_dir, blobs_dir) == 0;
    size_t kept = 0;
    for (; ours && kept < n && spares_n < BLOB_SPARES_MAX; kept++, spares_n++)
        spares[(spares_head + spares_n) % BLOB_SPARES_MAX] = made[kept];
    bool report = e != 0 && !spares_failing;
    spares_failing = e != 0;
    pthread_mutex_unlock(&spares_lock);
    spares_unlink(blobs_dir, made + kept, n - kept);
    if (report)
        msg_warn("deliver: cannot make spare containers in %s: %s (deliveries create their "
                 "own)",
                 blobs_dir, strerror(e));
    return e ? -1 : (int)kept;
}
