// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * CUDA runtime and driver calls. Two programs serve every entry point: the
 * uprobe saves the raw argument registers and stack slots, the uretprobe turns
 * them into a record according to the entry point, which the loader passes as
 * the bpf cookie. Not filtered by pid: the GPU is shared, and the other users
 * are the culprits of contention.
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
	__u32 api;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);  /* tid */
	__type(value, struct call);
} calls SEC(".maps");

/* cudaLaunchConfig_t, as the runtime lays it out */
struct launch_config {
	__u32 grid[3];
	__u32 block[3];
	__u64 shared_mem;
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

static __always_inline __u32 kind_of(__u32 api)
{
	switch (api) {
	case CW_API_cudaLaunchKernel:
	case CW_API_cudaLaunchKernel_ptsz:
	case CW_API_cudaLaunchKernelExC:
	case CW_API_cuLaunchKernel:
		return CW_KIND_CUDA_LAUNCH;
	case CW_API_cudaStreamSynchronize:
	case CW_API_cudaDeviceSynchronize:
	case CW_API_cudaEventSynchronize:
	case CW_API_cuCtxSynchronize:
	case CW_API_cuStreamSynchronize:
		return CW_KIND_CUDA_SYNC;
	case CW_API_cudaMalloc:
	case CW_API_cudaFree:
		return CW_KIND_CUDA_MALLOC;
	case CW_API___cudaRegisterFunction:
	case CW_API_cuModuleGetFunction:
		return CW_KIND_CUDA_REGISTER;
	default:
		return CW_KIND_CUDA_MEMCPY;
	}
}

static __always_inline void fill_launch(struct cw_launch *l, struct call *c)
{
	struct launch_config cfg;
	__u64 *a = c->arg;

	switch (c->api) {
	case CW_API_cudaLaunchKernelExC: /* (config, func, args) */
		bpf_probe_read_user(&cfg, sizeof(cfg), (void *)a[0]);
		l->func = a[1];
		__builtin_memcpy(l->grid, cfg.grid, sizeof(l->grid));
		__builtin_memcpy(l->block, cfg.block, sizeof(l->block));
		l->shared_mem = cfg.shared_mem;
		l->stream = cfg.stream;
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
	default: /* (func, grid xy, grid z, block xy, block z, args, | shmem, stream) */
		l->func = a[0];
		dim3_from_regs(l->grid, a[1], a[2]);
		dim3_from_regs(l->block, a[3], a[4]);
		l->shared_mem = a[6];
		l->stream = a[7];
		break;
	}
}

static __always_inline void fill_memcpy(struct cw_memcpy *m, struct call *c)
{
	__u64 *a = c->arg;

	m->direction = CW_MEMCPY_DEFAULT;
	m->async = 0;
	m->stream = 0;
	switch (c->api) {
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

SEC("uretprobe")
int cuda_exit(struct pt_regs *ctx)
{
	long ret = PT_REGS_RC(ctx);
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u32 api = (__u32)bpf_get_attach_cookie(ctx);
	struct call *c = bpf_map_lookup_elem(&calls, &tid);
	struct cw_event *e;
	__u32 kind;

	if (!c || c->api != api)
		return 0;
	kind = kind_of(api);
	e = cw_reserve(kind);
	if (!e)
		goto out;
	e->api = api;
	cw_set_current(e);
	e->start_ns = c->ts;
	e->end_ns = bpf_ktime_get_ns();
	switch (kind) {
	case CW_KIND_CUDA_LAUNCH:
		fill_launch(&e->u.launch, c);
		e->u.launch.ret = (__s32)ret;
		break;
	case CW_KIND_CUDA_SYNC:
		e->u.sync.handle = (api == CW_API_cudaStreamSynchronize || api == CW_API_cudaEventSynchronize ||
				    api == CW_API_cuStreamSynchronize) ? c->arg[0] : 0;
		e->u.sync.ret = (__s32)ret;
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
		break;
	case CW_KIND_CUDA_REGISTER:
		if (api == CW_API___cudaRegisterFunction) {
			/* (handle, hostFun, deviceFun, deviceName, ...) */
			e->u.reg.func = c->arg[1];
			bpf_probe_read_user_str(e->u.reg.name, sizeof(e->u.reg.name), (void *)c->arg[2]);
		} else {
			/* cuModuleGetFunction(CUfunction *hfunc, CUmodule, const char *name) */
			if (bpf_probe_read_user(&e->u.reg.func, sizeof(__u64), (void *)c->arg[0]))
				e->u.reg.func = 0;
			bpf_probe_read_user_str(e->u.reg.name, sizeof(e->u.reg.name), (void *)c->arg[2]);
		}
		break;
	default:
		fill_memcpy(&e->u.memcpy, c);
		e->u.memcpy.ret = (__s32)ret;
		break;
	}
	cw_submit(e);
out:
	bpf_map_delete_elem(&calls, &tid);
	return 0;
}
