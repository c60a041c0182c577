// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Process lifecycle, for the filter itself: children of followed processes
 * are followed from their fork, exits leave the filter, and every exec is
 * reported so the loader can follow by comm and look for a CUDA runtime linked
 * into the new program. A followed or GPU process's exit (its last thread's) is
 * reported too, so it leaves the sidecar's list of followed pids (a new process
 * given its pid is followed again from its spans) and the loader's of GPU
 * processes; other exits are not (there are too many to ship).
 *
 * And the mapping of a CUDA library's code by any process (and of any code by a followed process,
 * where the loader looks for an OpenTelemetry thread context), at exec or at a dlopen
 * long after start (as `import torch` loads CUDA), so the loader probes the library
 * and lists the process at once instead of rescanning every process. Syscall
 * tracepoints rather than a kernel function hook: they exist wherever the futex
 * family's do, while fentry and kprobes are missing from some kernels (microVMs).
 */
#include "common.bpf.h"

SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 parent_tgid = BPF_CORE_READ(parent, tgid);
	__u32 child_tgid = BPF_CORE_READ(child, tgid);
	__u8 one = 1;

	__s64 *offset;

	if (child_tgid == parent_tgid || !bpf_map_lookup_elem(&followed, &parent_tgid))
		return 0;
	bpf_map_update_elem(&followed, &child_tgid, &one, BPF_ANY);
	/* A forked child has its parent's memory layout, so its thread context lies where the parent's does. */
	offset = bpf_map_lookup_elem(&thread_ctx, &parent_tgid);
	if (offset)
		bpf_map_update_elem(&thread_ctx, &child_tgid, offset, BPF_ANY);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *p)
{
	__u32 tgid = p->tgid;
	__u32 tid = p->pid;
	struct cw_windows *ws = bpf_map_lookup_elem(&windows, &tid);
	struct cw_event *e;
	bool followed_one;

	bpf_map_delete_elem(&cuda_threads, &tid);
	if (ws) {
		cw_close_window(&ws->launches, 0, 0);
		cw_close_waits(ws, 0, 0);
		bpf_map_delete_elem(&windows, &tid);
	}
	/*
	 * The process ends with its last thread, not with its leader: a leader that called
	 * pthread_exit leaves the others running, still followed, and a thread that exec's kills
	 * the leader whose pid it takes. signal->live counts the threads not yet this far in
	 * do_exit (it is decremented before this tracepoint). Two threads ending at once may
	 * both read 0: the deletes below let only the first write the record.
	 */
	if (p->signal->live.counter)
		return 0;
	followed_one = !bpf_map_delete_elem(&followed, &tgid);
	bpf_map_delete_elem(&thread_ctx, &tgid);
	if (bpf_map_delete_elem(&gpu_processes, &tgid) && !followed_one)
		return 0; /* neither followed nor a GPU process */
	e = cw_reserve(CW_KIND_PROC_EXIT);
	if (!e)
		return 0;
	cw_set_task_of(e, p);
	e->start_ns = e->end_ns = bpf_ktime_get_ns();
	cw_submit(e);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *p)
{
	__u32 tgid = BPF_CORE_READ(p, tgid);
	struct cw_event *e;

	/* A new program: its CUDA use, if any, shows anew (do_mmap of its libraries comes after this). */
	bpf_map_delete_elem(&gpu_processes, &tgid);
	bpf_map_delete_elem(&cuda_threads, &tgid);
	bpf_map_delete_elem(&thread_ctx, &tgid); /* the new program's, if any, is found anew (thread_ctx.c) */
	e = cw_reserve(CW_KIND_PROC_EXEC);
	if (!e)
		return 0;
	cw_set_task_of(e, p);
	e->start_ns = e->end_ns = bpf_ktime_get_ns();
	e->u.exec.ppid = BPF_CORE_READ(p, real_parent, tgid);
	/* Not batched: the loader follows by comm from this record, before the program gets going. */
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	return 0;
}

#define PROT_EXEC 0x4

/*
 * Threads inside an mmap of code, until it returns: a CUDA library's (any process), or any
 * file's in a followed process, which may export the OpenTelemetry thread context (thread_ctx.c).
 */
struct mapping {
	__u64 ino;
	__u32 dev;
	__u8 cuda;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);  /* tid */
	__type(value, struct mapping);
} mapping_code SEC(".maps");

/* "libcuda.so*" or "libcudart.so*": the loader checks the same names when it scans a process's maps. */
static __always_inline bool is_cuda_library(const char *name)
{
	if (name[0] != 'l' || name[1] != 'i' || name[2] != 'b' || name[3] != 'c' || name[4] != 'u' ||
	    name[5] != 'd' || name[6] != 'a')
		return false;
	if (name[7] == '.')
		return name[8] == 's' && name[9] == 'o';
	return name[7] == 'r' && name[8] == 't' && name[9] == '.' && name[10] == 's' && name[11] == 'o';
}

/* mmap(addr, len, prot, flags, fd, offset): code from a CUDA library, or from any file in a followed process? */
SEC("tracepoint/syscalls/sys_enter_mmap")
int mmap_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct mapping m = {};
	struct file *file;
	char name[16] = {};
	__u32 tid = (__u32)id;

	if (!(ctx->args[2] & PROT_EXEC))
		return 0;
	file = cw_file_of((int)ctx->args[4]);
	if (!file)
		return 0;
	bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(file, f_path.dentry, d_name.name));
	m.cuda = is_cuda_library(name);
	if (!m.cuda && !cw_followed(id >> 32))
		return 0;
	m.ino = BPF_CORE_READ(file, f_inode, i_ino);
	m.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	bpf_map_update_elem(&mapping_code, &tid, &m, BPF_ANY);
	return 0;
}

/*
 * Once mapped (so the loader finds it in /proc/PID/maps): a CUDA library makes the process a GPU
 * process; other code is reported for the loader to look for a thread context in.
 */
SEC("tracepoint/syscalls/sys_exit_mmap")
int mmap_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, tgid = id >> 32;
	__u8 seen = CW_GPU_SEEN_STARTING, one = 1;
	struct mapping *m = bpf_map_lookup_elem(&mapping_code, &tid);
	struct mapping found;
	struct cw_event *e;

	if (!m)
		return 0;
	found = *m;
	bpf_map_delete_elem(&mapping_code, &tid);
	if (ctx->ret < 0 && ctx->ret > -4096)
		return 0;
	if (found.cuda) {
		/* A process already known (it mapped CUDA before capture) keeps its entry: its devices stay unknown. */
		bpf_map_update_elem(&gpu_processes, &tgid, &seen, BPF_NOEXIST);
		bpf_map_update_elem(&followed, &tgid, &one, BPF_ANY);
	}
	e = cw_reserve(found.cuda ? CW_KIND_CUDA_MAPPED : CW_KIND_CODE_MAPPED);
	if (!e)
		return 0;
	cw_set_current(e);
	e->start_ns = e->end_ns = bpf_ktime_get_ns();
	e->u.mapped.ino = found.ino;
	e->u.mapped.dev = found.dev;
	/*
	 * Not batched: the sooner a CUDA library is probed, the fewer of its first calls are missed;
	 * the sooner a thread context is found, the fewer of the first events lack it.
	 */
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	return 0;
}
