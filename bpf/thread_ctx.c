// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The OpenTelemetry thread context (OTEP 4947): an app's SDK publishes the span active on each
 * thread through the TLS variable otel_thread_ctx_v1, a pointer to a record that starts with the
 * trace and span ids (struct cw_otel_thread_ctx_record). The probes read it at the moment an event
 * begins (cw_read_span_context, common.bpf.h), from the thread pointer plus an offset per
 * process, which this file finds and writes into the thread_ctx map:
 *  - the variable in the executable (local-exec): the executable's TLS block is the first,
 *    right below the thread pointer, where glibc puts it (x86_64, TLS_TCB_AT_TP: at
 *    roundup(p_memsz - firstbyte, p_align) + firstbyte below it, _dl_determine_tlsoffset);
 *  - the variable in a shared library reached with initial-exec TLS: ld.so writes its offset
 *    into the GOT slot of the library's R_X86_64_TPOFF64 relocation, read from /proc/PID/mem
 *    once the library is relocated (a library just mapped, or still being mapped, is read
 *    again until its slot holds an offset);
 *  - a library that reaches it only through the DTV (general dynamic, TLS descriptors) is not
 *    read: said in a warning and counted (STATS thread_ctx_unresolved), like a slot never relocated.
 * Looked for in every followed process at start, at its exec, when it is newly followed, and
 * whenever it maps code (proc.bpf.c reports it); a forked child inherits its parent's offset in
 * the probes. Each file is looked at once (by device and inode).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "clock.h"
#include "elf_symbols.h"
#include "filter.h"
#include "frames.h"
#include "process_dir.h"
#include "thread_ctx.h"

#define SYMBOL "otel_thread_ctx_v1"
#define MAX_FILES 8192
#define MAX_PENDING 256
#define MAX_REPORTED 4096
/* How long a library's slot may stay unrelocated after it was mapped (ld.so relocates it in microseconds). */
#define RELOCATION_WAIT_NS 2000000000ull

/* A file looked at: whether it exports the variable (1), does not (0), or could not be read (-1). */
struct file_seen {
	__u32 major, minor;
	__u64 ino;
	int exports;
	struct elf_tls_symbol tls;
};

/*
 * How far below the thread pointer the static TLS reaches at most. A slot read while ld.so is
 * still mapping the library (the whole file mapped at once, before each segment is mapped in
 * place) holds other bytes of the file, not an offset: read again, as one not yet relocated.
 */
#define MAX_STATIC_TLS (1ll << 30)

/* Whether a slot holds an offset as ld.so writes it: the static TLS lies below the thread pointer (x86_64). */
static bool relocated(__s64 offset)
{
	return offset < 0 && offset >= -MAX_STATIC_TLS;
}

/* A library whose slot held no offset yet (not relocated): read again until the deadline. */
struct pending {
	__u32 pid;
	__u64 slot;
	__u64 deadline_ns;
	char path[PATH_MAX];
};

static struct file_seen files[MAX_FILES];
static int nfiles;
static struct pending pending[MAX_PENDING];
static int npending;
static __u32 reported[MAX_REPORTED]; /* pids counted unresolved, each once per program */
static int nreported;
static __u32 unresolved;
static int map_fd = -1;

void thread_ctx_use_map(int fd)
{
	map_fd = fd;
}

static bool has_offset(__u32 pid)
{
	__s64 offset;

	return map_fd >= 0 && bpf_map_lookup_elem(map_fd, &pid, &offset) == 0;
}

static void set_offset(__u32 pid, __s64 offset, const char *model, const char *path)
{
	char escaped[PATH_MAX * 2], extra[PATH_MAX * 2 + 160];

	if (bpf_map_update_elem(map_fd, &pid, &offset, BPF_ANY)) {
		message("warn", "\"event\":\"thread_ctx_table_full\"", "cannot read the thread context of pid %u: %s",
			pid, strerror(errno));
		return;
	}
	read_thread_ctx();
	json_escape(escaped, sizeof(escaped), path);
	snprintf(extra, sizeof(extra),
		 "\"event\":\"thread_ctx\",\"pid\":%u,\"model\":\"%s\",\"path\":\"%s\",\"tp_offset\":%" PRId64, pid,
		 model, escaped, (int64_t)offset);
	message("info", extra, "pid %u publishes its active span (%s in %s, thread pointer %+" PRId64 ")", pid,
		model, path, (int64_t)offset);
}

