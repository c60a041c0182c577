// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * CUDA runtime and driver calls. Two programs serve every entry point: the
 * uprobe saves the raw argument registers and stack slots, the uretprobe turns
 * them into a record according to the entry point, which the loader passes as
 * the bpf cookie. Not filtered by pid: the GPU is shared, and the other users
 * are the culprits of contention.
 *
 * Some calls make no record of their own: cudaSetDevice and the driver's context
 * calls only set the device that the thread's later records carry, and a query
 * that finds the GPU still busy (cudaEventQuery, cudaStreamQuery and the driver's
 * cuEventQuery, cuStreamQuery returning not-ready) only starts or extends the
 * thread's poll: the query that finds the work done ends it with one cuda.sync
 * record, from the first not-ready query to completion, so a spinning thread costs
 * one record per wait rather than one per query. A query of another handle, or any
 * other CUDA call in between, abandons the poll: that thread was not just spinning.
 *
 * CUDA records are never dropped for being short (the per-kind thresholds are for the
 * scheduler's volume): even a short sync tells user space which work has completed.
 *
 * Arguments follow the x86-64 SysV ABI: a dim3 (12 bytes) travels in two
 * registers (x | y << 32, then z), and what does not fit in the six argument
 * registers sits on the stack above the return address.
 */
#include "common.bpf.h"

#define NARGS 9 /* six registers, then three stack slots */

struct call {
	__u64 ts;
	__u64 arg[NARGS];
	__u32 api; /* the cookie: enum cw_cuda_api, with CW_API_PER_THREAD for a _ptsz variant */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);  /* tid */
	__type(value, struct call);
} calls SEC(".maps");

/* A thread polling unfinished work: since when, on what, how many queries so far. */
struct poll {
	__u64 first_ns;
	__u64 handle;
	__u32 api;
	__u32 polls;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);  /* tid */
	__type(value, struct poll);
} polls SEC(".maps");

struct context_key {
	__u32 tgid;
	__u32 pad;
	__u64 ctx;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct context_key);
	__type(value, __s32); /* its device */
} context_device SEC(".maps");

/* cudaLaunchConfig_t, as the runtime lays it out */
struct launch_config {
	__u32 grid[3];
	__u32 block[3];
	__u64 shared_mem;
	__u64 stream;
};

/* CUlaunchConfig, as the driver lays it out */
struct cu_launch_config {
	__u32 grid[3];
	__u32 block[3];
	__u32 shared_mem;
	__u32 pad;
	__u64 stream;
};

SEC("uprobe")
int cuda_enter(struct pt_regs *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 sp = PT_REGS_SP(ctx);
	struct call c = {};

	/* A runtime call that enters the driver: the outer call alone is the event. */
	if (bpf_map_lookup_elem(&calls, &tid))
		return 0;
	c.api = (__u32)bpf_get_attach_cookie(ctx);
	c.arg[0] = PT_REGS_PARM1(ctx);
	c.arg[1] = PT_REGS_PARM2(ctx);
	c.arg[2] = PT_REGS_PARM3(ctx);
	c.arg[3] = PT_REGS_PARM4(ctx);
	c.arg[4] = PT_REGS_PARM5(ctx);
	c.arg[5] = ctx->r9; /* PT_REGS_PARM6 needs libbpf 1.2 */
	bpf_probe_read_user(&c.arg[6], 3 * sizeof(__u64), (void *)(sp + 8));
	c.ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&calls, &tid, &c, BPF_ANY);
	return 0;
}

static __always_inline void dim3_from_regs(__u32 *dim, __u64 xy, __u64 z)
{
	dim[0] = (__u32)xy;
	dim[1] = (__u32)(xy >> 32);
	dim[2] = (__u32)z;
}

