// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The STATS frame, every stats interval and at exit: per kind, the records the
 * probes could not reserve (the drops map) and the records delivered; the bytes
 * waiting in the ring; what is followed and probed; and a CLOCK_MONOTONIC /
 * CLOCK_REALTIME pair, from which the sidecar converts record times.
 */
#include <stddef.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "causeway.h"
#include "clock.h"
#include "cuda_libs.h"
#include "filter.h"
#include "frames.h"
#include "gpu_processes.h"
#include "stats.h"
#include "thread_ctx.h"
#include "stub_names.h"

static __u64 delivered[CW_KIND_MAX];
static int drops_map = -1;
static const volatile __u64 *ring_consumer, *ring_producer;

void stats_open(int events_fd, int drops_fd)
{
	long page = sysconf(_SC_PAGESIZE);
	void *cons = mmap(NULL, page, PROT_READ, MAP_SHARED, events_fd, 0);
	void *prod = mmap(NULL, page, PROT_READ, MAP_SHARED, events_fd, page);

	ring_consumer = cons == MAP_FAILED ? NULL : cons;
	ring_producer = prod == MAP_FAILED ? NULL : prod;
	drops_map = drops_fd;
}

bool ring_positions(__u64 *produced, __u64 *consumed)
{
	if (!ring_consumer || !ring_producer)
		return false;
	/* Acquire: the records below the producer position were reserved before it was read. */
	*produced = __atomic_load_n(ring_producer, __ATOMIC_ACQUIRE);
	*consumed = __atomic_load_n(ring_consumer, __ATOMIC_ACQUIRE);
	return true;
}

void count_delivered(__u16 kind)
{
	if (kind < CW_KIND_MAX)
		delivered[kind]++;
}

void emit_stats(void)
{
	int ncpus = libbpf_num_possible_cpus();
	__u64 values[ncpus > 0 ? ncpus : 1];
	struct cw_stats s = {};
	__u64 real_before, real_after;

	for (__u32 kind = 0; kind < CW_KIND_MAX; kind++) {
		if (bpf_map_lookup_elem(drops_map, &kind, values))
			continue;
		for (int c = 0; c < ncpus; c++)
			s.drops[kind] += values[c];
		s.events[kind] = delivered[kind];
	}
	for (__u32 kind = 0; kind < CW_KIND_MAX; kind++) {
		__u32 slot = CW_KIND_MAX + kind; /* CW_SHED + kind (common.bpf.h) */

		if (bpf_map_lookup_elem(drops_map, &slot, values))
			continue;
		for (int c = 0; c < ncpus; c++)
			s.shed[kind] += values[c];
	}
	if (ring_consumer && ring_producer)
		s.ringbuf_used = *ring_producer - *ring_consumer;
	s.followed = followed_count();
	s.libraries = cuda_libraries();
	s.gpu_processes = gpu_process_count();
	s.unnamed_kernels = unnamed_stubs();
	s.thread_ctx_processes = thread_ctx_processes();
	s.thread_ctx_unresolved = thread_ctx_unresolved();
	/* The monotonic sample sits between two realtime samples: take their midpoint. */
	real_before = now_ns(CLOCK_REALTIME);
	s.mono_ns = now_ns(CLOCK_MONOTONIC);
	real_after = now_ns(CLOCK_REALTIME);
	s.real_ns = real_before + (real_after - real_before) / 2;
	emit_frame(CW_FRAME_STATS, &s, sizeof(s));
	flush_out();
}