/* A process exporting a context the probes cannot read: said, and counted once per program. */
static void cannot_read(__u32 pid, const char *path, const char *reason)
{
	char escaped[PATH_MAX * 2], extra[PATH_MAX * 2 + 256];

	for (int i = 0; i < nreported; i++)
		if (reported[i] == pid)
			return;
	if (nreported < MAX_REPORTED)
		reported[nreported++] = pid;
	unresolved++;
	json_escape(escaped, sizeof(escaped), path);
	snprintf(extra, sizeof(extra), "\"event\":\"thread_ctx_unresolved\",\"pid\":%u,\"path\":\"%s\",\"reason\":\"%s\"",
		 pid, escaped, reason);
	message("warn", extra, "pid %u publishes its active span in %s, which is not read: %s", pid, path, reason);
}

/* The program exec'd: a new one may be counted anew. */
static void forget_reported(__u32 pid)
{
	for (int i = 0; i < nreported; i++)
		if (reported[i] == pid) {
			reported[i] = reported[--nreported];
			return;
		}
}

static struct file_seen *seen_file(__u32 major, __u32 minor, __u64 ino)
{
	for (int i = 0; i < nfiles; i++)
		if (files[i].ino == ino && files[i].major == major && files[i].minor == minor)
			return &files[i];
	return NULL;
}

/*
 * The file, looked at through the root of the process whose /proc directory is dir (so files
 * inside containers resolve); NULL past the limit.
 */
static struct file_seen *look_at(const char *dir, __u32 major, __u32 minor, __u64 ino, const char *path)
{
	struct file_seen *f = seen_file(major, minor, ino);
	char through_root[PATH_MAX + 64];
	static bool warned;

	if (f)
		return f;
	if (nfiles == MAX_FILES) {
		if (!warned)
			message("warn", "\"event\":\"thread_ctx_file_limit\"",
				"more than %d files looked at for a thread context: new ones are not", MAX_FILES);
		warned = true;
		return NULL;
	}
	f = &files[nfiles++];
	*f = (struct file_seen){ .major = major, .minor = minor, .ino = ino };
	snprintf(through_root, sizeof(through_root), "%s/root%s", dir, path);
	f->exports = elf_tls_symbol(through_root, SYMBOL, &f->tls);
	return f;
}

