// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * CUDA library discovery. The CUDA probes attach per file, so the loader looks in
 * every followed process's mappings for libcudart and libcuda, and in its
 * executable for a statically linked runtime: when it is followed, after it
 * exec's, and on a periodic rescan. A file is probed once, whichever process
 * maps it, since a uprobe fires in every process that maps the file.
 */
#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#include "attach.h"
#include "causeway.h"
#include "clock.h"
#include "cuda_libs.h"
#include "filter.h"
#include "frames.h"

#define MAX_FILES_SEEN 4096
#define EXEC_SCAN_DELAY_MS 10 /* time for ld.so to map a new program's libraries */
#define MAX_PENDING_SCANS 64

/* Each entry point with the symbol names it is exported under. */
static const struct {
	__u32 api;
	const char *symbols[3];
} cuda_symbols[] = {
	{ CW_API_cudaLaunchKernel, { "cudaLaunchKernel" } },
	{ CW_API_cudaLaunchKernel_ptsz, { "cudaLaunchKernel_ptsz" } },
	{ CW_API_cudaLaunchKernelExC, { "cudaLaunchKernelExC", "cudaLaunchKernelExC_ptsz" } },
	{ CW_API_cuLaunchKernel, { "cuLaunchKernel", "cuLaunchKernel_ptsz" } },
	{ CW_API_cudaStreamSynchronize, { "cudaStreamSynchronize", "cudaStreamSynchronize_ptsz" } },
	{ CW_API_cudaDeviceSynchronize, { "cudaDeviceSynchronize" } },
	{ CW_API_cudaEventSynchronize, { "cudaEventSynchronize" } },
	{ CW_API_cuCtxSynchronize, { "cuCtxSynchronize" } },
	{ CW_API_cuStreamSynchronize, { "cuStreamSynchronize", "cuStreamSynchronize_ptsz" } },
	{ CW_API_cudaMemcpy, { "cudaMemcpy", "cudaMemcpy_ptds" } },
	{ CW_API_cudaMemcpyAsync, { "cudaMemcpyAsync", "cudaMemcpyAsync_ptsz" } },
	{ CW_API_cuMemcpy, { "cuMemcpy", "cuMemcpy_ptds" } },
	{ CW_API_cuMemcpyAsync, { "cuMemcpyAsync", "cuMemcpyAsync_ptsz" } },
	{ CW_API_cuMemcpyHtoD, { "cuMemcpyHtoD_v2", "cuMemcpyHtoD_v2_ptds" } },
	{ CW_API_cuMemcpyDtoH, { "cuMemcpyDtoH_v2", "cuMemcpyDtoH_v2_ptds" } },
	{ CW_API_cuMemcpyDtoD, { "cuMemcpyDtoD_v2", "cuMemcpyDtoD_v2_ptds" } },
	{ CW_API_cuMemcpyHtoDAsync, { "cuMemcpyHtoDAsync_v2", "cuMemcpyHtoDAsync_v2_ptsz" } },
	{ CW_API_cuMemcpyDtoHAsync, { "cuMemcpyDtoHAsync_v2", "cuMemcpyDtoHAsync_v2_ptsz" } },
	{ CW_API_cudaMalloc, { "cudaMalloc" } },
	{ CW_API_cudaFree, { "cudaFree" } },
	{ CW_API___cudaRegisterFunction, { "__cudaRegisterFunction" } },
	{ CW_API_cuModuleGetFunction, { "cuModuleGetFunction" } },
};

struct file_id {
	dev_t dev;
	ino_t ino;
};

static struct file_id seen[MAX_FILES_SEEN]; /* files already probed, or known not to be CUDA */
static int nseen;
static __u32 nlibraries;
static struct {
	__u32 pid;
	__u64 due_ns;
} pending[MAX_PENDING_SCANS]; /* followed processes that just exec'd */
static int npending;

static bool seen_file(const struct stat *st)
{
	for (int i = 0; i < nseen; i++)
		if (seen[i].dev == st->st_dev && seen[i].ino == st->st_ino)
			return true;
	if (nseen == MAX_FILES_SEEN) {
		static bool warned;

		/* Probing a file twice would double its events: past the limit, new files are skipped. */
		if (!warned)
			message("warn", "\"event\":\"file_limit\"", "more than %d executables and libraries seen: new ones are not probed", MAX_FILES_SEEN);
		warned = true;
		return true;
	}
	seen[nseen++] = (struct file_id){ st->st_dev, st->st_ino };
	return false;
}

