// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sched.runqueue: from waking (or preemption) until the task runs again,
 * naming the tasks that held the cpu meanwhile, by their time on it. sched.blocked:
 * from switching out not runnable until woken, naming the waker. Waking is taken
 * at sched_waking, which runs in the waker's context (sched_wakeup may run on the
 * target cpu).
 *
 * Who held the cpu comes from a per-cpu history of its last runs, every task's (a
 * few stores per switch); it is read only when a followed task's wait is recorded.
 * The cpu credited is the one the task finally ran on: a wait that began on
 * another cpu before a migration names the tasks of its last cpu.
 *
 * With reduction on (cw_settings.window_ns), a run-queue wait shorter than runqueue_whole_ns is
 * summed into its thread's run-queue window (common.bpf.h): count, total, longest, how many
 * preempted; longer ones are written whole, with their holders. Likewise a blocked wait shorter
 * than wait_whole_ns, into its blocked window (count, total, longest and the longest one's
 * waker). A thread's windows (these, its futex waits' and its launches') that are window_ns old
 * are closed when it switches out, and its launch window whenever it blocks.
 */
#include "common.bpf.h"

#define TASK_RUNNING 0

struct off_cpu {
	__u64 ts;         /* 0: not off cpu that way (consumed, or never) */
	__u32 state;      /* blocked: state at switch-out; runnable: 1 if preempted */
	__u32 pad;
	/*
	 * The span active when the task switched out (read then, in its own context); a woken task's
	 * run-queue wait keeps the one it blocked in, since it ran nothing in between.
	 */
	struct cw_span_context context;
};

/*
 * A followed thread's last switch-out: blocked (until woken) and runnable (until it runs). One
 * entry per thread, kept and written in place: inserting and deleting an entry per sleep cost
 * ten times a lookup. The LRU drops the entries of threads gone.
 */
struct off_cpu_times {
	struct off_cpu blocked;
	struct off_cpu runnable;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);  /* tid */
	__type(value, struct off_cpu_times);
} off_cpu SEC(".maps");

/* What a thread's entry starts from: neither blocked nor runnable. */
static const struct off_cpu_times no_off_cpu;

/* The thread's entry, made if it has none (NULL only if the LRU cannot take one). */
static __always_inline struct off_cpu_times *off_cpu_of(__u32 tid)
{
	return cw_lookup_or_init(&off_cpu, &tid, &no_off_cpu);
}

#define CW_RUNQUEUE_RUNS 16 /* a power of two: the ring's index is masked */

/* One run on a cpu: a task from its switch-in to its switch-out. */
struct run {
	__u64 start;
	__u64 end;
	__u64 task;       /* its task_struct, to read the comm of the few that are named */
	__u32 pid;
	__u32 tid;
};

/* Per cpu: its last runs, a ring; when the running task began; scratch for summing per task. */
struct cpu_runs {
	__u64 pushed;     /* runs written so far; the next goes to pushed % CW_RUNQUEUE_RUNS */
	__u64 running_since;
	struct run runs[CW_RUNQUEUE_RUNS];
	struct run sums[CW_RUNQUEUE_RUNS]; /* per task: end - start is its on-cpu time in the wait */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_runs);
} cpu_runs SEC(".maps");

struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

static __always_inline __u32 task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return t->__state;
	return BPF_CORE_READ((struct task_struct___pre514 *)t, state);
}

static __always_inline void mark_runnable(struct off_cpu *r, __u64 now, __u32 preempted,
					  const struct cw_span_context *context)
{
	r->state = preempted;
	r->context = *context;
	r->ts = now;
}

/*
 * The task pointers of these tracepoints are the kernel's own (tp_btf): their fields are read
 * directly, without a bpf_probe_read_kernel call each.
 */
