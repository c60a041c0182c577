/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What every probe family shares: the ring buffer, the followed pids, the
 * per-kind thresholds and drop counters, how deep each cpu is in interrupt
 * work (for wakers), the GPU processes and their threads' CUDA state. Each
 * NAME.bpf.c declares these maps;
 * the loader creates them once (in the first object it loads) and hands the
 * same fds to the others, so all programs write one ring and read one filter.
 */
#ifndef CAUSEWAY_COMMON_BPF_H
#define CAUSEWAY_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "causeway.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* the loader resizes it from --ringbuf-mb */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CW_MAX_FOLLOWED);
	__type(key, __u32);   /* tgid */
	__type(value, __u8);
} followed SEC(".maps");

/* Processes using CUDA, as enum cw_gpu_process: followed whatever the filter, and told apart on exit. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);   /* tgid */
	__type(value, __u8);
} gpu_processes SEC(".maps");

#define CW_CUDA_NARGS 9 /* six argument registers, then three stack slots */

/*
 * A thread's CUDA state, one map lookup per probe (cuda.bpf.c): the call in progress (its
 * arguments, saved at entry for the exit), the device its calls go to, and its poll of
 * unfinished work. Shared so that a thread's exit clears it (proc.bpf.c).
 */
struct cw_cuda_thread {
	__u64 ts;                   /* entry of the call in progress */
	__u64 arg[CW_CUDA_NARGS];
	__u32 api;                  /* the call's cookie; 0 when none is in progress */
	__s32 device;               /* as cudaSetDevice or the current context said, if device_set */
	__u32 device_set;
	__u32 polls;                /* queries of the poll so far; 0 when not polling */
	__u64 poll_first_ns;        /* entry of its first not-ready query */
	__u64 poll_handle;          /* the event or stream polled */
	__u32 poll_api;
	__u32 launches_closed;      /* its launch window is closed (cw_close_launches); 0: it may be open */
	struct cw_span_context context; /* the span active at the call's entry */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);   /* tid */
	__type(value, struct cw_cuda_thread);
} cuda_threads SEC(".maps");

/* Per kind, records not written: [kind] the ring was full, [CW_SHED + kind] told to shed. */
#define CW_SHED CW_KIND_MAX

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * CW_KIND_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cw_settings);
} settings SEC(".maps");

static __always_inline struct cw_settings *cw_settings(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&settings, &zero);
}

/*
 * Processes that publish their active span (OTEP 4947 thread context), by where the thread's
 * pointer to its record lies: at the thread pointer (x86_64: fsbase) plus this offset. Written by
 * the loader (thread_ctx.c); a pid without an entry is not read, at the cost of one lookup.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CW_MAX_FOLLOWED);
	__type(key, __u32);   /* tgid */
	__type(value, __s64); /* the TLS variable otel_thread_ctx_v1, from the thread pointer */
} thread_ctx SEC(".maps");

/*
 * OpenTelemetry eBPF Instrumentation's (OBI) current trace context per thread, keyed by
 * pid_tgid: the loader reuses OBI's pinned map when there is one (<bpffs>/otel/traces_ctx_v1,
 * attach.c), of the same definition; otherwise this map stays empty and is never read.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 14);
	__type(key, __u64);   /* pid_tgid */
	__type(value, struct cw_span_context);
} traces_ctx_v1 SEC(".maps");

/* The current thread's context in OBI's map, if the loader found it. */
static __always_inline void cw_read_obi_context(const struct cw_settings *cfg, struct cw_span_context *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct cw_span_context *found;

	if (!cfg->obi_traces_ctx)
		return;
	found = bpf_map_lookup_elem(&traces_ctx_v1, &id);
	if (found)
		*ctx = *found;
}

/*
 * The span active on the current task now, read from its published record into ctx (left as it
 * is when there is none); failing that, from OBI's map. Called only in the task's own context (a uprobe, a syscall entry, the
 * task switching out): the task is not running its user code meanwhile, so the record cannot
 * change under the read, and bpf_probe_read_user reads this task's memory. Until some process
 * publishes a context (settings.thread_ctx), the thread_ctx map is empty and not looked in: its
 * lookup was about 30 ns of every CUDA call's entry probe.
 */
