/*
 * cli_init — `sealpost init`: creates the data directory (mode 0700) with
 * its blobs/ and tmp/ folders and the store, migrated to the current schema,
 * and the server's master key ([server] master_key, 0600) if it is missing,
 * and the DKIM key of notification mail ([outbound] dkim_key) if it is
 * missing, printing the DNS TXT record to publish for it.
 * Safe to run again: existing data is kept.
 */
#include "cli/cli.h"
#include "deliver/outbound.h"
#include "lib/buf.h"
#include "lib/db.h"
#include "lib/fsutil.h"
#include "lib/masterkey.h"
#include "lib/xalloc.h"

/* Longest character-string in a DNS TXT record (RFC 1035 3.3). */
#define DNS_TXT_STRING_MAX 255
/* Directory descriptors nftw may hold open while walking the data dir. */
#define INIT_NFTW_FDS 16

#include <errno.h>
#include <ftw.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uid_t owner_uid;
static gid_t owner_gid;

static int chown_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return lchown(path, owner_uid, owner_gid) < 0 ? -1 : 0;
}

/*
 * Started as root with [server] user set: the data directory and the master
 * key belong to that user, so `serve` can use them after dropping root.
 */
static int give_to_service_user(const struct config *cfg)
{
    if (geteuid() != 0 || cfg->user == NULL || cfg->user[0] == '\0')
        return 0;
    struct passwd *pw = getpwnam(cfg->user);
    if (pw == NULL)
        return cli_fail("[server] user %s: no such user", cfg->user);
    owner_uid = pw->pw_uid;
    owner_gid = pw->pw_gid;
    if (nftw(cfg->data_dir, chown_one, INIT_NFTW_FDS, FTW_PHYS) != 0 ||
        lchown(cfg->master_key, owner_uid, owner_gid) < 0)
        return cli_fail("cannot give %s to %s: %s", cfg->data_dir, cfg->user, strerror(errno));
    return 0;
}

int cmd_init(struct cli *c, int argc, char **argv)
{
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 1)
        return cli_usage("init");
    struct config *cfg = cli_config(c);
    if (cfg == NULL)
        return CLI_ERR;
    const char *sub[] = {"", "/blobs", "/tmp"};
    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
        char *d = xasprintf("%s%s", cfg->data_dir, sub[i]);
        int r = mkdir_p(d, 0700);
        int e = errno;
        free(d);
        if (r < 0)
            return cli_fail("cannot create %s%s: %s", cfg->data_dir, sub[i], strerror(e));
    }
    int made_key = 0;
    if (masterkey_create(cfg->master_key) == 0)
        made_key = 1;
    else if (errno != EEXIST)
        return cli_fail("cannot create the master key %s: %s", cfg->master_key, strerror(errno));
    /* db_open creates the store on the first run and migrates it later. */
    struct db *db = NULL;
    char *path = xasprintf("%s/%s", cfg->data_dir, DB_FILE_NAME);
    enum db_rc r = db_open(path, &db);
    free(path);
    if (r != DB_OK)
        return cli_fail("cannot create the store in %s", cfg->data_dir);
    int version = db_schema_version(db);
    db_close(db);
    /* ---- outbound: the DKIM key (deliver/outbound.h) ---- */
    char *err = NULL, *record = NULL;
    int made_dkim = 0;
    if (access(cfg->dkim_key, F_OK) != 0) {
        if (outbound_dkim_keygen(cfg->dkim_key, false, &err) < 0) {
            int rc = cli_fail("%s", err);
            free(err);
            return rc;
        }
        made_dkim = 1;
    }
    if (outbound_dkim_record(cfg->dkim_key, &record, &err) < 0) {
        int rc = cli_fail("%s", err);
        free(err);
        return rc;
    }
    if (give_to_service_user(cfg) != CLI_OK || (geteuid() == 0 && cfg->user && cfg->user[0] &&
                                                lchown(cfg->dkim_key, owner_uid, owner_gid) < 0)) {
        free(record);
        return CLI_ERR;
    }
    char *dns_name = xasprintf("%s._domainkey.%s", cfg->dkim_selector, cfg->dkim_domain);
    /* A zone file string holds at most 255 bytes: split the record. */
    struct buf zone;
    buf_init(&zone, 0);
    for (size_t off = 0, len = strlen(record); off < len; off += DNS_TXT_STRING_MAX)
        if (buf_printf(&zone, "%s\"%.*s\"", off ? " " : "", DNS_TXT_STRING_MAX, record + off) < 0)
            break;
    if (c->json)
        cli_json_print(json_pack("{s:s,s:i,s:s,s:b,s:s,s:b,s:{s:s,s:s}}", "data_dir", cfg->data_dir,
                                 "schema", version, "master_key", cfg->master_key,
                                 "master_key_created", made_key, "dkim_key", cfg->dkim_key,
                                 "dkim_key_created", made_dkim, "dkim", "name", dns_name, "record",
                                 record));
    else
        printf("initialised %s (store schema %d)\n%s master key %s\n%s DKIM key %s\n"
               "publish this DNS TXT record:\n%s. IN TXT ( %s )\n",
               cfg->data_dir, version, made_key ? "created" : "kept", cfg->master_key,
               made_dkim ? "created" : "kept", cfg->dkim_key, dns_name, buf_cstr(&zone));
    buf_free(&zone);
    free(dns_name);
    free(record);
    return CLI_OK;
}