/* The GOT slot's value: the variable's offset from the thread pointer, 0 before ld.so wrote it. */
static bool read_slot(__u32 pid, __u64 slot, __s64 *offset)
{
	char dir[64], mem[80];
	int fd;
	bool ok;

	if (!process_dir(pid, dir, sizeof(dir)))
		return false;
	snprintf(mem, sizeof(mem), "%s/mem", dir);
	fd = open(mem, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ok = pread(fd, offset, sizeof(*offset), (off_t)slot) == sizeof(*offset);
	close(fd);
	return ok;
}

static void wait_for_relocation(__u32 pid, __u64 slot, const char *path)
{
	for (int i = 0; i < npending; i++)
		if (pending[i].pid == pid)
			return;
	if (npending == MAX_PENDING) {
		cannot_read(pid, path, "too many libraries waiting to be relocated");
		return;
	}
	pending[npending] = (struct pending){ pid, slot, now_ns(CLOCK_MONOTONIC) + RELOCATION_WAIT_NS, "" };
	snprintf(pending[npending].path, sizeof(pending[npending].path), "%s", path);
	npending++;
}

/* The module at load address `start` (its mapping at file offset 0) exports the variable: where is it? */
static void resolve(__u32 pid, const struct file_seen *f, __u64 start, bool executable, const char *path)
{
	const struct elf_tls_symbol *t = &f->tls;
	__u64 bias = start - (t->first_load_vaddr & ~(__u64)(getpagesize() - 1));
	__s64 offset = 0;

	if (executable) {
		/* glibc: firstbyte aligns the block's first byte as p_vaddr is aligned within p_align. */
		__u64 firstbyte = -(t->tls_vaddr & (t->tls_align - 1)) & (t->tls_align - 1);
		__u64 block = (t->tls_memsz - firstbyte + t->tls_align - 1) / t->tls_align * t->tls_align + firstbyte;

		set_offset(pid, (__s64)(t->value - block), "executable", path);
	} else if (t->tpoff_slot) {
		if (!read_slot(pid, bias + t->tpoff_slot, &offset))
			cannot_read(pid, path, "its initial-exec slot could not be read");
		else if (!relocated(offset))
			wait_for_relocation(pid, bias + t->tpoff_slot, path);
		else
			set_offset(pid, offset, "initial-exec", path);
	} else {
		cannot_read(pid, path,
			    t->dynamic ? "dynamic TLS (general dynamic or TLS descriptors) is not supported"
				       : "no initial-exec relocation of the variable");
	}
}

/*
 * Looks at the files the process maps (only the one given by dev and ino when `only` is set),
 * until one exports the variable.
 */
static void scan(__u32 pid, bool only, __u32 major, __u32 minor, __u64 ino)
{
	char dir[64], path[80], exe[PATH_MAX], line[PATH_MAX + 256];
	ssize_t len;
	FILE *maps;

	if (map_fd < 0 || has_offset(pid) || !process_dir(pid, dir, sizeof(dir)))
		return;
	snprintf(path, sizeof(path), "%s/exe", dir);
	len = readlink(path, exe, sizeof(exe) - 1);
	if (len <= 0)
		return; /* a kernel thread, or gone */
	exe[len] = 0;
	snprintf(path, sizeof(path), "%s/maps", dir);
	maps = fopen(path, "re");
	if (!maps)
		return;
	while (fgets(line, sizeof(line), maps)) {
		unsigned long long start, end, offset, inode;
		unsigned int maj, min;
		char perms[8], *file;
		struct file_seen *f;
		int at = 0;

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &offset, &maj, &min, &inode,
			   &at) < 7 ||
		    !inode || offset || !at)
			continue;
		if (only && (inode != ino || maj != major || min != minor))
			continue;
		file = line + at;
		file[strcspn(file, "\n")] = 0;
		if (*file != '/')
			continue;
		f = look_at(dir, maj, min, inode, file);
		if (f && f->exports == 1) {
			resolve(pid, f, start, !strcmp(file, exe), file);
			break;
		}
	}
	fclose(maps);
}

void thread_ctx_scan(__u32 pid)
{
	scan(pid, false, 0, 0, 0);
}

void thread_ctx_exec(__u32 pid)
{
	forget_reported(pid);
	scan(pid, false, 0, 0, 0);
}

void thread_ctx_mapped(__u32 pid, __u32 dev, __u64 ino)
{
	__u32 major = dev >> 20, minor = dev & 0xfffff;
	struct file_seen *f = seen_file(major, minor, ino);

	if (f && f->exports != 1)
		return;
	scan(pid, true, major, minor, ino);
}

void thread_ctx_retry(void)
{
	__u64 now = now_ns(CLOCK_MONOTONIC);

	for (int i = 0; i < npending;) {
		struct pending *p = &pending[i];
		__s64 offset = 0;
		bool read = read_slot(p->pid, p->slot, &offset);

		if (read && relocated(offset)) {
			set_offset(p->pid, offset, "initial-exec", p->path);
		} else if (read && now >= p->deadline_ns) {
			cannot_read(p->pid, p->path, "its initial-exec slot was not relocated in time");
		} else if (read) {
			i++;
			continue;
		} /* else the process is gone */
		*p = pending[--npending];
	}
}

/* Entries in the probes' map: the BPF side drops a process at its exit and exec, and copies one at fork. */
__u32 thread_ctx_processes(void)
{
	__u32 n = 0, key, next;
	__s64 offset;

	if (map_fd >= 0)
		for (int err = bpf_map_get_next_key(map_fd, NULL, &key); !err;
		     err = bpf_map_get_next_key(map_fd, &key, &next), key = next)
			if (!bpf_map_lookup_elem(map_fd, &key, &offset))
				n++;
	return n;
}

__u32 thread_ctx_unresolved(void)
{
	return unresolved;
}
