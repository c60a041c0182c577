// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * ipc.message: each send and receive of a followed process on a socket, and each read and
 * write on a pipe, with a connection id both ends compute the same way (struct cw_message). It
 * links a traced request to the process that served it (src/correlate/linked.ts) when no
 * wakeup does: on a busy event loop the reply arrives while the loop runs. sock_send_length
 * and sock_recv_length (Linux 6.3) fire for every sendmsg and recvmsg, read(2) and write(2) on
 * sockets included. A pipe's read and write functions have no tracepoint: fexit programs whose
 * target the loader picks from the kernel's BTF (attach.c), as the function names changed.
 * The process a followed one sends to on a named unix stream socket (an engine listening on
 * its socket) is followed too, as a child would be: an engine that uses no GPU is found
 * through the front end that talks to it.
 */
#include "common.bpf.h"

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define MSG_PEEK 2
#define SOCK_STREAM 1

/* An IPv6 address folded to 32 bits; a v4-mapped one (::ffff:a.b.c.d) is its IPv4 address, as the other end may see it. */
static __always_inline __u32 fold6(const struct in6_addr *a)
{
	__u32 w0 = BPF_CORE_READ(a, in6_u.u6_addr32[0]);
	__u32 w1 = BPF_CORE_READ(a, in6_u.u6_addr32[1]);
	__u32 w2 = BPF_CORE_READ(a, in6_u.u6_addr32[2]);
	__u32 w3 = BPF_CORE_READ(a, in6_u.u6_addr32[3]);

	if (w0 == 0 && w1 == 0 && w2 == __builtin_bswap32(0xffff))
		return w3;
	return w0 ^ w1 ^ w2 ^ w3;
}

/*
 * Only connections within this host can link a request to another followed process: one to
 * another host (a client, a database elsewhere) is not recorded. Within the host: to loopback
 * (127/8; ::1 folds to 1), or to the socket's own address.
 */
static __always_inline bool same_host(__u32 saddr, __u32 daddr)
{
	return saddr == daddr || (daddr & 0xff) == 127 || daddr == __builtin_bswap32(1);
}

/*
 * The listening process of a named unix stream socket we send on: the kernel's peer
 * credentials of a connected socket name the process that called listen(). A socketpair's
 * peer has no address, and is not followed (it is often the parent's stdio).
 */
static __always_inline void follow_listener(struct sock *sk, struct sock *peer)
{
	struct pid *listener;
	__u32 tgid;
	__u8 one = 1;

	if (!peer || BPF_CORE_READ(sk, sk_type) != SOCK_STREAM || !BPF_CORE_READ((struct unix_sock *)peer, addr))
		return;
	listener = BPF_CORE_READ(sk, sk_peer_pid);
	if (!listener)
		return;
	tgid = BPF_CORE_READ(listener, numbers[0].nr);
	if (tgid && !bpf_map_lookup_elem(&followed, &tgid))
		bpf_map_update_elem(&followed, &tgid, &one, BPF_NOEXIST);
}

/* One record; the connection's two ends are sorted, so both ends of it write the same pair. */
static __always_inline void submit_message(__u64 local, __u64 remote, int bytes, __u16 family, __u8 send)
{
	struct cw_event *e = cw_reserve(CW_KIND_IPC_MESSAGE);

	if (!e)
		return;
	cw_set_current(e);
	cw_read_span_context(e->pid, &e->context);
	e->start_ns = e->end_ns = bpf_ktime_get_ns();
	e->u.message.ends[0] = local < remote ? local : remote;
	e->u.message.ends[1] = local < remote ? remote : local;
	e->u.message.bytes = bytes;
	e->u.message.family = family;
	e->u.message.send = send;
	e->u.message.pad = 0;
	cw_submit(e);
}