static __always_inline void cw_read_span_context(__u32 tgid, struct cw_span_context *ctx)
{
	struct cw_settings *cfg = cw_settings();
#if defined(__TARGET_ARCH_x86) /* the loader resolves offsets on x86_64 only (thread_ctx.c) */
	struct cw_otel_thread_ctx_record record;
	struct task_struct *task;
	__u64 pointer = 0;
	__s64 *offset;
#endif

	if (!cfg)
		return;
#if defined(__TARGET_ARCH_x86)
	offset = cfg->thread_ctx ? bpf_map_lookup_elem(&thread_ctx, &tgid) : NULL;
	if (!offset)
		goto obi;
	task = (struct task_struct *)bpf_get_current_task();
	if (bpf_probe_read_user(&pointer, sizeof(pointer), (void *)(BPF_CORE_READ(task, thread.fsbase) + *offset)) ||
	    !pointer)
		goto obi;
	if (bpf_probe_read_user(&record, sizeof(record), (void *)pointer) || record.valid != 1)
		goto obi;
	*ctx = record.ids;
	return;
obi:
#endif
	cw_read_obi_context(cfg, ctx);
}

/* Two contexts are the same span (both empty included). */
static __always_inline bool cw_same_span(const struct cw_span_context *a, const struct cw_span_context *b)
{
	__u64 x[3], y[3];

	__builtin_memcpy(x, a, sizeof(x));
	__builtin_memcpy(y, b, sizeof(y));
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2];
}

static __always_inline bool cw_followed(__u32 tgid)
{
	struct cw_settings *cfg = cw_settings();

	if (cfg && cfg->follow_all)
		return tgid != 0 && tgid != cfg->exclude[0] && tgid != cfg->exclude[1]; /* nor the idle task */
	return bpf_map_lookup_elem(&followed, &tgid) != NULL;
}

static __always_inline bool cw_long_enough(__u32 kind, __u64 duration_ns)
{
	struct cw_settings *cfg = cw_settings();

	if (!cfg || kind >= CW_KIND_MAX)
		return true;
	return duration_ns >= cfg->min_ns[kind];
}

/*
 * The entry of key in map, made from init if it has none (libbpf-tools' bpf_map_lookup_or_try_init);
 * NULL when the map cannot take one.
 */
static __always_inline void *cw_lookup_or_init(void *map, const void *key, const void *init)
{
	void *value = bpf_map_lookup_elem(map, key);

	if (value)
		return value;
	bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, key);
}

/* Counts n records not written in slot `slot` of the drops map (a kind, or CW_SHED + kind). */
static __always_inline void cw_count_drops(__u32 slot, __u64 n)
{
	__u64 *dropped = bpf_map_lookup_elem(&drops, &slot);

	if (dropped)
		*dropped += n;
}

/*
 * The DESIGN kinds; bookkeeping records (a kernel's name, an exec, a library mapped) are never
 * shed, nor are the reduction's summaries: they are already the reduced form of many events.
 */
static __always_inline bool cw_sheddable(__u32 kind)
{
	return (kind >= CW_KIND_CUDA_LAUNCH && kind <= CW_KIND_TCP_RETRANSMIT) || kind == CW_KIND_IPC_MESSAGE;
}

/*
 * Reserve a record, or count why not: a full ring and shedding are never silent. Shedding is
 * decided here, after the probe's own bookkeeping (a thread's call in progress, its switch-out
 * time), so that the state the next record needs stays right while records are shed.
 */
static __always_inline struct cw_event *cw_reserve(__u32 kind)
{
	struct cw_settings *cfg = cw_settings();
	struct cw_event *e;

	if (cfg && cfg->shed && cw_sheddable(kind)) {
		cw_count_drops(CW_SHED + kind, 1);
		return NULL;
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		cw_count_drops(kind, 1);
		return NULL;
	}
	e->kind = kind;
	e->api = 0;
	e->cpu = bpf_get_smp_processor_id();
	__builtin_memset(&e->context, 0, sizeof(e->context));
	return e;
}

