/*
 * metrics — process-wide counters and gauges, rendered as Prometheus text
 * format 0.0.4 by GET /metrics. Any part may bump them (smtpd: messages
 * received/refused by reason; sendlink: sends created/downloaded/locked/
 * expired; outbound: queue depth).
 *
 * Names are constants of the caller, without the "sealpost_" prefix that
 * the exposition adds; label is NULL or one "key=value" pair whose value is
 * a short constant (a reason, a route name): never user input, never a
 * secret. Thread-safe; a fixed table of METRICS_MAX series (more are
 * dropped with one warning).
 */
#ifndef SEALPOST_METRICS_H
#define SEALPOST_METRICS_H

#include "lib/buf.h"

#include <stdint.h>

#define METRICS_MAX 256
#define METRICS_NAME_MAX 64
#define METRICS_LABEL_MAX 64

/* Counter += 1 / += n. */
void metrics_inc(const char *name, const char *label);
void metrics_add(const char *name, const char *label, uint64_t n);
/* Gauge = v. */
void metrics_set(const char *name, const char *label, int64_t v);
/* Current value (0 when unknown): for tests. */
int64_t metrics_get(const char *name, const char *label);
/* Appends the exposition text to b; -1 if b's cap was reached. */
int metrics_format(struct buf *b) __attribute__((warn_unused_result));

#endif
