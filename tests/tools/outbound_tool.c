/*
 * outbound_tool — drives deliver/outbound from tests, before (or besides) the
 * HTTP API that calls it in production.
 *
 *   outbound_tool CONF enqueue TO SUBJECT TEXT [HTML|-] [SEND_ID|-] [FROM_NAME|-]
 *       composes, signs and queues one mail; prints its queue id
 *   outbound_tool CONF events SEND_ID
 *       prints the events of a send, one "KIND DETAIL" line each
 *   outbound_tool CONF run SECONDS
 *       runs serve's background runner (outbound_runner_start) for SECONDS,
 *       then stops it (SIGTERM stops it early)
 *
 * Exit 0 on success, 1 on failure (the reason on stderr).
 */
#include "deliver/outbound.h"
#include "lib/db.h"
#include "lib/log.h"
#include "lib/masterkey.h"
#include "lib/xalloc.h"
#include "mime/mime.h"
#include "policy/config.h"

#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_now;

static void on_term(int sig)
{
    (void)sig;
    stop_now = 1;
}

static const char *opt(const char *s)
{
    return s && strcmp(s, "-") != 0 ? s : NULL;
}

static int print_event(const struct db_event *e, void *arg)
{
    (void)arg;
    printf("%s %s\n", e->kind, e->detail ? e->detail : "-");
    return 0;
}

static struct db *open_db(const struct config *cfg)
{
    char *path = xasprintf("%s/%s", cfg->data_dir, DB_FILE_NAME);
    struct db *db = NULL;
    enum db_rc r = db_open(path, &db);
    free(path);
    return r == DB_OK ? db : NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: outbound_tool CONF enqueue|events|run …\n");
        return 2;
    }
    log_open("outbound_tool", 1, 0);
    if (sodium_init() < 0)
        return 1;
    mime_global_init();
    signal(SIGPIPE, SIG_IGN);
    struct config *cfg = NULL;
    struct diag d = {0};
    if (config_load(argv[1], &cfg, &d) < 0) {
        for (size_t i = 0; i < d.n; i++)
            fprintf(stderr, "%s\n", d.msgs[i]);
        diag_free(&d);
        return 1;
    }
    diag_free(&d);
    int rc = 1;
    if (strcmp(argv[2], "enqueue") == 0 && argc >= 6) {
        unsigned char *master = masterkey_load(cfg->master_key);
        struct db *db = open_db(cfg);
        struct outbound_mail m = {
            .to = argv[3],
            .subject = argv[4],
            .text = argv[5],
            .html = argc > 6 ? opt(argv[6]) : NULL,
            .send_id = argc > 7 ? opt(argv[7]) : NULL,
            .kind = "notify",
            .from_name = argc > 8 ? opt(argv[8]) : NULL,
        };
        char id[RAND_ID_LEN + 1];
        if (master && db && outbound_enqueue(db, cfg, master, &m, id) == 0) {
            printf("%s\n", id);
            rc = 0;
        }
        if (db)
            db_close(db);
        masterkey_free(master);
    } else if (strcmp(argv[2], "events") == 0 && argc == 4) {
        struct db *db = open_db(cfg);
        if (db && db_event_foreach(db, argv[3], print_event, NULL) == DB_OK)
            rc = 0;
        if (db)
            db_close(db);
    } else if (strcmp(argv[2], "run") == 0 && argc == 4) {
        signal(SIGTERM, on_term);
        char *err = NULL;
        struct outbound_runner *r = outbound_runner_start(cfg, &err);
        if (r == NULL) {
            fprintf(stderr, "outbound_tool: %s\n", err);
            free(err);
        } else {
            for (long s = atol(argv[3]) * 10; s > 0 && !stop_now; s--)
                usleep(100000);
            outbound_runner_stop(r);
            rc = 0;
        }
    } else {
        fprintf(stderr, "outbound_tool: bad arguments\n");
        rc = 2;
    }
    config_unref(cfg);
    return rc;
}