/*
 * Wake the loader only when a quarter of the ring waits: when this record takes what waits past
 * a multiple of a quarter. Otherwise its poll, at least every 10 ms (loader.c), finds the
 * records: it keeps up with the ring as long as a quarter of it (4 MiB at the default 16 MiB,
 * about 22k records) lasts longer than that, which holds to about 2 million records a second.
 * A wakeup costs the traced thread an interrupt: once per record, the loader ran on the traced
 * thread's CPU after nearly every event, preempting the very threads it traces; once per 64 KiB
 * waiting, a graph launch's probe still took 250 ns where it takes 150 without
 * (test/bench/HISTORY.md, "Where the rest of a written record's cost went"). A crossing two
 * CPUs' records hide from each other wakes nobody: the poll reads them.
 */
static __always_inline void cw_submit(struct cw_event *e)
{
	__u64 quarter = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE) / 4;
	/* What waits, this record and its header included, and what waited before it. */
	__u64 pending = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u64 record = BPF_RINGBUF_HDR_SZ + sizeof(*e);
	__u64 before = pending > record ? pending - record : 0;
	bool crossed = quarter && pending / quarter != before / quarter;

	bpf_ringbuf_submit(e, crossed ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

/*
 * In-kernel reduction: per thread, a window of its launches (cuda.bpf.c) and one each of its
 * short run-queue waits, blocked waits (sched.bpf.c) and futex waits (futex.bpf.c). The event
 * that opens a window is written whole, at once: a thread that launches or waits now and then
 * gets the same records as without reduction, as promptly. The events after it in the window are
 * summed into the summary record being built (a whole struct cw_event, so writing it out is one
 * copy). A window closes when the thread makes a record it must precede (a launch window: any
 * other CUDA call), when it is cw_settings.window_ns old at the thread's next event or
 * switch-out, when an event of another span comes (cw_same_span), and when the thread exits; a
 * launch window also when its thread blocks (sched.bpf.c). A thread that finds the table full
 * has its records written whole.
 *
 * A thread's windows are one entry, kept from its first window until it exits (proc.bpf.c
 * deletes it): a window opens and closes in place, so the hot path (a launch between two sleeps
 * opens one, the sleep closes it) costs a lookup, where inserting and deleting an entry cost
 * ten times as much, and a switch-out looks up one entry rather than one per window.
 */
#define CW_WINDOWS 16384

struct cw_window {
	struct cw_event summary;  /* kind 0: closed; start_ns: the first event summed; count 0 until one is */
	__u64 opened_ns;          /* when the event that opened it began */
};

struct cw_windows {
	struct cw_window launches;
	struct cw_window runqueue;
	struct cw_window blocked;
	struct cw_window futex;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CW_WINDOWS);
	__type(key, __u32);   /* tid */
	__type(value, struct cw_windows);
} windows SEC(".maps");

/* What a thread's entry starts from: every window closed. */
static const struct cw_windows cw_no_windows;

static __always_inline __u64 cw_window_ns(void)
{
	struct cw_settings *cfg = cw_settings();

	return cfg ? cfg->window_ns : 0;
}

/* The kind of the events a summary kind sums. */
static __always_inline __u32 cw_summed_kind(__u32 summary_kind)
{
	switch (summary_kind) {
	case CW_KIND_CUDA_LAUNCHES:
		return CW_KIND_CUDA_LAUNCH;
	case CW_KIND_SCHED_RUNQUEUE_SUM:
		return CW_KIND_SCHED_RUNQUEUE;
	case CW_KIND_SCHED_BLOCKED_SUM:
		return CW_KIND_SCHED_BLOCKED;
	default:
		return CW_KIND_FUTEX_WAIT;
	}
}

