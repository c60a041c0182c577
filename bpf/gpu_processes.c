// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The GPU processes on the node: every process found using a CUDA library, with the
 * libraries it uses. Each is followed whatever the filter says (in serving stacks the
 * engine process sends no spans, yet its scheduler and lock waits explain the requests'
 * waits), and each change is said as a MESSAGE frame, from which the sidecar keeps its
 * own list: `gpu_process` when a process is found using a library, `gpu_process_exit`
 * when it exits or exec's another program. The list is bounded: past it, processes are
 * still probed and followed, not listed.
 */
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>

#include "cuda_libs.h"
#include "filter.h"
#include "frames.h"
#include "gpu_processes.h"

#define MAX_GPU_PROCESSES 4096
#define LIBRARIES_PER_PROCESS 4

struct gpu_process {
	__u32 pid;
	int nlibs;
	int libs[LIBRARIES_PER_PROCESS];
};

static struct gpu_process table[MAX_GPU_PROCESSES];
static int ntable;
static int map_fd = -1;

void gpu_processes_use_map(int fd)
{
	map_fd = fd;
}

static struct gpu_process *find(__u32 pid)
{
	for (int i = 0; i < ntable; i++)
		if (table[i].pid == pid)
			return &table[i];
	return NULL;
}

static void read_comm(__u32 pid, char *comm, size_t size)
{
	char path[64];
	FILE *f;

	comm[0] = 0;
	snprintf(path, sizeof(path), "/proc/%u/comm", pid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(comm, size, f))
		comm[strcspn(comm, "\n")] = 0;
	fclose(f);
}

static struct gpu_process *add(__u32 pid)
{
	static bool warned;

	if (ntable < MAX_GPU_PROCESSES) {
		table[ntable] = (struct gpu_process){ .pid = pid };
		return &table[ntable++];
	}
	if (!warned)
		message("warn", "\"event\":\"gpu_process_limit\"",
			"more than %d GPU processes: further ones are probed and followed, not listed", MAX_GPU_PROCESSES);
	warned = true;
	return NULL;
}

void gpu_process_uses(__u32 pid, int library, enum cw_gpu_process how)
{
	struct gpu_process *p = find(pid);
	char comm[CW_COMM_LEN + 2], escaped_comm[4 * CW_COMM_LEN], escaped_path[8192], extra[8448];
	__u8 value = how;

	if (map_fd >= 0) {
		/* Kept if the probes saw it start using CUDA: that says more about its devices. */
		bpf_map_update_elem(map_fd, &pid, &value, BPF_NOEXIST);
		follow(pid, true);
	}
	if (!p && !(p = add(pid)))
		return;
	for (int i = 0; i < p->nlibs; i++)
		if (p->libs[i] == library)
			return;
	if (p->nlibs < LIBRARIES_PER_PROCESS)
		p->libs[p->nlibs++] = library;
	read_comm(pid, comm, sizeof(comm));
	json_escape(escaped_comm, sizeof(escaped_comm), comm);
	json_escape(escaped_path, sizeof(escaped_path), cuda_library_path(library));
	snprintf(extra, sizeof(extra),
		 "\"event\":\"gpu_process\",\"pid\":%u,\"comm\":\"%s\",\"library\":\"%s\",\"since\":\"%s\"", pid,
		 escaped_comm, escaped_path, how == CW_GPU_SEEN_STARTING ? "started" : "running");
	message("info", extra, "GPU process %u (%s) uses %s", pid, comm, cuda_library_path(library));
}

void gpu_process_gone(__u32 pid, const char *reason)
{
	struct gpu_process *p = find(pid);
	char extra[128];

	if (!p)
		return;
	*p = table[--ntable];
	snprintf(extra, sizeof(extra), "\"event\":\"gpu_process_exit\",\"pid\":%u,\"reason\":\"%s\"", pid, reason);
	message("info", extra, "GPU process %u left (%s)", pid, reason);
}

__u32 gpu_process_count(void)
{
	return ntable;
}
