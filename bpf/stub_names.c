// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Names for kernels registered before the probes were attached (the process started before
 * the capture): their launches pass the kernel's host stub, whose ELF symbol is the kernel's
 * mangled name (nvcc names the stub after its kernel). At the first runtime launch of a stub
 * not seen registered for its process, the loader finds the mapping holding the stub in
 * /proc/PID/maps, reads the symbol covering it from the file through /proc/PID/map_files
 * (which reaches it across users and mount namespaces, and once deleted, with the loader's
 * CAP_SYS_ADMIN), and writes a registration record before the launch, as if
 * __cudaRegisterFunction had been seen: user space, which may run as another user holding no
 * capability, names the launch the usual way. A stub without a symbol (a stripped binary,
 * code in an anonymous mapping) is counted in the STATS frame.
 *
 * A fixed table remembers the stubs seen registered and those looked up, per process,
 * forgotten at its exit or exec: STUB_SETS sets of STUB_WAYS, each set replaced in turn
 * when full, so a stub pushed out is looked up again at its next launch.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "elf_symbols.h"
#include "frames.h"
#include "names.h"
#include "stats.h"
#include "stub_names.h"

#define STUB_SET_BITS 10
#define STUB_SETS (1 << STUB_SET_BITS)
#define STUB_WAYS 8 /* 8,192 (pid, stub) pairs in all */

struct stub {
	__u64 func;
	__u32 pid; /* 0: a free slot */
};

static struct stub table[STUB_SETS][STUB_WAYS];
static __u8 next_replaced[STUB_SETS];
static __u32 unnamed;

/* Which set a stub belongs in: the top bits of a multiplicative hash. */
static unsigned int set_of(__u32 pid, __u64 func)
{
	return ((func ^ ((__u64)pid << 40)) * 0x9e3779b97f4a7c15ull) >> (64 - STUB_SET_BITS);
}

/* Remembers the stub; true if it was known already. */
static bool remember(__u32 pid, __u64 func)
{
	unsigned int s = set_of(pid, func);
	struct stub *set = table[s], *slot = NULL;

	for (int i = 0; i < STUB_WAYS; i++) {
		if (set[i].pid == pid && set[i].func == func)
			return true;
		if (!set[i].pid && !slot)
			slot = &set[i];
	}
	if (!slot) {
		slot = &set[next_replaced[s]];
		next_replaced[s] = (next_replaced[s] + 1) % STUB_WAYS;
	}
	*slot = (struct stub){ .func = func, .pid = pid };
	return false;
}

void stub_registered(const struct cw_event *reg, const char *name)
{
	/* A name nobody could read leaves the stub to be looked up at its launch. */
	if (reg->api == CW_API___cudaRegisterFunction && name[0] && reg->pid)
		remember(reg->pid, reg->u.reg.func);
}

/* The symbol of the function at address in the process's memory, from the file mapped there. */
static bool stub_symbol(__u32 pid, __u64 address, char *name, size_t size)
{
	char path[64], line[PATH_MAX + 256];
	unsigned long long start, end, offset, inode;
	bool found = false;
	FILE *maps;

	snprintf(path, sizeof(path), "/proc/%u/maps", pid);
	maps = fopen(path, "re");
	if (!maps)
		return false; /* the process is gone */
	while (fgets(line, sizeof(line), maps)) {
		/* start-end perms offset dev inode path */
		if (sscanf(line, "%llx-%llx %*s %llx %*s %llu", &start, &end, &offset, &inode) != 4)
			continue;
		if (address < start || address >= end)
			continue;
		if (inode) {
			snprintf(path, sizeof(path), "/proc/%u/map_files/%llx-%llx", pid, start, end);
			found = elf_function_at(path, address - start + offset, name, size);
		}
		break;
	}
	fclose(maps);
	return found;
}

static void name_stub(const struct cw_event *launch, __u64 func)
{
	__u32 api = launch->api & ~CW_API_PER_THREAD;
	char name[KERNEL_NAME_MAX];
	struct cw_event reg;

	/* The driver's launches pass a CUfunction and graph launches an executable graph: handles, not code. */
	if ((api != CW_API_cudaLaunchKernel && api != CW_API_cudaLaunchKernelExC) || !func || remember(launch->pid, func))
		return;
	reg = (struct cw_event){
		.kind = CW_KIND_CUDA_REGISTER,
		.api = CW_API___cudaRegisterFunction,
		.cpu = launch->cpu,
		.pid = launch->pid,
		.tid = launch->tid,
		.start_ns = launch->start_ns,
		.end_ns = launch->start_ns,
		.u.reg.func = func,
	};
	memcpy(reg.comm, launch->comm, sizeof(reg.comm));
	if (!stub_symbol(launch->pid, func, name, sizeof(name))) {
		unnamed++;
		return;
	}
	count_delivered(reg.kind);
	emit_registration(&reg, name);
}

void name_launched_stub(const struct cw_event *launch)
{
	if (launch->kind == CW_KIND_CUDA_LAUNCH) {
		name_stub(launch, launch->u.launch.func);
		return;
	}
	/* A launch summary: each of its functions. */
	for (int i = 0; i < CW_LAUNCH_FUNCS && launch->u.launches.funcs[i].func; i++)
		name_stub(launch, launch->u.launches.funcs[i].func);
}

void forget_stubs(__u32 pid)
{
	for (int s = 0; s < STUB_SETS; s++)
		for (int i = 0; i < STUB_WAYS; i++)
			if (table[s][i].pid == pid)
				table[s][i] = (struct stub){ 0 };
}

__u32 unnamed_stubs(void)
{
	return unnamed;
}
