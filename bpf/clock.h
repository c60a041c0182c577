/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The loader's clock reads: record times are CLOCK_MONOTONIC, as the probes' bpf_ktime_get_ns. */
#ifndef CAUSEWAY_CLOCK_H
#define CAUSEWAY_CLOCK_H

#include <time.h>
#include <linux/types.h>

static inline __u64 now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

#endif /* CAUSEWAY_CLOCK_H */