/* The record kind of an entry point; 0 for the calls that make none of their own. */
static __always_inline __u32 kind_of(__u32 api)
{
	switch (api) {
	case CW_API_cudaLaunchKernel:
	case CW_API_cudaLaunchKernelExC:
	case CW_API_cuLaunchKernel:
	case CW_API_cuLaunchKernelEx:
	case CW_API_cudaGraphLaunch:
	case CW_API_cuGraphLaunch:
		return CW_KIND_CUDA_LAUNCH;
	case CW_API_cudaStreamSynchronize:
	case CW_API_cudaDeviceSynchronize:
	case CW_API_cudaEventSynchronize:
	case CW_API_cuCtxSynchronize:
	case CW_API_cuStreamSynchronize:
	case CW_API_cuEventSynchronize:
		return CW_KIND_CUDA_SYNC;
	case CW_API_cudaMalloc:
	case CW_API_cudaFree:
		return CW_KIND_CUDA_MALLOC;
	case CW_API___cudaRegisterFunction:
	case CW_API_cuModuleGetFunction:
		return CW_KIND_CUDA_REGISTER;
	case CW_API_cudaStreamBeginCapture:
	case CW_API_cudaStreamEndCapture:
	case CW_API_cudaGraphInstantiate:
	case CW_API_cuStreamBeginCapture:
	case CW_API_cuStreamEndCapture:
	case CW_API_cuGraphInstantiate:
	case CW_API_cudaEventRecord:
	case CW_API_cudaStreamWaitEvent:
	case CW_API_cuEventRecord:
	case CW_API_cuStreamWaitEvent:
		return CW_KIND_CUDA_OP;
	case CW_API_cudaMemcpy:
	case CW_API_cudaMemcpyAsync:
	case CW_API_cuMemcpy:
	case CW_API_cuMemcpyAsync:
	case CW_API_cuMemcpyHtoD:
	case CW_API_cuMemcpyDtoH:
	case CW_API_cuMemcpyDtoD:
	case CW_API_cuMemcpyHtoDAsync:
	case CW_API_cuMemcpyDtoHAsync:
		return CW_KIND_CUDA_MEMCPY;
	default:
		return 0;
	}
}

/* The device of the calling thread's CUDA work. */
static __always_inline __s32 current_device(__u32 tid, __u32 tgid)
{
	__s32 *device = bpf_map_lookup_elem(&thread_device, &tid);
	__u8 *gpu;

	if (device)
		return *device;
	/* A thread that never chose one is on device 0, if the process started using CUDA under our eyes. */
	gpu = bpf_map_lookup_elem(&gpu_processes, &tgid);
	return gpu && *gpu == CW_GPU_SEEN_STARTING ? 0 : CW_DEVICE_UNKNOWN;
}

static __always_inline void set_thread_device(__u32 tid, __s32 device)
{
	bpf_map_update_elem(&thread_device, &tid, &device, BPF_ANY);
}

/* cudaSetDevice and the driver's context calls: the device of the thread's later calls. */
static __always_inline void note_device(__u32 api, struct call *c, __u32 tgid, __u32 tid)
{
	struct context_key key = { .tgid = tgid };
	__s32 device, *known;

	switch (api) {
	case CW_API_cudaSetDevice: /* (int device) */
		set_thread_device(tid, (__s32)c->arg[0]);
		break;
	case CW_API_cuCtxCreate: /* (CUcontext *pctx, unsigned flags, CUdevice dev): made current */
	case CW_API_cuDevicePrimaryCtxRetain: /* (CUcontext *pctx, CUdevice dev) */
		device = (__s32)(api == CW_API_cuCtxCreate ? c->arg[2] : c->arg[1]);
		if (bpf_probe_read_user(&key.ctx, sizeof(key.ctx), (void *)c->arg[0]))
			break;
		bpf_map_update_elem(&context_device, &key, &device, BPF_ANY);
		if (api == CW_API_cuCtxCreate)
			set_thread_device(tid, device);
		break;
	case CW_API_cuCtxSetCurrent: /* (CUcontext ctx): a context made before the probes is on an unknown device */
		key.ctx = c->arg[0];
		known = bpf_map_lookup_elem(&context_device, &key);
		set_thread_device(tid, known ? *known : CW_DEVICE_UNKNOWN);
		break;
	}
}

/*
 * A query: not ready starts or extends the thread's poll of that handle; done ends it
 * with a cuda.sync record. A query done at once was no wait, and makes no record.
 */
static __always_inline void on_query(struct call *c, long ret, __u32 tgid, __u32 tid)
{
	struct poll *p = bpf_map_lookup_elem(&polls, &tid);
	bool same = p && p->handle == c->arg[0] && p->api == c->api;
	struct cw_event *e;
	__u64 now;

	if (ret == CW_NOT_READY) {
		struct poll fresh = { .first_ns = c->ts, .handle = c->arg[0], .api = c->api, .polls = 1 };

		if (same)
			p->polls++;
		else
			bpf_map_update_elem(&polls, &tid, &fresh, BPF_ANY);
		return;
	}
	if (!same)
		return;
	now = bpf_ktime_get_ns();
	e = cw_reserve(CW_KIND_CUDA_SYNC);
	if (e) {
		e->api = c->api;
		cw_set_current(e);
		e->start_ns = p->first_ns;
		e->end_ns = now;
		e->u.sync.handle = p->handle;
		e->u.sync.ret = (__s32)ret;
		e->u.sync.device = current_device(tid, tgid);
		e->u.sync.polls = p->polls + 1;
		cw_submit(e);
	}
	bpf_map_delete_elem(&polls, &tid);
}