/* How many events a summary stands for: launches have their own layout, waits share one. */
static __always_inline __u32 cw_summed(const struct cw_event *summary)
{
	return summary->kind == CW_KIND_CUDA_LAUNCHES ? summary->u.launches.count : summary->u.wait_sum.count;
}

/*
 * Writes a window's summary out, if it summed anything. A full ring counts the summary, and the
 * events it stood for under their own kind too.
 */
static __always_inline void cw_write_window(const struct cw_window *w)
{
	__u32 n = cw_summed(&w->summary);
	struct cw_event *e;

	if (n == 0)
		return;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		cw_count_drops(w->summary.kind, 1);
		cw_count_drops(cw_summed_kind(w->summary.kind), n);
		return;
	}
	__builtin_memcpy(e, &w->summary, sizeof(*e));
	cw_submit(e);
}

/* Ends window `w`: written, then closed. */
static __always_inline void cw_end_window(struct cw_window *w)
{
	cw_write_window(w);
	w->summary.kind = 0;
}

/* Closes window `w`, if it is open and at least `min_age_ns` old. */
static __always_inline void cw_close_window(struct cw_window *w, __u64 now, __u64 min_age_ns)
{
	if (w->summary.kind && now - w->opened_ns >= min_age_ns)
		cw_end_window(w);
}

/* Closes the thread's wait windows that are at least `min_age_ns` old (0: all of them). */
static __always_inline void cw_close_waits(struct cw_windows *ws, __u64 now, __u64 min_age_ns)
{
	cw_close_window(&ws->runqueue, now, min_age_ns);
	cw_close_window(&ws->blocked, now, min_age_ns);
	cw_close_window(&ws->futex, now, min_age_ns);
}

/*
 * Closes the thread's launch window, if it may have one open: not when it closed it itself and
 * no launch has opened one since (sum_launch clears launches_closed), which spares a map lookup
 * on each call an engine makes between launches (its event records, syncs and copies).
 */
static __always_inline void cw_close_launches(struct cw_cuda_thread *t, __u32 tid)
{
	struct cw_windows *ws;

	if (t->launches_closed)
		return;
	ws = bpf_map_lookup_elem(&windows, &tid);
	if (ws)
		cw_close_window(&ws->launches, 0, 0);
	t->launches_closed = 1;
}

/* The thread's windows, made (all closed) if it has none; NULL when the table is full. */
static __always_inline struct cw_windows *cw_windows_of(__u32 tid)
{
	return cw_lookup_or_init(&windows, &tid, &cw_no_windows);
}

/* Opens the closed window `w` of kind `kind` (a summary kind), empty. */
static __always_inline void cw_open_window(struct cw_window *w, __u32 kind)
{
	__builtin_memset(w, 0, sizeof(*w));
	w->summary.kind = kind;
}

/*
 * t is a tp_btf argument, a pointer the verifier trusts: its fields are read by plain loads
 * (CO-RE relocated), not a bpf_probe_read_kernel call each. The kernel keeps comm NUL-padded.
 */
static __always_inline void cw_task_of(struct cw_task *dst, struct task_struct *t)
{
	dst->pid = t->tgid;
	dst->tid = t->pid;
	__builtin_memcpy(dst->comm, t->comm, sizeof(dst->comm));
}

static __always_inline void cw_task_current(struct cw_task *dst)
{
	__u64 id = bpf_get_current_pid_tgid();

	dst->pid = id >> 32;
	dst->tid = (__u32)id;
	bpf_get_current_comm(&dst->comm, sizeof(dst->comm));
}

/*
 * Per cpu: how deep it is in interrupt work (irq.bpf.c counts handler, timer, IPI and softirq
 * entries and exits). A wakeup there comes from no task: the current task is whatever the
 * interrupt landed on.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} interrupt_depth SEC(".maps");

static __always_inline bool cw_in_interrupt(void)
{
	__u32 zero = 0;
	__u32 *depth = bpf_map_lookup_elem(&interrupt_depth, &zero);

	return depth && *depth > 0;
}

/*
 * The task that wakes another: the current one, or none (pid 0) when the wakeup comes from
 * interrupt work, so that a timer or a disk completion is never blamed on the task it landed on.
 */
