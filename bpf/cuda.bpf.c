// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * CUDA runtime and driver calls. Two programs serve every entry point: the
 * uprobe saves the raw argument registers and stack slots, the uretprobe turns
 * them into a record according to the entry point, which the loader passes as
 * the bpf cookie. Not filtered by pid: the GPU is shared, and the other users
 * are the culprits of contention.
 *
 * Some calls make no record of their own: cudaSetDevice and the driver's context
 * calls only set the device that the thread's later records carry, __cudaGetKernel and
 * cuKernelGetFunction only map a handle to the function it stands for, for the launches
 * by that handle, and a query
 * that finds the GPU still busy (cudaEventQuery, cudaStreamQuery and the driver's
 * cuEventQuery, cuStreamQuery returning not-ready) only starts or extends the
 * thread's poll: the query that finds the work done ends it with one cuda.sync
 * record, from the first not-ready query to completion, so a spinning thread costs
 * one record per wait rather than one per query. A query of another handle, or any
 * other CUDA call in between, abandons the poll: that thread was not just spinning.
 *
 * A thread's state (the call in progress, its device, its poll) is one entry of the shared
 * cuda_threads map (common.bpf.h), looked up once per probe.
 *
 * CUDA records are never dropped for being short (the per-kind thresholds are for the
 * scheduler's volume): even a short sync tells user space which work has completed.
 *
 * With reduction on (cw_settings.window_ns), a launch that succeeded and returned within
 * launch_whole_ns is summed into its thread's launch window (common.bpf.h) rather than
 * written, unless it opens the window: the window counts launches per function, on one
 * stream, device and entry point.
 * A window holds one span's launches (the thread context read at each call's entry): a
 * launch in another span closes it first, so a summary never mixes two requests.
 * A launch that blocked or failed, a graph launch, and any other call of the thread close
 * the window first and are written whole, so the summary precedes them in the ring and the
 * in-flight work a sync finds is what it was without reduction.
 *
 * Arguments follow the x86-64 SysV ABI: a dim3 (12 bytes) travels in two
 * registers (x | y << 32, then z), and what does not fit in the six argument
 * registers sits on the stack above the return address.
 */
#include "common.bpf.h"

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

/*
 * Kernels registered with a name the probe could not read (its page not mapped yet: CUDA reads a
 * name only at its kernel's first launch), by process and function. The loader reads such a name
 * through /proc/PID/mem, which fails once the process has exited: a loader behind by more than a
 * short program's remaining life (20 ms for test/fixtures' cold_name) left its launches unnamed.
 * So the name is read again when the function's first launch returns, the runtime having read it,
 * and written as a registration before the launch. An LRU: kernels never launched are pushed out.
 */
struct name_key {
	__u32 tgid;
	__u32 pad;
	__u64 func;
};

struct unread_name {
	__u64 addr;
	__u32 api; /* the registering call's */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct name_key);
	__type(value, struct unread_name);
} unread_names SEC(".maps");

/*
 * Entries put in unread_names less those taken out: while none are (names read at registration,
 * the usual case), a launch is spared the lookup. One the LRU pushes out is never taken out, and
 * launches then look in vain: a cost, never a name lost.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} unread_count SEC(".maps");

static __always_inline __u64 *unread_names_count(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&unread_count, &zero);
}

/*
 * Handles launched in place of a named function. CUDA 13's launch code asks the runtime once for
 * its kernel's handle (__cudaGetKernel, given the host stub) and launches by the handle; the
 * runtime (and cuBLAS's copy of it) loads kernels as a library's (cuLibraryGetKernel, named) and
 * launches the context's function for one (cuKernelGetFunction). Neither handle is registered
 * under a name. Mapped back here, a launch says the function that was (the stub, the library's
 * kernel), and is named by its registration. An LRU: the handles of kernels no longer launched
 * go. A handle taken before the probes were attached stays unmapped.
 */
struct handle_key {
	__u32 tgid;
	__u32 pad;
	__u64 handle;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct handle_key);
	__type(value, __u64); /* the function it stands for */
} handle_functions SEC(".maps");

/* Set once a handle is mapped: until then (no such launches yet), a launch is spared the lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} handles_seen SEC(".maps");

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

/*
 * The calling task, read from its task_struct by plain loads: bpf_get_current_comm copies the
 * name through a helper, about 30 ns of each call's return probe (a tenth of it). The trusted
 * task pointer needs Linux 5.11, less than the attach cookies every CUDA probe reads (5.15).
 */
