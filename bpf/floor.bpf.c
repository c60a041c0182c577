// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The benchmark's floor: an empty program (return 0) on every attach point the loader uses,
 * with the same attach types (uprobe, tp_btf, syscall tracepoint, fexit) and as many programs
 * per point (sched_waking and sock_send_length have two each there). What a workload pays
 * with these attached is the cost of the hooks themselves, a uprobe's trap above all, which
 * any probe on these points pays whatever it does (floor.c attaches them; test/bench uses it).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define EMPTY(section, name)         \
	SEC(section)                  \
	int name(void *ctx)           \
	{                             \
		return 0;             \
	}

/* cuda.bpf.c: attached per entry point by floor.c */
EMPTY("uprobe", cuda_enter)
EMPTY("uretprobe", cuda_exit)

/* proc.bpf.c */
EMPTY("tp_btf/sched_process_fork", process_fork)
EMPTY("tp_btf/sched_process_exit", process_exit)
EMPTY("tp_btf/sched_process_exec", process_exec)
EMPTY("tracepoint/syscalls/sys_enter_mmap", mmap_enter)
EMPTY("tracepoint/syscalls/sys_exit_mmap", mmap_exit)

/* irq.bpf.c */
EMPTY("tp_btf/irq_handler_entry", irq_entry)
EMPTY("tp_btf/irq_handler_exit", irq_exit)
EMPTY("tp_btf/hrtimer_expire_entry", hrtimer_entry)
EMPTY("tp_btf/hrtimer_expire_exit", hrtimer_exit)
EMPTY("tp_btf/csd_function_entry", csd_entry)
EMPTY("tp_btf/csd_function_exit", csd_exit)
EMPTY("tp_btf/softirq_entry", softirq_entry)
EMPTY("tp_btf/softirq_exit", softirq_exit)

/* sched.bpf.c */
EMPTY("tp_btf/sched_waking", sched_waking)
EMPTY("tp_btf/sched_wakeup_new", sched_wakeup_new)
EMPTY("tp_btf/sched_switch", sched_switch)

/* futex.bpf.c */
EMPTY("tracepoint/syscalls/sys_enter_futex", futex_enter)
EMPTY("tp_btf/sched_waking", futex_waking)
EMPTY("tracepoint/syscalls/sys_exit_futex", futex_exit)

/* block.bpf.c: block_io_start only where the kernel has it (floor.c) */
EMPTY("tp_btf/block_io_start", block_io_start)
EMPTY("tp_btf/block_rq_issue", block_rq_issue)
EMPTY("tp_btf/block_rq_complete", block_rq_complete)

/* tcp.bpf.c */
EMPTY("tp_btf/sock_send_length", tcp_send_length)
EMPTY("tp_btf/inet_sock_set_state", tcp_set_state)
EMPTY("tp_btf/tcp_retransmit_skb", tcp_retransmit)

/* ipc.bpf.c: pipes by fexit or by the syscalls, as the loader chooses (floor.c) */
EMPTY("tp_btf/sock_send_length", ipc_send_length)
EMPTY("tp_btf/sock_recv_length", ipc_recv_length)
EMPTY("fexit", pipe_read_exit)
EMPTY("fexit", pipe_write_exit)
EMPTY("tracepoint/syscalls/sys_enter_read", pipe_read_enter)
EMPTY("tracepoint/syscalls/sys_exit_read", pipe_read_return)
EMPTY("tracepoint/syscalls/sys_enter_readv", pipe_readv_enter)
EMPTY("tracepoint/syscalls/sys_exit_readv", pipe_readv_return)
EMPTY("tracepoint/syscalls/sys_enter_write", pipe_write_enter)
EMPTY("tracepoint/syscalls/sys_exit_write", pipe_write_return)
EMPTY("tracepoint/syscalls/sys_enter_writev", pipe_writev_enter)
EMPTY("tracepoint/syscalls/sys_exit_writev", pipe_writev_return)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
