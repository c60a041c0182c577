// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Interrupt work, for the wakeups that happen in it: a timer firing, a device completing I/O,
 * a function call from another cpu. Each cpu counts how deep it is in such work
 * (interrupt_depth, common.bpf.h); a sched_waking seen there names no waking task, because the
 * current task is only the one the interrupt landed on. Network softirqs are not counted: on
 * loopback they run in the sending task's own context, and that task is the waker.
 */
#include "common.bpf.h"

#define NET_TX_SOFTIRQ 2
#define NET_RX_SOFTIRQ 3

static __always_inline void enter(void)
{
	__u32 zero = 0;
	__u32 *depth = bpf_map_lookup_elem(&interrupt_depth, &zero);

	if (depth)
		*depth += 1;
}

static __always_inline void leave(void)
{
	__u32 zero = 0;
	__u32 *depth = bpf_map_lookup_elem(&interrupt_depth, &zero);

	/* An exit whose entry came before the program was attached finds 0. */
	if (depth && *depth > 0)
		*depth -= 1;
}

static __always_inline bool is_network(unsigned int vec)
{
	return vec == NET_TX_SOFTIRQ || vec == NET_RX_SOFTIRQ;
}

SEC("tp_btf/irq_handler_entry")
int BPF_PROG(irq_handler_entry)
{
	enter();
	return 0;
}

SEC("tp_btf/irq_handler_exit")
int BPF_PROG(irq_handler_exit)
{
	leave();
	return 0;
}

SEC("tp_btf/hrtimer_expire_entry")
int BPF_PROG(hrtimer_expire_entry)
{
	enter();
	return 0;
}

SEC("tp_btf/hrtimer_expire_exit")
int BPF_PROG(hrtimer_expire_exit)
{
	leave();
	return 0;
}

SEC("tp_btf/csd_function_entry")
int BPF_PROG(csd_function_entry)
{
	enter();
	return 0;
}

SEC("tp_btf/csd_function_exit")
int BPF_PROG(csd_function_exit)
{
	leave();
	return 0;
}

SEC("tp_btf/softirq_entry")
int BPF_PROG(softirq_entry, unsigned int vec)
{
	if (!is_network(vec))
		enter();
	return 0;
}

SEC("tp_btf/softirq_exit")
int BPF_PROG(softirq_exit, unsigned int vec)
{
	if (!is_network(vec))
		leave();
	return 0;
}