static __always_inline void current_task(struct cw_task *me)
{
	cw_task_of(me, bpf_get_current_task_btf());
}

/* What a thread's entry starts from: no call in progress, its device not known yet. */
static const struct cw_cuda_thread no_cuda_calls = { .device = CW_DEVICE_UNKNOWN };

static __always_inline int on_enter(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u64 sp = PT_REGS_SP(ctx);
	struct cw_cuda_thread *t = cw_lookup_or_init(&cuda_threads, &tid, &no_cuda_calls);
	__u32 api;

	if (!t)
		return 0;
	/* A runtime call that enters the driver: the outer call alone is the event. */
	if (t->api)
		return 0;
	api = (__u32)bpf_get_attach_cookie(ctx);
	t->api = api;
	t->arg[0] = PT_REGS_PARM1(ctx);
	t->arg[1] = PT_REGS_PARM2(ctx);
	t->arg[2] = PT_REGS_PARM3(ctx);
	t->arg[3] = PT_REGS_PARM4(ctx);
	t->arg[4] = PT_REGS_PARM5(ctx);
	t->arg[5] = ctx->r9; /* PT_REGS_PARM6 needs libbpf 1.2 */
	/* Only these two take arguments on the stack; reading user memory is a probe's dearest step. */
	api &= ~CW_API_PER_THREAD;
	if ((api != CW_API_cudaLaunchKernel && api != CW_API_cuLaunchKernel) ||
	    bpf_probe_read_user(&t->arg[6], 3 * sizeof(__u64), (void *)(sp + 8)))
		__builtin_memset(&t->arg[6], 0, 3 * sizeof(__u64));
	__builtin_memset(&t->context, 0, sizeof(t->context));
	cw_read_span_context(id >> 32, &t->context);
	t->ts = bpf_ktime_get_ns();
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

static __always_inline void set_device(struct cw_cuda_thread *t, __s32 device)
{
	t->device = device;
	t->device_set = 1;
}

/* The device of the calling thread's CUDA work. */
static __always_inline __s32 current_device(struct cw_cuda_thread *t, __u32 tgid)
{
	__u8 *gpu;

	if (t->device_set)
		return t->device;
	/*
	 * A thread that never chose one is on device 0, if the process started using CUDA under our
	 * eyes; kept as if chosen, sparing the lookup at its next calls: a process's entry does not
	 * change while it runs (written BPF_NOEXIST, deleted at exec and exit).
	 */
	gpu = bpf_map_lookup_elem(&gpu_processes, &tgid);
	if (!gpu || *gpu != CW_GPU_SEEN_STARTING)
		return CW_DEVICE_UNKNOWN;
	set_device(t, 0);
	return 0;
}

/* cudaSetDevice and the driver's context calls: the device of the thread's later calls. */
static __always_inline void note_device(__u32 api, struct cw_cuda_thread *t, __u32 tgid)
{
	struct context_key key = { .tgid = tgid };
	__s32 device, *known;

	switch (api) {
	case CW_API_cudaSetDevice: /* (int device) */
		set_device(t, (__s32)t->arg[0]);
		break;
	case CW_API_cuCtxCreate: /* (CUcontext *pctx, unsigned flags, CUdevice dev): made current */
	case CW_API_cuDevicePrimaryCtxRetain: /* (CUcontext *pctx, CUdevice dev) */
		device = (__s32)(api == CW_API_cuCtxCreate ? t->arg[2] : t->arg[1]);
		if (bpf_probe_read_user(&key.ctx, sizeof(key.ctx), (void *)t->arg[0]))
			break;
		bpf_map_update_elem(&context_device, &key, &device, BPF_ANY);
		if (api == CW_API_cuCtxCreate)
			set_device(t, device);
		break;
	case CW_API_cuCtxSetCurrent: /* (CUcontext ctx): a context made before the probes is on an unknown device */
		key.ctx = t->arg[0];
		known = bpf_map_lookup_elem(&context_device, &key);
		set_device(t, known ? *known : CW_DEVICE_UNKNOWN);
		break;
	}
}

/*
 * __cudaGetKernel, cudaGetKernel (cudaKernel_t *kernelPtr, const void *entryFuncAddr) and
 * cuKernelGetFunction (CUfunction *pFunc, CUkernel kernel), succeeded: the handle written out
 * stands for the function given.
 */
static __always_inline void note_handle(struct cw_cuda_thread *t, __u32 tgid)
{
	struct handle_key key = { .tgid = tgid };
	__u64 function = t->arg[1];
	__u32 zero = 0, *seen;

	if (bpf_probe_read_user(&key.handle, sizeof(key.handle), (void *)t->arg[0]) || key.handle == function)
		return;
	bpf_map_update_elem(&handle_functions, &key, &function, BPF_ANY);
	seen = bpf_map_lookup_elem(&handles_seen, &zero);
	if (seen && !*seen)
		*seen = 1;
}

/* A launch by a handle: the call's function argument becomes the function the handle stands for. */
static __always_inline void launch_as_named(__u32 api, struct cw_cuda_thread *t, __u32 tgid)
{
	struct handle_key key = { .tgid = tgid };
	__u32 zero = 0, *seen = bpf_map_lookup_elem(&handles_seen, &zero);
	__u64 *arg, *function;

	if (!seen || !*seen || api == CW_API_cudaGraphLaunch || api == CW_API_cuGraphLaunch)
		return;
	/* (config, func, ...) for the Ex forms, (func, ...) for the others */
	arg = (api == CW_API_cudaLaunchKernelExC || api == CW_API_cuLaunchKernelEx) ? &t->arg[1] : &t->arg[0];
	key.handle = *arg;
	function = bpf_map_lookup_elem(&handle_functions, &key);
	if (function)
		*arg = *function;
}

/*
 * A query: not ready starts or extends the thread's poll of that handle; done ends it
 * with a cuda.sync record. A query done at once was no wait, and makes no record.
 */
static __always_inline void on_query(struct cw_cuda_thread *t, long ret, __u32 tgid)
{
	bool same = t->polls && t->poll_handle == t->arg[0] && t->poll_api == t->api;
	struct cw_event *e;

	if (ret == CW_NOT_READY) {
		if (same) {
			t->polls++;
		} else {
			t->poll_first_ns = t->ts;
			t->poll_handle = t->arg[0];
			t->poll_api = t->api;
			t->polls = 1;
		}
		return;
	}
	if (!same)
		return;
	cw_close_launches(t, (__u32)bpf_get_current_pid_tgid());
	e = cw_reserve(CW_KIND_CUDA_SYNC);
	if (e) {
		e->api = t->api;
		cw_set_task_of(e, bpf_get_current_task_btf());
		e->context = t->context;
		e->start_ns = t->poll_first_ns;
		e->end_ns = bpf_ktime_get_ns();
		e->u.sync.handle = t->poll_handle;
		e->u.sync.ret = (__s32)ret;
		e->u.sync.device = current_device(t, tgid);
		e->u.sync.polls = t->polls + 1;
		cw_submit(e);
	}
	t->polls = 0;
}

static __always_inline void fill_launch(struct cw_launch *l, __u32 api, struct cw_cuda_thread *c)
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

static __always_inline void fill_memcpy(struct cw_memcpy *m, __u32 api, struct cw_cuda_thread *c)
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

static __always_inline void fill_op(struct cw_cuda_op *op, __u32 api, struct cw_cuda_thread *c)
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

static __always_inline void fill_register(struct cw_register *r, __u32 api, struct cw_cuda_thread *c, __u32 tgid)
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
	/*
	 * Fails on a page not mapped yet (it cannot fault one in): the name is left empty, for the
	 * loader to read, and read again at the function's first launch.
	 */
	if (bpf_probe_read_user_str(r->name, sizeof(r->name), name) <= 0) {
		struct name_key key = { .tgid = tgid, .func = r->func };
		struct unread_name unread = { .addr = (__u64)name, .api = api };

		__u64 *count = unread_names_count();

		if (bpf_map_update_elem(&unread_names, &key, &unread, BPF_NOEXIST) == 0 && count)
			__sync_fetch_and_add(count, 1);
	}
}

