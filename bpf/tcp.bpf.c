// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcp.retransmit: retransmits run in softirq or timer context, so the task
 * that owns the socket is remembered from process context (the last sender,
 * or the connecting task) and looked up when the retransmit fires.
 */
#include "common.bpf.h"

#define AF_INET 2
#define AF_INET6 10
#define TCP_SYN_SENT 2
#define TCP_CLOSE 7

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);  /* struct sock * */
	__type(value, struct cw_task);
} owners SEC(".maps");

static __always_inline void remember_owner(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct cw_task t;

	if (!cw_followed(bpf_get_current_pid_tgid() >> 32))
		return;
	cw_task_current(&t);
	bpf_map_update_elem(&owners, &key, &t, BPF_ANY);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(sock_send_length, struct sock *sk)
{
	remember_owner(sk);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	__u64 key = (__u64)sk;

	if (newstate == TCP_SYN_SENT)
		remember_owner(sk);
	else if (newstate == TCP_CLOSE)
		bpf_map_delete_elem(&owners, &key);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit_skb, const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct cw_task *owner = bpf_map_lookup_elem(&owners, &key);
	struct cw_settings *cfg = cw_settings();
	struct cw_event *e;
	__u16 family;

	if (!owner && !(cfg && cfg->follow_all))
		return 0;
	e = cw_reserve(CW_KIND_TCP_RETRANSMIT);
	if (!e)
		return 0;
	if (owner) {
		cw_set_task(e, owner);
		e->u.tcp.owner_known = 1;
	} else {
		__builtin_memset(e->comm, 0, sizeof(e->comm));
		e->pid = 0;
		e->tid = 0;
		e->u.tcp.owner_known = 0;
	}
	e->start_ns = e->end_ns = bpf_ktime_get_ns();
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->u.tcp.family = family;
	e->u.tcp.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->u.tcp.dport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	e->u.tcp.state = BPF_CORE_READ(sk, __sk_common.skc_state);
	__builtin_memset(e->u.tcp.saddr, 0, sizeof(e->u.tcp.saddr));
	__builtin_memset(e->u.tcp.daddr, 0, sizeof(e->u.tcp.daddr));
	if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&e->u.tcp.saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->u.tcp.daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		BPF_CORE_READ_INTO((__u32 *)e->u.tcp.saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)e->u.tcp.daddr, sk, __sk_common.skc_daddr);
	}
	cw_submit(e);
	return 0;
}