static __always_inline int on_waking(struct task_struct *p, bool is_new)
{
	struct cw_span_context context = {};
	struct off_cpu_times *o;
	struct cw_task task, waker;
	struct off_cpu *b;
	struct cw_event *e;
	__u64 now, since;

	if (!cw_followed(p->tgid))
		return 0;
	o = off_cpu_of(p->pid);
	if (!o)
		return 0;
	now = bpf_ktime_get_ns();
	b = &o->blocked;
	if (is_new)
		b->ts = 0; /* a new thread: an entry it finds was its tid's last holder's */
	/*
	 * Read once: a wakeup that races the thread's own switch-out (on another cpu) can see the
	 * switch-out write b->ts meanwhile, and the wait must be judged and written from one value.
	 */
	since = b->ts;
	if (!since) {
		mark_runnable(&o->runnable, now, 0, &context);
		return 0;
	}
	mark_runnable(&o->runnable, now, 0, &b->context);
	if (cw_long_enough(CW_KIND_SCHED_BLOCKED, now - since)) {
		struct cw_wait wait = {
			.task = &task, .context = &b->context, .waker = &waker, .start_ns = since, .end_ns = now,
		};

		cw_task_of(&task, p);
		cw_task_waking(&waker);
		if (!cw_sum_wait(CW_KIND_SCHED_BLOCKED_SUM, &wait)) {
			e = cw_reserve(CW_KIND_SCHED_BLOCKED);
			if (e) {
				cw_set_task(e, &task);
				e->context = b->context;
				e->start_ns = since;
				e->end_ns = now;
				e->u.blocked.state = b->state;
				e->u.blocked.waker = waker;
				cw_submit(e);
			}
		}
	}
	b->ts = 0;
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

/* The run that ends now goes into the cpu's ring, and the next one begins. */
static __always_inline void push_run(struct cpu_runs *h, struct task_struct *prev, __u32 pid, __u32 tid, __u64 now)
{
	struct run *slot = &h->runs[h->pushed & (CW_RUNQUEUE_RUNS - 1)];

	if (h->running_since) {
		slot->start = h->running_since;
		slot->end = now;
		slot->task = (__u64)prev;
		slot->pid = pid;
		slot->tid = tid;
		h->pushed++;
	}
	h->running_since = now;
}

/*
 * The tasks that held this cpu during the wait of `waiter`, since `since`: the ring's runs
 * overlapping it, summed per task, the CW_RUNQUEUE_HOLDERS with most time written out. The
 * idle task (tid 0) holds nothing: a wait that saw it here began on another cpu. Nor does
 * the waiter: woken while it was still switching out, it ran a little into its own wait.
 */
static __always_inline void holders(struct cpu_runs *h, __u32 waiter, __u64 since, struct cw_runqueue *rq)
{
	__u32 n = 0;
	__u64 seen = 0;

	for (__u32 i = 0; i < CW_RUNQUEUE_RUNS; i++) {
		struct run *run = &h->runs[i];
		__u64 from = run->start > since ? run->start : since;
		__u32 j;

		if (run->start == 0 || run->end <= from)
			continue;
		seen += run->end - from;
		if (run->tid == 0 || run->tid == waiter)
			continue;
		for (j = 0; j < n && j < CW_RUNQUEUE_RUNS; j++)
			if (h->sums[j].tid == run->tid)
				break;
		if (j >= CW_RUNQUEUE_RUNS)
			continue;
		if (j == n) {
			h->sums[j] = *run;
			h->sums[j].start = 0;
			h->sums[j].end = 0;
			n++;
		}
		h->sums[j].end += run->end - from;
	}
	rq->seen_ns = seen;
	for (__u32 k = 0; k < CW_RUNQUEUE_HOLDERS; k++) {
		struct cw_holder *out = &rq->holders[k];
		__u32 best = CW_RUNQUEUE_RUNS;
		__u64 most = 0;

		for (__u32 j = 0; j < n && j < CW_RUNQUEUE_RUNS; j++) {
			if (h->sums[j].end > most) {
				most = h->sums[j].end;
				best = j;
			}
		}
		if (best >= CW_RUNQUEUE_RUNS) {
			__builtin_memset(out, 0, sizeof(*out));
			continue;
		}
		out->task.pid = h->sums[best].pid;
		out->task.tid = h->sums[best].tid;
		out->oncpu_ns = most;
		h->sums[best].end = 0;
		/* A task that has exited since its run may be gone: its comm is read only if it is still that task. */
		struct task_struct *t = (struct task_struct *)h->sums[best].task;
		if (BPF_CORE_READ(t, pid) == out->task.tid)
			BPF_CORE_READ_STR_INTO(&out->task.comm, t, comm);
		else
			out->task.comm[0] = 0;
	}
}

/* A run-queue wait's whole record, with the tasks that held the cpu. */
static __always_inline void fill_runqueue(struct cw_event *e, struct task_struct *task, __u32 tid, struct off_cpu *r,
					  __u64 now, struct cpu_runs *h)
{
	e->kind = CW_KIND_SCHED_RUNQUEUE;
	e->cpu = bpf_get_smp_processor_id();
	cw_set_task_of(e, task);
	e->context = r->context;
	e->start_ns = r->ts;
	e->end_ns = now;
	e->u.runqueue.preempted = r->state;
	holders(h, tid, r->ts, &e->u.runqueue);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 prev_pid = prev->tgid;
	__u32 prev_tid = prev->pid;
	__u32 next_tid = next->pid;
	__u32 zero = 0;
	struct cpu_runs *h = bpf_map_lookup_elem(&cpu_runs, &zero);
	struct off_cpu_times *o;
	struct cw_windows *ws;
	struct off_cpu *r;
	struct cw_event *e;
	__u64 window;

	if (!h)
		return 0;
	push_run(h, prev, prev_pid, prev_tid, now);
	window = cw_window_ns();
	ws = window ? bpf_map_lookup_elem(&windows, &prev_tid) : NULL;
	if (ws) {
		/*
		 * A thread that blocks has made its launches for now: their summary goes out at once,
		 * before the watermark passes the span they were made in (a span is joined as soon as
		 * the watermark passes its end). Wait windows stay open across sleeps: a thread that
		 * wakes, waits and sleeps again would otherwise never sum two waits.
		 */
		bool blocking = !preempt && task_state(prev) != TASK_RUNNING;

		cw_close_window(&ws->launches, now, blocking ? 0 : window);
		cw_close_waits(ws, now, window);
	}

	o = cw_followed(prev_pid) ? off_cpu_of(prev_tid) : NULL;
	if (o) {
		__u32 state = preempt ? TASK_RUNNING : task_state(prev);
		struct cw_span_context context = {};

		/* prev is the current task: its published context is readable here. */
		cw_read_span_context(prev_pid, &context);
		if (state == TASK_RUNNING) {
			mark_runnable(&o->runnable, now, 1, &context);
		} else {
			o->blocked.state = state;
			o->blocked.context = context;
			o->blocked.ts = now;
		}
	}

	if (!cw_followed(next->tgid))
		return 0;
	o = bpf_map_lookup_elem(&off_cpu, &next_tid);
	if (!o)
		return 0;
	/*
	 * Running, it is blocked no more. A stamp left here is one its switch-out wrote after the
	 * wakeup had read none: a later wakeup would measure a wait from it, and sum into the
	 * thread's blocked window while the thread, switching out on its own cpu, closes it. A
	 * wakeup that reads the stamp of this switch-out runs after it: the switch-out closes the
	 * windows before it stamps (x86 makes stores visible in order).
	 */
	o->blocked.ts = 0;
	if (!o->runnable.ts)
		return 0;
	r = &o->runnable;
	if (cw_long_enough(CW_KIND_SCHED_RUNQUEUE, now - r->ts)) {
		struct cw_task task;
		struct cw_wait wait = {
			.task = &task, .context = &r->context, .start_ns = r->ts, .end_ns = now, .preempted = r->state,
		};

		cw_task_of(&task, next);
		if (!cw_sum_wait(CW_KIND_SCHED_RUNQUEUE_SUM, &wait)) {
			e = cw_reserve(CW_KIND_SCHED_RUNQUEUE);
			if (e) {
				fill_runqueue(e, next, next_tid, r, now, h);
				cw_submit(e);
			}
		}
	}
	r->ts = 0;
	return 0;
}
