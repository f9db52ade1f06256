/*
 * smtpd_job — the unit of work a session hands to the worker pool: a
 * recipient check or a delivery. A job owns copies of everything it needs
 * (the session may be gone when it finishes) and holds a config reference.
 *
 * Data flow: smtpd_session makes jobs; smtpd_pool runs them on worker
 * threads and hands them back to the I/O thread, which frees them. Apart
 * from the pool so that the session state machine can be driven without
 * threads (fuzz/fuzz_session.c).
 */
#include "smtpd/smtpd_int.h"

#include "lib/xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct smtpd_job *smtpd_job_new(enum smtpd_job_kind kind, struct smtpd_session *s)
{
    struct smtpd_job *j = xcalloc(1, sizeof(*j));
    j->kind = kind;
    j->sess = s;
    j->cfg = config_ref(s->cfg);
    memcpy(j->sid, s->id, sizeof(j->sid));
    j->fd = -1;
    j->status = SP_TEMPFAIL;
    return j;
}

void smtpd_job_free(struct smtpd_job *j)
{
    if (j == NULL)
        return;
    free(j->address);
    rcpt_clear(&j->rcpt);
    if (j->fd >= 0)
        close(j->fd);
    for (size_t i = 0; i < j->nrcpts; i++)
        rcpt_clear(&j->rcpts[i]);
    free(j->rcpts);
    free(j->received);
    free(j->helo);
    free(j->client_addr);
    free(j->mail_from);
    free(j->via);
    free(j->tls_version);
    free(j->tls_cipher);
    config_unref(j->cfg);
    free(j);
}
