/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The STATS frame: drops, deliveries, ring fill and the clock pair (stats.c). */
#ifndef CAUSEWAY_STATS_H
#define CAUSEWAY_STATS_H

#include <stdbool.h>
#include <linux/types.h>

/* Maps the ring's positions (read-only) to report its fill; drops are read from drops_fd. */
void stats_open(int events_fd, int drops_fd);
void count_delivered(__u16 kind);
/* The ring's producer (reserved up to) and consumer (read up to) positions; false if not mapped. */
bool ring_positions(__u64 *produced, __u64 *consumed);
void emit_stats(void);

#endif /* CAUSEWAY_STATS_H */
