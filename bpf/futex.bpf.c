// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * futex.wait: a wait operation from syscall entry to exit, with the thread
 * that woke it (taken at sched_waking, which runs in the waker's context).
 *
 * With reduction on (cw_settings.window_ns), a wait shorter than wait_whole_ns is summed into
 * its thread's futex window (common.bpf.h): count, total, longest and the longest one's waker;
 * longer ones, and the one that opens a window, are written whole.
 */
#include "common.bpf.h"

#define FUTEX_WAIT 0
#define FUTEX_LOCK_PI 6
#define FUTEX_WAIT_BITSET 9
#define FUTEX_WAIT_REQUEUE_PI 11
#define FUTEX_LOCK_PI2 13
#define FUTEX_PRIVATE_FLAG 128
#define FUTEX_CLOCK_REALTIME 256

struct futex_wait {
	__u64 ts;
	__u64 uaddr;
	__u32 op;
	struct cw_task waker;
	struct cw_span_context context; /* the span active at the syscall's entry */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);  /* tid */
	__type(value, struct futex_wait);
} waits SEC(".maps");

static __always_inline bool is_wait_op(__u32 op)
{
	__u32 cmd = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);

	return cmd == FUTEX_WAIT || cmd == FUTEX_WAIT_BITSET || cmd == FUTEX_LOCK_PI ||
	       cmd == FUTEX_LOCK_PI2 || cmd == FUTEX_WAIT_REQUEUE_PI;
}

SEC("tracepoint/syscalls/sys_enter_futex")
int futex_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct futex_wait w = {};

	w.op = (__u32)ctx->args[1];
	if (!is_wait_op(w.op) || !cw_followed(id >> 32))
		return 0;
	w.ts = bpf_ktime_get_ns();
	w.uaddr = ctx->args[0];
	cw_read_span_context(id >> 32, &w.context);
	bpf_map_update_elem(&waits, &tid, &w, BPF_ANY);
	return 0;
}

SEC("tp_btf/sched_waking")
int BPF_PROG(futex_waking, struct task_struct *p)
{
	__u32 tid = BPF_CORE_READ(p, pid);
	struct futex_wait *w = bpf_map_lookup_elem(&waits, &tid);

	if (w && !w->waker.tid)
		cw_task_waking(&w->waker);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_futex")
int futex_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct futex_wait *w = bpf_map_lookup_elem(&waits, &tid);
	struct cw_event *e;
	__u64 now;

	if (!w)
		return 0;
	now = bpf_ktime_get_ns();
	if (cw_long_enough(CW_KIND_FUTEX_WAIT, now - w->ts)) {
		struct cw_task task;
		struct cw_wait wait = {
			.task = &task, .context = &w->context, .waker = &w->waker, .start_ns = w->ts, .end_ns = now,
		};

		cw_task_current(&task);
		if (!cw_sum_wait(CW_KIND_FUTEX_WAIT_SUM, &wait)) {
			e = cw_reserve(CW_KIND_FUTEX_WAIT);
			if (e) {
				cw_set_task(e, &task);
				e->context = w->context;
				e->start_ns = w->ts;
				e->end_ns = now;
				e->u.futex.uaddr = w->uaddr;
				e->u.futex.op = w->op;
				e->u.futex.waker = w->waker;
				e->u.futex.ret = (__s32)ctx->ret;
				cw_submit(e);
			}
		}
	}
	bpf_map_delete_elem(&waits, &tid);
	return 0;
}