/*
 * Probes every CUDA entry point that the file exports. For an executable that
 * may link the runtime statically, cudaLaunchKernel is tried first, so a file
 * without it costs one symbol lookup.
 */
static void probe_cuda_file(const char *path, __u32 pid, bool maybe_not_cuda)
{
	struct stat st;
	char extra[PATH_MAX * 2 + 128], escaped[PATH_MAX * 2];
	int probes = 0;

	if (stat(path, &st) || !S_ISREG(st.st_mode) || seen_file(&st))
		return;
	if (maybe_not_cuda && !attach_cuda_symbol(path, CW_API_cudaLaunchKernel, "cudaLaunchKernel"))
		return;
	for (size_t i = 0; i < sizeof(cuda_symbols) / sizeof(cuda_symbols[0]); i++) {
		if (maybe_not_cuda && cuda_symbols[i].api == CW_API_cudaLaunchKernel) {
			probes++;
			continue;
		}
		for (int s = 0; s < 3 && cuda_symbols[i].symbols[s]; s++)
			probes += attach_cuda_symbol(path, cuda_symbols[i].api, cuda_symbols[i].symbols[s]);
	}
	if (!probes)
		return;
	nlibraries++;
	json_escape(escaped, sizeof(escaped), path);
	snprintf(extra, sizeof(extra), "\"event\":\"library\",\"path\":\"%s\",\"pid\":%u,\"probes\":%d",
		 escaped, pid, probes);
	message("info", extra, "probing %d CUDA entry points in %s", probes, path);
}

void probe_cuda_library(const char *path)
{
	probe_cuda_file(path, 0, false);
}

static bool is_cuda_library(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	return !strncmp(base, "libcudart.so", 12) || !strncmp(base, "libcuda.so", 10);
}

void scan_process(__u32 pid)
{
	char maps[64], line[PATH_MAX + 256], path[PATH_MAX + 64];
	FILE *f;

	snprintf(maps, sizeof(maps), "/proc/%u/maps", pid);
	f = fopen(maps, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *file = strchr(line, '/');

		if (!file)
			continue;
		file[strcspn(file, "\n")] = 0;
		if (!is_cuda_library(file))
			continue;
		/* Through the process's root, so libraries inside containers resolve. */
		snprintf(path, sizeof(path), "/proc/%u/root%s", pid, file);
		probe_cuda_file(path, pid, false);
	}
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%u/exe", pid);
	probe_cuda_file(path, pid, true);
}

void scan_processes(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char *end, path[64], comm[CW_COMM_LEN + 2] = "";
		unsigned long pid = strtoul(de->d_name, &end, 10);
		FILE *f;

		if (*end || !pid)
			continue;
		if (follows_comms() && !is_followed(pid)) {
			snprintf(path, sizeof(path), "/proc/%lu/comm", pid);
			f = fopen(path, "re");
			if (f) {
				if (fgets(comm, sizeof(comm), f))
					comm[strcspn(comm, "\n")] = 0;
				fclose(f);
			}
			if (comm_matches(comm))
				follow(pid, true);
		}
		if (is_followed(pid))
			scan_process(pid);
	}
	closedir(d);
}

void scan_after_exec(__u32 pid)
{
	if (npending < MAX_PENDING_SCANS)
		pending[npending++] = (typeof(pending[0])){ pid, now_ns(CLOCK_MONOTONIC) + EXEC_SCAN_DELAY_MS * 1000000ull };
}

int next_scan_ms(__u64 now, int max_ms)
{
	int ms = max_ms;

	for (int i = 0; i < npending; i++) {
		int due = pending[i].due_ns > now ? (pending[i].due_ns - now + 999999) / 1000000 : 0;

		ms = due < ms ? due : ms;
	}
	return ms;
}

void scan_pending(__u64 now)
{
	for (int i = 0; i < npending;) {
		if (pending[i].due_ns > now) {
			i++;
			continue;
		}
		scan_process(pending[i].pid);
		pending[i] = pending[--npending];
	}
}

__u32 cuda_libraries(void)
{
	return nlibraries;
}