static __always_inline void cw_task_waking(struct cw_task *dst)
{
	if (cw_in_interrupt()) {
		__builtin_memset(dst, 0, sizeof(*dst));
		__builtin_memcpy(dst->comm, "[interrupt]", sizeof("[interrupt]"));
		return;
	}
	cw_task_current(dst);
}

/* The record's own task: the one that waited, issued or called. */
static __always_inline void cw_set_task(struct cw_event *e, const struct cw_task *t)
{
	e->pid = t->pid;
	e->tid = t->tid;
	__builtin_memcpy(e->comm, t->comm, sizeof(e->comm));
}

static __always_inline void cw_set_task_of(struct cw_event *e, struct task_struct *t)
{
	struct cw_task task;

	cw_task_of(&task, t);
	cw_set_task(e, &task);
}

static __always_inline void cw_set_current(struct cw_event *e)
{
	struct cw_task task;

	cw_task_current(&task);
	cw_set_task(e, &task);
}

/* One wait of a thread, as the summing below needs it. */
struct cw_wait {
	const struct cw_task *task;            /* who waited */
	const struct cw_span_context *context; /* the span it waited in */
	const struct cw_task *waker;           /* who ended it; NULL: none is known (run-queue waits) */
	__u64 start_ns;
	__u64 end_ns;
	__u32 preempted;                       /* a run-queue wait that began with a preemption */
};

/*
 * Sums a wait into its thread's window of `kind` (CW_KIND_SCHED_RUNQUEUE_SUM,
 * CW_KIND_SCHED_BLOCKED_SUM or CW_KIND_FUTEX_WAIT_SUM), closing the window first if it is old
 * or of another span: a summary never mixes two spans. False: write it whole (reduction off, a
 * wait at least the kind's threshold long, a full table, or the wait that opens a window).
 */
static __always_inline bool cw_sum_wait(__u32 kind, const struct cw_wait *wait)
{
	struct cw_settings *cfg = cw_settings();
	__u64 ns = wait->end_ns - wait->start_ns;
	struct cw_wait_sum *sum;
	struct cw_windows *ws;
	struct cw_window *w;

	if (!cfg || !cfg->window_ns ||
	    ns >= (kind == CW_KIND_SCHED_RUNQUEUE_SUM ? cfg->runqueue_whole_ns : cfg->wait_whole_ns))
		return false;
	ws = cw_windows_of(wait->task->tid);
	if (!ws)
		return false;
	switch (kind) {
	case CW_KIND_SCHED_RUNQUEUE_SUM:
		w = &ws->runqueue;
		break;
	case CW_KIND_SCHED_BLOCKED_SUM:
		w = &ws->blocked;
		break;
	default:
		w = &ws->futex;
		break;
	}
	if (w->summary.kind &&
	    (wait->end_ns - w->opened_ns >= cfg->window_ns || !cw_same_span(&w->summary.context, wait->context)))
		cw_end_window(w);
	if (!w->summary.kind) {
		cw_open_window(w, kind);
		w->opened_ns = wait->start_ns;
		w->summary.cpu = bpf_get_smp_processor_id();
		cw_set_task(&w->summary, wait->task);
		w->summary.context = *wait->context;
		return false;
	}
	sum = &w->summary.u.wait_sum;
	if (sum->count == 0)
		w->summary.start_ns = wait->start_ns;
	w->summary.end_ns = wait->end_ns;
	sum->count++;
	sum->wait_ns += ns;
	if (ns >= sum->max_ns) {
		sum->max_ns = ns;
		if (wait->waker)
			sum->waker = *wait->waker;
	}
	sum->preempted += wait->preempted;
	return true;
}

/* The file behind the calling task's descriptor fd, or NULL. */
static __always_inline struct file *cw_file_of(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **files;
	struct file *file = NULL;

	if (!fdt || fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	files = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&file, sizeof(file), &files[fd]);
	return file;
}

#endif /* CAUSEWAY_COMMON_BPF_H */
