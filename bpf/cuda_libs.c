// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * CUDA discovery. The CUDA probes attach per file, so the loader finds every
 * process that maps libcudart or libcuda, or whose executable links the runtime
 * statically: all running processes once at start (a pass over /proc), a new
 * program at its exec (its executable), and a library mapped at any later time
 * (the probes report each executable mapping of a CUDA library, cuda.bpf.c).
 * Where the kernel cannot report mappings, every process is rescanned
 * periodically instead. A file is probed once (by device and inode), whichever
 * process maps it, since a uprobe fires in every process that maps the file.
 * The same passes look for the thread context of every followed process (thread_ctx.c).
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "attach.h"
#include "cuda_libs.h"
#include "cuda_symbols.h"
#include "elf_symbols.h"
#include "filter.h"
#include "frames.h"
#include "gpu_processes.h"
#include "process_dir.h"
#include "thread_ctx.h"

#define MAX_FILES_SEEN 4096
#define MAX_LIBRARIES 64

/* A file already looked at: the library it is, or -1 when it holds no CUDA entry point. */
struct file_seen {
	dev_t dev;
	ino_t ino;
	int library;
};

static struct file_seen seen[MAX_FILES_SEEN];
static int nseen;
static char *libraries[MAX_LIBRARIES]; /* the path each probed file was first found at */
static __u32 nlibraries;
static bool list_only;

void cuda_libs_list_only(void)
{
	list_only = true;
}

/* The entry of a file looked at before, or NULL. */
static struct file_seen *seen_file(const struct stat *st)
{
	for (int i = 0; i < nseen; i++)
		if (seen[i].dev == st->st_dev && seen[i].ino == st->st_ino)
			return &seen[i];
	return NULL;
}

/* Remembers a file; false past the limit, where probing it again could double its events. */
static bool remember_file(const struct stat *st, int library)
{
	static bool warned;

	if (nseen < MAX_FILES_SEEN) {
		seen[nseen++] = (struct file_seen){ st->st_dev, st->st_ino, library };
		return true;
	}
	if (!warned)
		message("warn", "\"event\":\"file_limit\"",
			"more than %d executables and libraries seen: new ones are not probed", MAX_FILES_SEEN);
	warned = true;
	return false;
}

/* Attaches the probes at the entry points found, and says so; the number attached. */
static int attach_entry_points(const char *path, const char *shown, const size_t *offsets, __u32 pid)
{
	char extra[PATH_MAX * 2 + 160], escaped[PATH_MAX * 2];
	size_t found_offsets[NSYMBOLS];
	__u32 apis[NSYMBOLS];
	int found = 0, probes;

	for (size_t i = 0; i < NSYMBOLS; i++)
		if (offsets[i]) {
			apis[found] = cuda_symbols[i].api;
			found_offsets[found++] = offsets[i];
		}
	probes = list_only ? found : attach_cuda_functions(path, apis, found_offsets, found);
	if (!probes)
		return 0;
	json_escape(escaped, sizeof(escaped), shown);
	snprintf(extra, sizeof(extra), "\"event\":\"library\",\"path\":\"%s\",\"pid\":%u,\"probes\":%d%s%s%s",
		 escaped, pid, probes, list_only ? "" : ",\"attach\":\"", list_only ? "" : cuda_attach_mode(),
		 list_only ? "" : "\"");
	message("info", extra, "%s %d CUDA entry points in %s", list_only ? "found" : "probing", probes, shown);
	return probes;
}

/*
 * Probes every CUDA entry point the file defines, once per file; shown is the path as
 * the process names it. For an executable, which may or may not link the runtime, the
 * file counts as CUDA only if it defines cudaLaunchKernel. Returns the library's index,
 * or -1 when the file is not CUDA.
 */
static int probe_cuda_file(const char *path, const char *shown, __u32 pid, bool maybe_not_cuda)
{
	static const char *names[NSYMBOLS];
	static bool warned;
	size_t offsets[NSYMBOLS];
	struct file_seen *known;
	struct stat st;
	bool cuda;

	if (stat(path, &st) || !S_ISREG(st.st_mode))
		return -1;
	known = seen_file(&st);
	if (known)
		return known->library;
	for (size_t i = 0; i < NSYMBOLS; i++)
		names[i] = cuda_symbols[i].symbol;
	/* offsets[0] is cudaLaunchKernel's. */
	cuda = elf_function_offsets(path, names, NSYMBOLS, offsets) > 0 && (!maybe_not_cuda || offsets[0]);
	if (cuda && nlibraries == MAX_LIBRARIES) {
		if (!warned)
			message("warn", "\"event\":\"library_limit\"",
				"more than %d CUDA libraries: new ones are not probed", MAX_LIBRARIES);
		warned = true;
		cuda = false;
	}
	if (!remember_file(&st, cuda ? (int)nlibraries : -1) || !cuda)
		return -1;
	if (!attach_entry_points(path, shown, offsets, pid)) {
		seen[nseen - 1].library = -1;
		return -1;
	}
	libraries[nlibraries] = strdup(shown);
	return nlibraries++;
}

