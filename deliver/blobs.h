/*
 * blobs — names and directories of vault blob files, and spare containers
 * (internal to deliver/; the daemon-facing calls are in deliver.h).
 */
#ifndef SEALPOST_DELIVER_BLOBS_H
#define SEALPOST_DELIVER_BLOBS_H
#include "lib/rand.h"

#include <stdbool.h>
#include <stddef.h>

/* A blob lives in blobs/XX/, XX = the first BLOB_PREFIX_LEN characters of
 * its name. */
#define BLOB_PREFIX_LEN 2
#define BLOB_ALPHA_N (sizeof(RAND_ALPHA_LOWER) - 1)
#define BLOB_DIRS (BLOB_ALPHA_N * BLOB_ALPHA_N)

/* A new blob name in the current batch's directory. */
void blob_id_new(char out[RAND_ID_LEN + 1]);
/* Index of a blob's directory (0 .. BLOB_DIRS-1). */
size_t blob_dir_index(const char *blob);
/* Whether this process knows directory di of blobs_dir to exist with a
 * durable entry in blobs/, and marking it so. */
bool blob_dir_known(const char *blobs_dir, size_t di);
void blob_dir_mark(const char *blobs_dir, size_t di);

/* Creates every blob directory that is missing and makes blobs/ durable
 * (deliver_blob_dirs_prepare). 0, or -1 with *err. */
int blob_dirs_prepare(const char *blobs_dir, char **err);

/*
 * Creates blob file `blob` (empty, mode 0600, O_EXCL) in its directory
 * under blobs_dir, making the directory if this process does not know it.
 * Returns the descriptor (write-only) and the malloc'd directory and path,
 * or -1 with errno (nothing to free; the caller says what failed: the
 * blob's path is its directory and name under blobs_dir).
 */
int blob_create(const char *blobs_dir, const char *blob, char **dir, char **path);

/* The spare stock of blobs_dir (deliver_spares_*): whether a fill is
 * wanted, and a fill (the number made, or -1 when one could not be made:
 * logged once until a fill succeeds again). */
bool blob_spares_wanted(const char *blobs_dir);
int blob_spares_fill(const char *blobs_dir);

/*
 * Takes a spare container of blobs_dir: an empty blob file made ahead of
 * time whose directory entry is already durable. Returns its descriptor
 * (write-only) with its name, directory and path, or -1 when there is
 * none to take (the caller then creates a blob the usual way).
 */
int blob_spare_take(const char *blobs_dir, char blob[RAND_ID_LEN + 1], char **dir, char **path);
#endif