/* The registration of a function launched for the first time since its name could not be read, if it can be now. */
static __always_inline void register_launched(__u32 api, struct cw_cuda_thread *t, __u32 tgid)
{
	struct name_key key = { .tgid = tgid };
	__u64 *count = unread_names_count();
	struct unread_name *unread;
	struct cw_event *e;

	if (!count || !*count)
		return;
	if (api == CW_API_cudaGraphLaunch || api == CW_API_cuGraphLaunch) /* an executable graph, no function */
		return;
	key.func = (api == CW_API_cudaLaunchKernelExC || api == CW_API_cuLaunchKernelEx) ? t->arg[1] : t->arg[0];
	unread = bpf_map_lookup_elem(&unread_names, &key);
	if (!unread)
		return;
	e = cw_reserve(CW_KIND_CUDA_REGISTER);
	if (e) {
		if (bpf_probe_read_user_str(e->u.reg.name, sizeof(e->u.reg.name), (void *)unread->addr) > 0) {
			e->api = unread->api;
			cw_set_task_of(e, bpf_get_current_task_btf());
			e->start_ns = e->end_ns = t->ts;
			e->u.reg.func = key.func;
			e->u.reg.name_addr = unread->addr;
			cw_submit(e);
		} else {
			bpf_ringbuf_discard(e, 0);
		}
	}
	if (bpf_map_delete_elem(&unread_names, &key) == 0)
		__sync_fetch_and_sub(count, 1);
}