void probe_cuda_library(const char *path)
{
	probe_cuda_file(path, path, 0, false);
}

static bool is_cuda_library(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	return !strncmp(base, "libcudart.so", 12) || !strncmp(base, "libcuda.so", 10);
}

/*
 * Probes the CUDA libraries that dir/maps lists, dir being process pid's /proc directory; false
 * when it lists nothing: gone, a kernel thread, or a main thread that has ended.
 */
static bool scan_maps(__u32 pid, const char *dir, enum cw_gpu_process how)
{
	char maps[80], line[PATH_MAX + 256], path[PATH_MAX + 96];
	bool listed = false;
	int library;
	FILE *f;

	snprintf(maps, sizeof(maps), "%s/maps", dir);
	f = fopen(maps, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char *file = strchr(line, '/');

		listed = true;
		if (!file)
			continue;
		file[strcspn(file, "\n")] = 0;
		if (!is_cuda_library(file))
			continue;
		/* Through the process's root, so libraries inside containers resolve. */
		snprintf(path, sizeof(path), "%s/root%s", dir, file);
		library = probe_cuda_file(path, file, pid, false);
		if (library >= 0)
			gpu_process_uses(pid, library, how);
	}
	fclose(f);
	return listed;
}

void scan_process(__u32 pid, enum cw_gpu_process how)
{
	char dir[64], path[PATH_MAX + 96], exe[PATH_MAX];
	ssize_t len;
	int library;

	/* Every process on the node at start: process_dir's read of its state only where the maps are empty. */
	snprintf(dir, sizeof(dir), "/proc/%u", pid);
	if (!scan_maps(pid, dir, how) && (!process_dir(pid, dir, sizeof(dir)) || !scan_maps(pid, dir, how)))
		return; /* a kernel thread, or gone */
	snprintf(path, sizeof(path), "%s/exe", dir);
	len = readlink(path, exe, sizeof(exe) - 1);
	if (len <= 0)
		return;
	exe[len] = 0;
	library = probe_cuda_file(path, exe, pid, true);
	if (library >= 0)
		gpu_process_uses(pid, library, how);
}

void check_executable(__u32 pid)
{
	char dir[64], path[80], exe[PATH_MAX];
	ssize_t len;
	int library;

	/* At every exec on the node: the thread that exec'd is the main thread now, read at once. */
	snprintf(path, sizeof(path), "/proc/%u/exe", pid);
	len = readlink(path, exe, sizeof(exe) - 1);
	if (len <= 0 && process_dir(pid, dir, sizeof(dir))) { /* its main thread has ended since */
		snprintf(path, sizeof(path), "%s/exe", dir);
		len = readlink(path, exe, sizeof(exe) - 1);
	}
	if (len <= 0)
		return;
	exe[len] = 0;
	library = probe_cuda_file(path, exe, pid, true);
	if (library >= 0)
		gpu_process_uses(pid, library, CW_GPU_SEEN_STARTING);
}

static void follow_by_comm(unsigned long pid)
{
	char path[64], comm[CW_COMM_LEN + 2] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%lu/comm", pid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(comm, sizeof(comm), f))
		comm[strcspn(comm, "\n")] = 0;
	fclose(f);
	if (comm_matches(comm))
		follow(pid, true);
}

int scan_processes(bool cuda)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int processes = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char *end;
		unsigned long pid = strtoul(de->d_name, &end, 10);

		if (*end || !pid)
			continue;
		processes++;
		if (follows_comms() && !is_followed(pid))
			follow_by_comm(pid);
		if (cuda)
			scan_process(pid, CW_GPU_FOUND_RUNNING);
		if (is_followed(pid))
			thread_ctx_scan(pid);
	}
	closedir(d);
	return processes;
}

__u32 cuda_libraries(void)
{
	return nlibraries;
}

const char *cuda_library_path(int library)
{
	return library >= 0 && (__u32)library < nlibraries ? libraries[library] : "";
}
