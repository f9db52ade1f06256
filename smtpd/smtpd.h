/*
 * smtpd — the SMTP receiver of the Mail-in domain (the MX).
 *
 * Data flow: network → smtpd (this part: listener, sessions, DATA reader,
 * STARTTLS) → deliver (vaults) via a bounded worker pool. Everything a
 * client sends is hostile; every input is bounded before a parser sees it
 * (RULES.md 1-5).
 *
 * Life cycle, as used by `sealpost serve` (cli/cli_serve.c):
 *   smtpd_server_new   binds the listener (may run as root);
 *   smtpd_server_start starts the I/O thread and the worker pool (after the
 *                      privilege drop: workers open the store);
 *   smtpd_server_reload swaps in a new config (sessions keep their snapshot);
 *   smtpd_server_stop  stops accepting, lets transactions in flight finish for
 *                      at most drain_seconds, closes the rest with 421, joins;
 *   smtpd_server_free.
 */
#ifndef SEALPOST_SMTPD_H
#define SEALPOST_SMTPD_H

#include "policy/config.h"

struct smtpd_server;

/* Binds [server] smtp_listen. NULL and *err (malloc'd) on failure. */
struct smtpd_server *smtpd_server_new(struct config *cfg, char **err);
/* Starts the threads. 0, or -1 and *err. */
int smtpd_server_start(struct smtpd_server *s, char **err);
/* Takes a reference to cfg; new sessions use it. Thread-safe. */
void smtpd_server_reload(struct smtpd_server *s, struct config *cfg);
/* Drains (bounded by drain_seconds) and joins every thread. */
void smtpd_server_stop(struct smtpd_server *s, unsigned drain_seconds);
void smtpd_server_free(struct smtpd_server *s);
/* The bound port (useful with port 0). */
int smtpd_server_port(const struct smtpd_server *s);

#endif