static __always_inline void message(struct sock *sk, int ret, int flags, __u8 send)
{
	__u64 local, remote;
	__u16 family;

	if (ret <= 0 || (flags & MSG_PEEK) || !cw_followed(bpf_get_current_pid_tgid() >> 32))
		return;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_UNIX) {
		struct sock *peer = BPF_CORE_READ((struct unix_sock *)sk, peer);

		local = (__u64)sk;
		remote = (__u64)peer;
		if (send)
			follow_listener(sk, peer);
	} else if (family == AF_INET || family == AF_INET6) {
		__u32 saddr, daddr;

		if (family == AF_INET) {
			saddr = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
			daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		} else {
			saddr = fold6(&sk->__sk_common.skc_v6_rcv_saddr);
			daddr = fold6(&sk->__sk_common.skc_v6_daddr);
		}
		if (!same_host(saddr, daddr))
			return;
		local = (__u64)saddr << 16 | BPF_CORE_READ(sk, __sk_common.skc_num);
		remote = (__u64)daddr << 16 | __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	} else {
		return;
	}
	submit_message(local, remote, ret, family, send);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(ipc_send, struct sock *sk, int ret, int flags)
{
	message(sk, ret, flags, 1);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(ipc_recv, struct sock *sk, int ret, int flags)
{
	message(sk, ret, flags, 0);
	return 0;
}

/*
 * A pipe or FIFO: both ends are the one struct pipe_inode_info its files share (a FIFO's
 * too, once opened).
 */
static __always_inline void pipe_message(__u64 pipe, long ret, __u8 send)
{
	if (ret > 0)
		submit_message(pipe, pipe, ret, CW_MESSAGE_PIPE, send);
}

/*
 * The pipe functions take (struct kiocb *, struct iov_iter *) and return the bytes moved, under
 * either name. Their section names no function: the loader sets the target, or does not load them.
 */
SEC("fexit")
int BPF_PROG(pipe_read_exit, struct kiocb *iocb, struct iov_iter *to, ssize_t ret)
{
	if (cw_followed(bpf_get_current_pid_tgid() >> 32))
		pipe_message((__u64)BPF_CORE_READ(iocb, ki_filp, private_data), ret, 0);
	return 0;
}

SEC("fexit")
int BPF_PROG(pipe_write_exit, struct kiocb *iocb, struct iov_iter *from, ssize_t ret)
{
	if (cw_followed(bpf_get_current_pid_tgid() >> 32))
		pipe_message((__u64)BPF_CORE_READ(iocb, ki_filp, private_data), ret, 1);
	return 0;
}

/* Where fexit is refused: the pipe a followed thread's read or write syscall is on, from entry to exit. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);   /* tid */
	__type(value, __u64); /* struct pipe_inode_info * */
} pipe_calls SEC(".maps");

#define S_IFMT 00170000
#define S_IFIFO 0010000

/* read, readv, write, writev(fd, ...): is fd a pipe or FIFO? */
static __always_inline void pipe_call_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct file *file;
	__u64 pipe;

	if (!cw_followed(id >> 32))
		return;
	file = cw_file_of((int)ctx->args[0]);
	if (!file || (BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFIFO)
		return;
	pipe = (__u64)BPF_CORE_READ(file, private_data);
	bpf_map_update_elem(&pipe_calls, &tid, &pipe, BPF_ANY);
}

static __always_inline void pipe_call_exit(struct trace_event_raw_sys_exit *ctx, __u8 send)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *pipe = bpf_map_lookup_elem(&pipe_calls, &tid);
	__u64 found;

	if (!pipe)
		return;
	found = *pipe;
	bpf_map_delete_elem(&pipe_calls, &tid);
	pipe_message(found, ctx->ret, send);
}

/* The entry and exit programs of one syscall on a pipe. */
#define PIPE_SYSCALL(name, send)                                            \
	SEC("tracepoint/syscalls/sys_enter_" #name)                         \
	int pipe_##name##_enter(struct trace_event_raw_sys_enter *ctx)      \
	{                                                                   \
		pipe_call_enter(ctx);                                       \
		return 0;                                                   \
	}                                                                   \
	SEC("tracepoint/syscalls/sys_exit_" #name)                          \
	int pipe_##name##_return(struct trace_event_raw_sys_exit *ctx)      \
	{                                                                   \
		pipe_call_exit(ctx, send);                                  \
		return 0;                                                   \
	}

PIPE_SYSCALL(read, 0)
PIPE_SYSCALL(readv, 0)
PIPE_SYSCALL(write, 1)
PIPE_SYSCALL(writev, 1)
