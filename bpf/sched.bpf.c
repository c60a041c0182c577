// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sched.runqueue: from waking (or preemption) until the task runs again,
 * naming the task that held the cpu. sched.blocked: from switching out not
 * runnable until woken, naming the waker. Waking is taken at sched_waking,
 * which runs in the waker's context (sched_wakeup may run on the target cpu).
 */
#include "common.bpf.h"

#define TASK_RUNNING 0

struct off_cpu {
	__u64 ts;
	__u32 state;      /* blocked: state at switch-out; runnable: 1 if preempted */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);  /* tid */
	__type(value, struct off_cpu);
} blocked_at SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);  /* tid */
	__type(value, struct off_cpu);
} runnable_at SEC(".maps");

struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

static __always_inline __u32 task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___pre514 *)t, state);
}

static __always_inline void mark_runnable(__u32 tid, __u64 now, __u32 preempted)
{
	struct off_cpu r = { .ts = now, .state = preempted };

	bpf_map_update_elem(&runnable_at, &tid, &r, BPF_ANY);
}

static __always_inline int on_waking(struct task_struct *p, bool is_new)
{
	__u32 tid = BPF_CORE_READ(p, pid);
	__u64 now;
	struct off_cpu *b;
	struct cw_event *e;

	if (!cw_followed(BPF_CORE_READ(p, tgid)))
		return 0;
	now = bpf_ktime_get_ns();
	mark_runnable(tid, now, 0);
	if (is_new)
		return 0;
	b = bpf_map_lookup_elem(&blocked_at, &tid);
	if (!b)
		return 0;
	if (cw_long_enough(CW_KIND_SCHED_BLOCKED, now - b->ts)) {
		e = cw_reserve(CW_KIND_SCHED_BLOCKED);
		if (e) {
			cw_set_task_of(e, p);
			e->start_ns = b->ts;
			e->end_ns = now;
			e->u.blocked.state = b->state;
			cw_task_waking(&e->u.blocked.waker);
			cw_submit(e);
		}
	}
	bpf_map_delete_elem(&blocked_at, &tid);
	return 0;
}

SEC("tp_btf/sched_waking")
int BPF_PROG(sched_waking, struct task_struct *p)
{
	return on_waking(p, false);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new, struct task_struct *p)
{
	return on_waking(p, true);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 prev_tid = BPF_CORE_READ(prev, pid);
	__u32 next_tid = BPF_CORE_READ(next, pid);
	struct off_cpu *r;
	struct cw_event *e;

	if (cw_followed(BPF_CORE_READ(prev, tgid))) {
		__u32 state = preempt ? TASK_RUNNING : task_state(prev);

		if (state == TASK_RUNNING) {
			mark_runnable(prev_tid, now, 1);
		} else {
			struct off_cpu b = { .ts = now, .state = state };

			bpf_map_update_elem(&blocked_at, &prev_tid, &b, BPF_ANY);
		}
	}

	if (!cw_followed(BPF_CORE_READ(next, tgid)))
		return 0;
	r = bpf_map_lookup_elem(&runnable_at, &next_tid);
	if (!r)
		return 0;
	if (cw_long_enough(CW_KIND_SCHED_RUNQUEUE, now - r->ts)) {
		e = cw_reserve(CW_KIND_SCHED_RUNQUEUE);
		if (e) {
			cw_set_task_of(e, next);
			e->start_ns = r->ts;
			e->end_ns = now;
			e->u.runqueue.preempted = r->state;
			cw_task_of(&e->u.runqueue.holder, prev);
			cw_submit(e);
		}
	}
	bpf_map_delete_elem(&runnable_at, &next_tid);
	return 0;
}