static __always_inline void fill_malloc(struct cw_malloc *m, __u32 api, struct cw_cuda_thread *c)
{
	m->free = api == CW_API_cudaFree;
	if (m->free) {
		m->ptr = c->arg[0];
		m->bytes = 0;
		return;
	}
	/* (void **devPtr, size): the pointer is written on return */
	if (bpf_probe_read_user(&m->ptr, sizeof(__u64), (void *)c->arg[0]))
		m->ptr = 0;
	m->bytes = c->arg[1];
}

/* Whether a window can count a launch of func: it has it, or a free slot. */
static __always_inline bool has_room(struct cw_launches *w, __u64 func)
{
	for (__u32 i = 0; i < CW_LAUNCH_FUNCS; i++)
		if (w->funcs[i].func == func || w->funcs[i].func == 0)
			return true;
	return false;
}

/*
 * Sums a quick, successful launch into the thread's window, closing the window first if it
 * cannot take this one (another stream, device or entry point, a sixth function, or old).
 * False: the launch is to be written whole (reduction off, a launch kept whole, a full table,
 * or the launch that opens a window). A window opened names the current task from `me`, read
 * into it then, for the launch's own record to reuse.
 */
static __always_inline bool sum_launch(struct cw_cuda_thread *t, __u32 cookie, __u32 api, long ret, __s32 device,
				       __u32 tid, __u64 now, struct cw_task *me)
{
	struct cw_settings *cfg = cw_settings();
	struct cw_launch l = {};
	struct cw_launches *sum;
	struct cw_windows *ws;
	struct cw_window *w;
	__u64 call = now - t->ts;

	fill_launch(&l, api, t);
	/* Kept whole (0 ends a window's list of functions): after the launches summed so far. */
	if (!cfg || !cfg->window_ns || (int)ret != 0 || call >= cfg->launch_whole_ns ||
	    api == CW_API_cudaGraphLaunch || api == CW_API_cuGraphLaunch || l.func == 0) {
		cw_close_launches(t, tid);
		return false;
	}
	ws = cw_windows_of(tid);
	if (!ws)
		return false;
	w = &ws->launches;
	sum = &w->summary.u.launches;
	if (w->summary.kind &&
	    (w->summary.api != cookie || sum->stream != l.stream || sum->device != device ||
	     now - w->opened_ns >= cfg->window_ns || !has_room(sum, l.func) ||
	     !cw_same_span(&w->summary.context, &t->context)))
		cw_end_window(w);
	if (!w->summary.kind) {
		cw_open_window(w, CW_KIND_CUDA_LAUNCHES);
		t->launches_closed = 0;
		w->opened_ns = t->ts;
		w->summary.api = cookie;
		w->summary.cpu = bpf_get_smp_processor_id();
		current_task(me);
		cw_set_task(&w->summary, me);
		w->summary.context = t->context;
		sum->stream = l.stream;
		sum->device = device;
		return false;
	}
	if (sum->count == 0)
		w->summary.start_ns = t->ts;
	w->summary.end_ns = now;
	sum->count++;
	sum->call_ns += call;
	if (call > sum->max_call_ns)
		sum->max_call_ns = call;
	for (__u32 i = 0; i < CW_LAUNCH_FUNCS; i++) {
		struct cw_func_count *f = &sum->funcs[i];

		if (f->func == l.func || f->func == 0) {
			f->func = l.func;
			f->count++;
			break;
		}
	}
	return true;
}

