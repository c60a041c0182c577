// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Process lifecycle, for the filter itself: children of followed processes
 * are followed from their fork, exits leave the filter, and every exec is
 * reported so the loader can follow by comm and look for CUDA libraries.
 */
#include "common.bpf.h"

SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 parent_tgid = BPF_CORE_READ(parent, tgid);
	__u32 child_tgid = BPF_CORE_READ(child, tgid);
	__u8 one = 1;

	if (child_tgid != parent_tgid && bpf_map_lookup_elem(&followed, &parent_tgid))
		bpf_map_update_elem(&followed, &child_tgid, &one, BPF_ANY);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *p)
{
	__u32 tgid = BPF_CORE_READ(p, tgid);

	if (BPF_CORE_READ(p, pid) == tgid)
		bpf_map_delete_elem(&followed, &tgid);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *p)
{
	struct cw_event *e = cw_reserve(CW_KIND_PROC_EXEC);

	if (!e)
		return 0;
	cw_set_task_of(e, p);
	e->start_ns = e->end_ns = bpf_ktime_get_ns();
	e->u.exec.ppid = BPF_CORE_READ(p, real_parent, tgid);
	/* Not batched: the loader follows by comm from this record, before the program gets going. */
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	return 0;
}
