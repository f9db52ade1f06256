/*
 * cli_queue — `sealpost queue list [--json]` and `sealpost queue flush
 * [--json]`: the outbound notification queue.
 *
 * list shows what the store holds about each mail: id, kind, send id, state,
 * attempts, times and the relay's last reply code — never an address or the
 * content, which the store only has encrypted.
 *
 * flush makes every queued mail due now and then runs one delivery pass in
 * the foreground, reporting what happened. A running serve would also pick
 * them up within OUTBOUND_POLL_SECONDS; claims in the store make sure each
 * mail is sent by one of them only.
 */
#include "cli/cli.h"
#include "deliver/outbound.h"
#include "lib/db.h"
#include "lib/masterkey.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct list_ctx {
    struct cli *c;
    json_t *arr;
    unsigned n;
};

static int list_one(const struct db_queue_entry *e, void *arg)
{
    struct list_ctx *x = arg;
    char created[32], next[32];
    cli_time_format(e->created, created, sizeof(created));
    cli_time_format(e->next_try, next, sizeof(next));
    bool queued = strcmp(e->state, DB_QUEUE_QUEUED) == 0;
    if (x->c->json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:i,s:s,s:I}", "id", e->id, "kind", e->kind, "state",
                              e->state, "attempts", (int)e->attempts, "created", created, "size",
                              (json_int_t)e->size);
        json_object_set_new(o, "send_id", e->send_id ? json_string(e->send_id) : json_null());
        json_object_set_new(o, "next_try", queued ? json_string(next) : json_null());
        json_object_set_new(o, "last_error",
                            e->last_error ? json_string(e->last_error) : json_null());
        json_array_append_new(x->arr, o);
    } else {
        if (x->n == 0)
            printf("%-20s  %-8s  %-7s  %3s  %-20s  %-20s  %s\n", "ID", "KIND", "STATE", "TRY",
                   "CREATED", "NEXT TRY", "LAST REPLY");
        printf("%-20s  %-8s  %-7s  %3u  %-20s  %-20s  %s\n", e->id, e->kind, e->state, e->attempts,
               created, queued ? next : "-", e->last_error ? e->last_error : "-");
    }
    x->n++;
    return 0;
}

static int queue_list(struct cli *c)
{
    struct db *db = cli_db(c);
    if (db == NULL)
        return CLI_ERR;
    struct list_ctx x = {.c = c, .arr = json_array()};
    enum db_rc r = db_queue_foreach(db, list_one, &x);
    db_close(db);
    if (r != DB_OK) {
        json_decref(x.arr);
        return cli_fail("cannot read the queue");
    }
    if (c->json)
        cli_json_print(x.arr);
    else {
        json_decref(x.arr);
        if (x.n == 0)
            printf("queue is empty\n");
    }
    return CLI_OK;
}

static int queue_flush(struct cli *c)
{
    struct config *cfg = cli_config(c);
    if (cfg == NULL)
        return CLI_ERR;
    /* A relay that hangs up mid-write must not kill us (outbound_runner.c). */
    signal(SIGPIPE, SIG_IGN);
    int due = outbound_flush(cfg);
    if (due < 0)
        return cli_fail("cannot flush the queue");
    unsigned char *master = masterkey_load(cfg->master_key);
    if (master == NULL)
        return cli_fail("cannot load the master key %s", cfg->master_key);
    struct db *db = cli_db(c);
    if (db == NULL) {
        masterkey_free(master);
        return CLI_ERR;
    }
    struct outbound_pass_stats st;
    int r = outbound_deliver_due(db, cfg, master, (int64_t)time(NULL), &st);
    db_close(db);
    masterkey_free(master);
    if (r < 0)
        return cli_fail("delivery pass failed (store error; see the log)");
    if (c->json)
        cli_json_print(json_pack("{s:i,s:i,s:i}", "delivered", (int)st.delivered, "deferred",
                                 (int)st.deferred, "failed", (int)st.failed));
    else
        printf("%u delivered, %u deferred, %u failed\n", st.delivered, st.deferred, st.failed);
    return CLI_OK;
}

int cmd_queue(struct cli *c, int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "list") == 0)
        return queue_list(c);
    if (argc == 2 && strcmp(argv[1], "flush") == 0)
        return queue_flush(c);
    return cli_usage("queue list [--json] | queue flush [--json]");
}