static __always_inline int on_exit(struct pt_regs *ctx)
{
	long ret = PT_REGS_RC(ctx);
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, tgid = id >> 32;
	__u32 cookie = (__u32)bpf_get_attach_cookie(ctx);
	__u32 api = cookie & ~CW_API_PER_THREAD;
	struct cw_cuda_thread *t = bpf_map_lookup_elem(&cuda_threads, &tid);
	struct cw_task me = {};
	struct cw_event *e;
	__s32 device = 0;
	__u64 now;
	__u32 kind;

	if (!t || t->api != cookie)
		return 0;
	switch (api) {
	case CW_API_cudaSetDevice:
	case CW_API_cuCtxCreate:
	case CW_API_cuCtxSetCurrent:
	case CW_API_cuDevicePrimaryCtxRetain:
		if ((int)ret == 0)
			note_device(api, t, tgid);
		goto out;
	case CW_API_cudaEventQuery:
	case CW_API_cudaStreamQuery:
	case CW_API_cuEventQuery:
	case CW_API_cuStreamQuery:
		on_query(t, (int)ret, tgid);
		goto out;
	case CW_API_cudaGetKernel:
		if ((int)ret == 0)
			note_handle(t, tgid);
		goto out;
	}
	kind = kind_of(api);
	if (!kind)
		goto out;
	/* Any other call ends a poll: the thread did something else, it was not spinning on the GPU. */
	t->polls = 0;
	now = bpf_ktime_get_ns();
	if (kind == CW_KIND_CUDA_LAUNCH) {
		launch_as_named(api, t, tgid);
		if ((int)ret == 0)
			register_launched(api, t, tgid);
		device = current_device(t, tgid);
		if (sum_launch(t, cookie, api, ret, device, tid, now, &me))
			goto out;
	} else {
		/* Written whole: after the launches summed so far, which it may wait for or depend on. */
		cw_close_launches(t, tid);
	}
	e = cw_reserve(kind);
	if (!e)
		goto out;
	e->api = cookie;
	if (!me.tid) /* not read yet for a window (a uprobe's task is never the idle task, tid 0) */
		current_task(&me);
	cw_set_task(e, &me);
	e->context = t->context;
	e->start_ns = t->ts;
	e->end_ns = now;
	switch (kind) {
	case CW_KIND_CUDA_LAUNCH:
		fill_launch(&e->u.launch, api, t);
		e->u.launch.ret = (__s32)ret;
		e->u.launch.device = device;
		break;
	case CW_KIND_CUDA_SYNC:
		e->u.sync.handle = (api == CW_API_cudaStreamSynchronize || api == CW_API_cudaEventSynchronize ||
				    api == CW_API_cuStreamSynchronize || api == CW_API_cuEventSynchronize) ? t->arg[0] : 0;
		e->u.sync.ret = (__s32)ret;
		e->u.sync.device = current_device(t, tgid);
		e->u.sync.polls = 0;
		break;
	case CW_KIND_CUDA_MALLOC:
		fill_malloc(&e->u.malloc, api, t);
		e->u.malloc.ret = (__s32)ret;
		e->u.malloc.device = current_device(t, tgid);
		break;
	case CW_KIND_CUDA_REGISTER:
		fill_register(&e->u.reg, api, t, tgid);
		break;
	case CW_KIND_CUDA_OP:
		fill_op(&e->u.op, api, t);
		e->u.op.ret = (__s32)ret;
		e->u.op.device = current_device(t, tgid);
		break;
	default:
		fill_memcpy(&e->u.memcpy, api, t);
		e->u.memcpy.ret = (__s32)ret;
		e->u.memcpy.device = current_device(t, tgid);
		break;
	}
	cw_submit(e);
out:
	t->api = 0;
	return 0;
}

/*
 * Each body twice: cuda_enter and cuda_exit attach by one uprobe_multi link per library for all
 * its entry points (Linux 6.6), whose detach waits for the kernel's grace period once per link;
 * the _each pair by one uprobe per entry point (a perf event each, a grace period each), where
 * the kernel has no uprobe_multi. The loader loads one pair (attach.c). libbpf 1.1 knows no
 * "uprobe.multi" section, so the loader sets the first pair's attach type itself.
 */
SEC("uprobe")
int cuda_enter(struct pt_regs *ctx)
{
	return on_enter(ctx);
}

SEC("uretprobe")
int cuda_exit(struct pt_regs *ctx)
{
	return on_exit(ctx);
}

SEC("uprobe")
int cuda_enter_each(struct pt_regs *ctx)
{
	return on_enter(ctx);
}

SEC("uretprobe")
int cuda_exit_each(struct pt_regs *ctx)
{
	return on_exit(ctx);
}
