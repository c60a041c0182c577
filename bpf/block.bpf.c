// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * block.io: a request from issue to completion. The driver may be handed the
 * request by a kworker or another cpu, so the thread is the one that submitted
 * it (block_io_start runs in the submitter's context) when that is known, and
 * the issuer otherwise; the record says which.
 */
#include "common.bpf.h"

#define REQ_OP_MASK 0xff
#define REQ_OP_READ 0
#define REQ_OP_WRITE 1
#define REQ_OP_FLUSH 2
#define REQ_OP_DISCARD 3
#define MINORBITS 20

/* Who submitted a request, and the span active on it then (read in its context). */
struct submission {
	struct cw_task who;
	struct cw_span_context context;
};

struct inflight {
	__u64 ts;
	struct submission by;
	__u32 submitter;
	__u32 bytes;
	__u64 sector;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);  /* struct request * */
	__type(value, struct submission);
} submitted SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);  /* struct request * */
	__type(value, struct inflight);
} issued SEC(".maps");

SEC("tp_btf/block_io_start")
int BPF_PROG(block_io_start, struct request *rq)
{
	__u64 key = (__u64)rq;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct submission s = {};

	if (!cw_followed(tgid))
		return 0;
	cw_task_current(&s.who);
	cw_read_span_context(tgid, &s.context);
	bpf_map_update_elem(&submitted, &key, &s, BPF_ANY);
	return 0;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(block_rq_issue, struct request *rq)
{
	__u64 key = (__u64)rq;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct submission *s = bpf_map_lookup_elem(&submitted, &key);
	struct inflight f = {};

	if (s) {
		f.by = *s;
		f.submitter = 1;
		bpf_map_delete_elem(&submitted, &key);
	} else if (cw_followed(tgid)) {
		cw_task_current(&f.by.who);
		cw_read_span_context(tgid, &f.by.context);
	} else {
		return 0;
	}
	f.ts = bpf_ktime_get_ns();
	f.bytes = BPF_CORE_READ(rq, __data_len);
	f.sector = BPF_CORE_READ(rq, __sector);
	bpf_map_update_elem(&issued, &key, &f, BPF_ANY);
	return 0;
}

static __always_inline __u32 request_dev(struct request *rq)
{
	struct block_device *part = BPF_CORE_READ(rq, part);
	struct gendisk *disk;

	if (part)
		return BPF_CORE_READ(part, bd_dev);
	disk = BPF_CORE_READ(rq, q, disk);
	return ((__u32)BPF_CORE_READ(disk, major) << MINORBITS) | (__u32)BPF_CORE_READ(disk, first_minor);
}

/* The same letters as the kernel's blk_fill_rwbs, for the flags that matter here. */
static __always_inline void fill_rwbs(char *rwbs, __u32 flags)
{
	int i = 0;
	__u32 op = flags & REQ_OP_MASK;

	if (flags & (1u << bpf_core_enum_value(enum req_flag_bits, __REQ_PREFLUSH)))
		rwbs[i++] = 'F';
	if (op == REQ_OP_WRITE)
		rwbs[i++] = 'W';
	else if (op == REQ_OP_READ)
		rwbs[i++] = 'R';
	else if (op == REQ_OP_DISCARD)
		rwbs[i++] = 'D';
	else if (op == REQ_OP_FLUSH)
		rwbs[i++] = 'F';
	else
		rwbs[i++] = 'N';
	if (flags & (1u << bpf_core_enum_value(enum req_flag_bits, __REQ_FUA)))
		rwbs[i++] = 'F';
	if (flags & (1u << bpf_core_enum_value(enum req_flag_bits, __REQ_SYNC)))
		rwbs[i++] = 'S';
	if (flags & (1u << bpf_core_enum_value(enum req_flag_bits, __REQ_META)))
		rwbs[i++] = 'M';
	rwbs[i] = 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(block_rq_complete, struct request *rq, blk_status_t error)
{
	__u64 key = (__u64)rq;
	struct inflight *f = bpf_map_lookup_elem(&issued, &key);
	struct cw_event *e;
	__u64 now;

	if (!f)
		return 0;
	now = bpf_ktime_get_ns();
	if (cw_long_enough(CW_KIND_BLOCK_IO, now - f->ts)) {
		e = cw_reserve(CW_KIND_BLOCK_IO);
		if (e) {
			cw_set_task(e, &f->by.who);
			e->context = f->by.context;
			e->start_ns = f->ts;
			e->end_ns = now;
			e->u.block.sector = f->sector;
			e->u.block.bytes = f->bytes;
			e->u.block.dev = request_dev(rq);
			e->u.block.error = error;
			e->u.block.submitter = f->submitter;
			fill_rwbs(e->u.block.rwbs, BPF_CORE_READ(rq, cmd_flags));
			cw_submit(e);
		}
	}
	bpf_map_delete_elem(&issued, &key);
	return 0;
}