static __always_inline void fill_launch(struct cw_launch *l, __u32 api, struct call *c)
{
	struct launch_config cfg;
	struct cu_launch_config cu;
	__u64 *a = c->arg;

	switch (api) {
	case CW_API_cudaLaunchKernelExC: /* (config, func, args) */
		if (bpf_probe_read_user(&cfg, sizeof(cfg), (void *)a[0]))
			__builtin_memset(&cfg, 0, sizeof(cfg));
		l->func = a[1];
		__builtin_memcpy(l->grid, cfg.grid, sizeof(l->grid));
		__builtin_memcpy(l->block, cfg.block, sizeof(l->block));
		l->shared_mem = cfg.shared_mem;
		l->stream = cfg.stream;
		break;
	case CW_API_cuLaunchKernelEx: /* (config, f, params, extra) */
		if (bpf_probe_read_user(&cu, sizeof(cu), (void *)a[0]))
			__builtin_memset(&cu, 0, sizeof(cu));
		l->func = a[1];
		__builtin_memcpy(l->grid, cu.grid, sizeof(l->grid));
		__builtin_memcpy(l->block, cu.block, sizeof(l->block));
		l->shared_mem = cu.shared_mem;
		l->stream = cu.stream;
		break;
	case CW_API_cuLaunchKernel: /* (f, gx, gy, gz, bx, by, | bz, shmem, stream, ...) */
		l->func = a[0];
		l->grid[0] = a[1];
		l->grid[1] = a[2];
		l->grid[2] = a[3];
		l->block[0] = a[4];
		l->block[1] = a[5];
		l->block[2] = a[6];
		l->shared_mem = (__u32)a[7];
		l->stream = a[8];
		break;
	case CW_API_cudaGraphLaunch: /* (exec, stream) */
	case CW_API_cuGraphLaunch:
		l->func = a[0];
		l->stream = a[1];
		break;
	default: /* (func, grid xy, grid z, block xy, block z, args, | shmem, stream) */
		l->func = a[0];
		dim3_from_regs(l->grid, a[1], a[2]);
		dim3_from_regs(l->block, a[3], a[4]);
		l->shared_mem = a[6];
		l->stream = a[7];
		break;
	}
}

static __always_inline void fill_memcpy(struct cw_memcpy *m, __u32 api, struct call *c)
{
	__u64 *a = c->arg;

	m->direction = CW_MEMCPY_DEFAULT;
	m->async = 0;
	m->stream = 0;
	switch (api) {
	case CW_API_cudaMemcpy: /* (dst, src, count, kind) */
		m->bytes = a[2];
		m->direction = a[3];
		break;
	case CW_API_cudaMemcpyAsync: /* (dst, src, count, kind, stream) */
		m->bytes = a[2];
		m->direction = a[3];
		m->stream = a[4];
		m->async = 1;
		break;
	case CW_API_cuMemcpyHtoD:
		m->direction = CW_MEMCPY_HTOD;
		m->bytes = a[2];
		break;
	case CW_API_cuMemcpyDtoH:
		m->direction = CW_MEMCPY_DTOH;
		m->bytes = a[2];
		break;
	case CW_API_cuMemcpyDtoD:
		m->direction = CW_MEMCPY_DTOD;
		m->bytes = a[2];
		break;
	case CW_API_cuMemcpyHtoDAsync:
		m->direction = CW_MEMCPY_HTOD;
		m->bytes = a[2];
		m->stream = a[3];
		m->async = 1;
		break;
	case CW_API_cuMemcpyDtoHAsync:
		m->direction = CW_MEMCPY_DTOH;
		m->bytes = a[2];
		m->stream = a[3];
		m->async = 1;
		break;
	case CW_API_cuMemcpyAsync: /* (dst, src, bytes, stream) */
		m->bytes = a[2];
		m->stream = a[3];
		m->async = 1;
		break;
	default: /* cuMemcpy (dst, src, bytes) */
		m->bytes = a[2];
		break;
	}
}

static __always_inline void fill_op(struct cw_cuda_op *op, __u32 api, struct call *c)
{
	__u64 *a = c->arg;

	op->stream = op->event = op->graph = op->exec = 0;
	switch (api) {
	case CW_API_cudaStreamBeginCapture: /* (stream, mode) */
	case CW_API_cuStreamBeginCapture:
		op->stream = a[0];
		break;
	case CW_API_cudaStreamEndCapture: /* (stream, graph *): the graph is written on return */
	case CW_API_cuStreamEndCapture:
		op->stream = a[0];
		if (bpf_probe_read_user(&op->graph, sizeof(op->graph), (void *)a[1]))
			op->graph = 0;
		break;
	case CW_API_cudaGraphInstantiate: /* (exec *, graph, ...): the exec is written on return */
	case CW_API_cuGraphInstantiate:
		op->graph = a[1];
		if (bpf_probe_read_user(&op->exec, sizeof(op->exec), (void *)a[0]))
			op->exec = 0;
		break;
	case CW_API_cudaEventRecord: /* (event, stream) */
	case CW_API_cuEventRecord:
		op->event = a[0];
		op->stream = a[1];
		break;
	default: /* cudaStreamWaitEvent, cuStreamWaitEvent (stream, event, flags) */
		op->stream = a[0];
		op->event = a[1];
		break;
	}
}

static __always_inline void fill_register(struct cw_register *r, __u32 api, struct call *c)
{
	void *name = (void *)c->arg[2];

	if (api == CW_API___cudaRegisterFunction) {
		/* (handle, hostFun, deviceFun, deviceName, ...) */
		r->func = c->arg[1];
	} else {
		/* cuModuleGetFunction(CUfunction *hfunc, CUmodule, const char *name) */
		if (bpf_probe_read_user(&r->func, sizeof(__u64), (void *)c->arg[0]))
			r->func = 0;
	}
	r->name_addr = (__u64)name;
	/* Fails on a page not mapped yet (it cannot fault one in): the name is left empty and the loader reads it. */
	bpf_probe_read_user_str(r->name, sizeof(r->name), name);
}

SEC("uretprobe")
int cuda_exit(struct pt_regs *ctx)
{
	long ret = PT_REGS_RC(ctx);
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, tgid = id >> 32;
	__u32 cookie = (__u32)bpf_get_attach_cookie(ctx);
	__u32 api = cookie & ~CW_API_PER_THREAD;
	struct call *c = bpf_map_lookup_elem(&calls, &tid);
	struct cw_event *e;
	__u32 kind;

	if (!c || c->api != cookie)
		return 0;
	switch (api) {
	case CW_API_cudaSetDevice:
	case CW_API_cuCtxCreate:
	case CW_API_cuCtxSetCurrent:
	case CW_API_cuDevicePrimaryCtxRetain:
		if ((int)ret == 0)
			note_device(api, c, tgid, tid);
		goto out;
	case CW_API_cudaEventQuery:
	case CW_API_cudaStreamQuery:
	case CW_API_cuEventQuery:
	case CW_API_cuStreamQuery:
		on_query(c, (int)ret, tgid, tid);
		goto out;
	}
	kind = kind_of(api);
	if (!kind)
		goto out;
	/* Any other call ends a poll: the thread did something else, it was not spinning on the GPU. */
	bpf_map_delete_elem(&polls, &tid);
	e = cw_reserve(kind);
	if (!e)
		goto out;
	e->api = cookie;
	cw_set_current(e);
	e->start_ns = c->ts;
	e->end_ns = bpf_ktime_get_ns();
	switch (kind) {
	case CW_KIND_CUDA_LAUNCH:
		fill_launch(&e->u.launch, api, c);
		e->u.launch.ret = (__s32)ret;
		e->u.launch.device = current_device(tid, tgid);
		break;
	case CW_KIND_CUDA_SYNC:
		e->u.sync.handle = (api == CW_API_cudaStreamSynchronize || api == CW_API_cudaEventSynchronize ||
				    api == CW_API_cuStreamSynchronize || api == CW_API_cuEventSynchronize) ? c->arg[0] : 0;
		e->u.sync.ret = (__s32)ret;
		e->u.sync.device = current_device(tid, tgid);
		e->u.sync.polls = 0;
		break;
	case CW_KIND_CUDA_MALLOC:
		e->u.malloc.free = api == CW_API_cudaFree;
		if (e->u.malloc.free) {
			e->u.malloc.ptr = c->arg[0];
			e->u.malloc.bytes = 0;
		} else {
			/* (void **devPtr, size): the pointer is written on return */
			if (bpf_probe_read_user(&e->u.malloc.ptr, sizeof(__u64), (void *)c->arg[0]))
				e->u.malloc.ptr = 0;
			e->u.malloc.bytes = c->arg[1];
		}
		e->u.malloc.ret = (__s32)ret;
		e->u.malloc.device = current_device(tid, tgid);
		break;
	case CW_KIND_CUDA_REGISTER:
		fill_register(&e->u.reg, api, c);
		break;
	case CW_KIND_CUDA_OP:
		fill_op(&e->u.op, api, c);
		e->u.op.ret = (__s32)ret;
		e->u.op.device = current_device(tid, tgid);
		break;
	default:
		fill_memcpy(&e->u.memcpy, api, c);
		e->u.memcpy.ret = (__s32)ret;
		e->u.memcpy.device = current_device(tid, tgid);
		break;
	}
	cw_submit(e);
out:
	bpf_map_delete_elem(&calls, &tid);
	return 0;
}
