// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * causeway-loader: the one privileged part of Causeway. Loads the CO-RE
 * programs, attaches them, finds CUDA libraries in followed processes, and
 * streams the ring buffer to stdout as framed binary records (causeway.h).
 * Takes commands on stdin, one per line:
 *   follow PID | unfollow PID | comm NAME | min KIND MICROSECONDS
 *   attach PATH | stats | quit
 * Exits 0 on SIGTERM, SIGINT, `quit` or end of stdin; exits 2 with a one-line
 * reason (stderr, and a MESSAGE frame) when capture cannot run here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "causeway.h"
#include "proc.skel.h"
#include "sched.skel.h"
#include "futex.skel.h"
#include "block.skel.h"
#include "tcp.skel.h"
#include "cuda.skel.h"

#define MAX_COMMS 32
#define MAX_FILES_SEEN 4096
#define MAX_LINKS 4096 /* about 30 CUDA library files, at 2 links per exported entry point */
#define RESCAN_MS 1000
/* Records are read at least this often: the probes wake the loader only for a full batch (cw_submit). */
#define POLL_MS 10
#define EXEC_SCAN_DELAY_MS 10 /* time for ld.so to map a new program's libraries */
#define MAX_PENDING_SCANS 64
#define OUT_CAPACITY (256 * 1024)

static const char *const kind_names[CW_KIND_MAX] = {
	[CW_KIND_CUDA_LAUNCH] = "cuda.launch",
	[CW_KIND_CUDA_SYNC] = "cuda.sync",
	[CW_KIND_CUDA_MEMCPY] = "cuda.memcpy",
	[CW_KIND_CUDA_MALLOC] = "cuda.malloc",
	[CW_KIND_SCHED_RUNQUEUE] = "sched.runqueue",
	[CW_KIND_SCHED_BLOCKED] = "sched.blocked",
	[CW_KIND_FUTEX_WAIT] = "futex.wait",
	[CW_KIND_BLOCK_IO] = "block.io",
	[CW_KIND_TCP_RETRANSMIT] = "tcp.retransmit",
};

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

static struct {
	struct proc_bpf *proc;
	struct sched_bpf *sched;
	struct futex_bpf *futex;
	struct block_bpf *block;
	struct tcp_bpf *tcp;
	struct cuda_bpf *cuda;
	struct ring_buffer *ring;
	int settings_fd, followed_fd, drops_fd, events_fd;
	struct cw_settings settings;
	__u32 ringbuf_bytes;
	const volatile __u64 *ring_consumer, *ring_producer;
	char comms[MAX_COMMS][CW_COMM_LEN];
	int ncomms;
	struct bpf_link *links[MAX_LINKS];
	int nlinks;
	struct file_id seen[MAX_FILES_SEEN]; /* files already probed, or known not to be CUDA */
	int nseen;
	int nlibraries;
	__u64 delivered[CW_KIND_MAX];
	struct {
		__u32 pid;
		__u64 due_ns;
	} pending[MAX_PENDING_SCANS]; /* followed processes that just exec'd */
	int npending;
	bool quiet_libbpf; /* while probing for optional symbols */
	unsigned char out[OUT_CAPACITY];
	size_t out_len;
	size_t batch_start; /* offset of the open EVENTS frame header, or SIZE_MAX */
} L = { .batch_start = SIZE_MAX };

static volatile sig_atomic_t exiting;

static void on_signal(int sig)
{
	(void)sig;
	exiting = 1;
}

static void write_all(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len) {
		ssize_t n = write(STDOUT_FILENO, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			exit(0); /* the reader is gone: nothing left to do */
		p += n;
		len -= n;
	}
}

static void flush_out(void)
{
	if (L.batch_start != SIZE_MAX) {
		struct cw_frame *f = (struct cw_frame *)(L.out + L.batch_start);

		f->size = L.out_len - L.batch_start - sizeof(*f);
		L.batch_start = SIZE_MAX;
	}
	write_all(L.out, L.out_len);
	L.out_len = 0;
}

static void emit_frame(__u32 type, const void *payload, __u32 size)
{
	struct cw_frame f = { .type = type, .size = size };

	if (L.out_len + sizeof(f) + size > OUT_CAPACITY || L.batch_start != SIZE_MAX)
		flush_out();
	if (sizeof(f) + size > OUT_CAPACITY) {
		write_all(&f, sizeof(f));
		write_all(payload, size);
		return;
	}
	memcpy(L.out + L.out_len, &f, sizeof(f));
	memcpy(L.out + L.out_len + sizeof(f), payload, size);
	L.out_len += sizeof(f) + size;
}

static void emit_event(const struct cw_event *e)
{
	if (L.out_len + sizeof(struct cw_frame) + sizeof(*e) > OUT_CAPACITY)
		flush_out();
	if (L.batch_start == SIZE_MAX) {
		struct cw_frame f = { .type = CW_FRAME_EVENTS };

		L.batch_start = L.out_len;
		memcpy(L.out + L.out_len, &f, sizeof(f));
		L.out_len += sizeof(f);
	}
	memcpy(L.out + L.out_len, e, sizeof(*e));
	L.out_len += sizeof(*e);
}

/* Appends s to a JSON string body, escaped. */
static size_t json_escape(char *dst, size_t cap, const char *s)
{
	size_t n = 0;

	for (; *s && n + 7 < cap; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\') {
			dst[n++] = '\\';
			dst[n++] = c;
		} else if (c < 0x20) {
			n += snprintf(dst + n, cap - n, "\\u%04x", c);
		} else {
			dst[n++] = c;
		}
	}
	dst[n] = 0;
	return n;
}

/* A MESSAGE frame: {"level":..,"msg":..} plus extra JSON members (already formatted). */
static void message(const char *level, const char *extra, const char *fmt, ...)
{
	char text[1024], escaped[2048], json[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_escape(escaped, sizeof(escaped), text);
	n = snprintf(json, sizeof(json), "{\"level\":\"%s\",\"msg\":\"%s\"%s%s}", level, escaped,
		     extra && *extra ? "," : "", extra ? extra : "");
	emit_frame(CW_FRAME_MESSAGE, json, n < (int)sizeof(json) ? n : (int)sizeof(json) - 1);
	flush_out();
}

static void __attribute__((noreturn)) cannot_run(const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	fprintf(stderr, "causeway-loader: %s\n", text);
	message("error", NULL, "%s", text);
	exit(2);
}

static int on_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG || (L.quiet_libbpf && level == LIBBPF_WARN))
		return 0;
	return vfprintf(stderr, fmt, args);
}

static bool has_capability(int cap)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = {};

	if (syscall(SYS_capget, &hdr, data))
		return false;
	return data[cap / 32].effective & (1u << (cap % 32));
}

static void check_can_run(void)
{
	struct stat st;

	if (!has_capability(CAP_SYS_ADMIN) && !(has_capability(CAP_BPF) && has_capability(CAP_PERFMON)))
		cannot_run("missing capability: run as root or grant CAP_BPF and CAP_PERFMON");
	if (access("/sys/kernel/btf/vmlinux", R_OK))
		cannot_run("no kernel BTF at /sys/kernel/btf/vmlinux (needs CONFIG_DEBUG_INFO_BTF=y)");
	if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL) != 1)
		cannot_run("no BPF ring buffer in this kernel (needs Linux 5.8 or later)");
	/* Syscall tracepoints are found through tracefs; mount it where libbpf looks. */
	if (stat("/sys/kernel/tracing/events", &st) && stat("/sys/kernel/debug/tracing/events", &st) &&
	    mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL))
		cannot_run("tracefs is not mounted and mounting it at /sys/kernel/tracing failed: %s",
			   strerror(errno));
}

static bool vmlinux_has_type(const char *name)
{
	struct btf *btf = btf__load_vmlinux_btf();
	bool found;

	if (!btf)
		return false;
	found = btf__find_by_name_kind(btf, name, BTF_KIND_TYPEDEF) >= 0;
	btf__free(btf);
	return found;
}

/* Every object after the first reuses the first one's shared maps. */
static int share_maps(struct bpf_object *obj)
{
	static const char *const names[] = { "events", "followed", "drops", "settings" };
	int fds[] = { L.events_fd, L.followed_fd, L.drops_fd, L.settings_fd };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct bpf_map *m = bpf_object__find_map_by_name(obj, names[i]);
		int err = m ? bpf_map__reuse_fd(m, fds[i]) : -ENOENT;

		if (err)
			return err;
	}
	return 0;
}

static void keep_link(struct bpf_link *link)
{
	static bool warned;

	if (L.nlinks < MAX_LINKS) {
		L.links[L.nlinks++] = link;
		return;
	}
	bpf_link__destroy(link);
	if (!warned)
		message("warn", "\"event\":\"probe_limit\"", "more than %d probes: further CUDA entry points are not probed", MAX_LINKS);
	warned = true;
}

/* Attaches every auto-attachable program of obj; a missing tracepoint is a warning, not fatal. */
static void attach_object(struct bpf_object *obj)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj) {
		struct bpf_link *link;
		char extra[256];

		if (!bpf_program__autoload(prog))
			continue;
		link = bpf_program__attach(prog);
		if (!link) {
			snprintf(extra, sizeof(extra), "\"event\":\"attach_failed\",\"probe\":\"%s\"",
				 bpf_program__name(prog));
			message("warn", extra, "cannot attach %s: %s", bpf_program__name(prog), strerror(errno));
			continue;
		}
		keep_link(link);
	}
}

#define OPEN_LOAD(field, skel)                                                                   \
	do {                                                                                      \
		L.field = skel##__open();                                                         \
		if (!L.field)                                                                     \
			cannot_run("cannot open the " #field " programs: %s", strerror(errno));   \
		if (share_maps(L.field->obj))                                                     \
			cannot_run("cannot share maps with the " #field " programs");             \
		if (skel##__load(L.field))                                                        \
			cannot_run("the kernel refused the " #field " programs (see stderr)");    \
	} while (0)

static void load_programs(__u32 ringbuf_mb)
{
	L.proc = proc_bpf__open();
	if (!L.proc)
		cannot_run("cannot open the proc programs: %s", strerror(errno));
	L.ringbuf_bytes = ringbuf_mb << 20;
	if (bpf_map__set_max_entries(L.proc->maps.events, L.ringbuf_bytes))
		cannot_run("bad ring buffer size %u MiB (a power of two is needed)", ringbuf_mb);
	if (proc_bpf__load(L.proc))
		cannot_run("the kernel refused the proc programs (see stderr)");
	L.events_fd = bpf_map__fd(L.proc->maps.events);
	L.followed_fd = bpf_map__fd(L.proc->maps.followed);
	L.drops_fd = bpf_map__fd(L.proc->maps.drops);
	L.settings_fd = bpf_map__fd(L.proc->maps.settings);

	OPEN_LOAD(sched, sched_bpf);
	OPEN_LOAD(futex, futex_bpf);
	L.block = block_bpf__open();
	if (!L.block)
		cannot_run("cannot open the block programs: %s", strerror(errno));
	/* block_io_start (Linux 6.5) names the submitter; without it the issuer is used. */
	if (!vmlinux_has_type("btf_trace_block_io_start"))
		bpf_program__set_autoload(L.block->progs.block_io_start, false);
	if (share_maps(L.block->obj) || block_bpf__load(L.block))
		cannot_run("the kernel refused the block programs (see stderr)");
	OPEN_LOAD(tcp, tcp_bpf);
	OPEN_LOAD(cuda, cuda_bpf);

	attach_object(L.proc->obj);
	attach_object(L.sched->obj);
	attach_object(L.futex->obj);
	attach_object(L.block->obj);
	attach_object(L.tcp->obj);
}

static void push_settings(void)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(L.settings_fd, &zero, &L.settings, BPF_ANY))
		message("error", NULL, "cannot update settings: %s", strerror(errno));
}

static void follow(__u32 pid, bool on)
{
	__u8 one = 1;

	if (on)
		bpf_map_update_elem(L.followed_fd, &pid, &one, BPF_ANY);
	else
		bpf_map_delete_elem(L.followed_fd, &pid);
}

static bool is_followed(__u32 pid)
{
	__u8 v;

	if (L.settings.follow_all)
		return pid != L.settings.exclude[0] && pid != L.settings.exclude[1];
	return bpf_map_lookup_elem(L.followed_fd, &pid, &v) == 0;
}

static __u64 now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static bool seen_file(const struct stat *st)
{
	for (int i = 0; i < L.nseen; i++)
		if (L.seen[i].dev == st->st_dev && L.seen[i].ino == st->st_ino)
			return true;
	if (L.nseen == MAX_FILES_SEEN) {
		static bool warned;

		/* Probing a file twice would double its events: past the limit, new files are skipped. */
		if (!warned)
			message("warn", "\"event\":\"file_limit\"", "more than %d executables and libraries seen: new ones are not probed", MAX_FILES_SEEN);
		warned = true;
		return true;
	}
	L.seen[L.nseen++] = (struct file_id){ st->st_dev, st->st_ino };
	return false;
}

static bool attach_symbol(const char *path, __u32 api, const char *symbol)
{
	struct bpf_link *enter, *exit;
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .func_name = symbol, .bpf_cookie = api);

	enter = bpf_program__attach_uprobe_opts(L.cuda->progs.cuda_enter, -1, path, 0, &opts);
	if (!enter)
		return false;
	opts.retprobe = true;
	exit = bpf_program__attach_uprobe_opts(L.cuda->progs.cuda_exit, -1, path, 0, &opts);
	if (!exit) {
		bpf_link__destroy(enter);
		return false;
	}
	keep_link(enter);
	keep_link(exit);
	return true;
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
	L.quiet_libbpf = true;
	if (maybe_not_cuda && !attach_symbol(path, CW_API_cudaLaunchKernel, "cudaLaunchKernel")) {
		L.quiet_libbpf = false;
		return;
	}
	for (size_t i = 0; i < sizeof(cuda_symbols) / sizeof(cuda_symbols[0]); i++) {
		if (maybe_not_cuda && cuda_symbols[i].api == CW_API_cudaLaunchKernel) {
			probes++;
			continue;
		}
		for (int s = 0; s < 3 && cuda_symbols[i].symbols[s]; s++)
			probes += attach_symbol(path, cuda_symbols[i].api, cuda_symbols[i].symbols[s]);
	}
	L.quiet_libbpf = false;
	if (!probes)
		return;
	L.nlibraries++;
	json_escape(escaped, sizeof(escaped), path);
	snprintf(extra, sizeof(extra), "\"event\":\"library\",\"path\":\"%s\",\"pid\":%u,\"probes\":%d",
		 escaped, pid, probes);
	message("info", extra, "probing %d CUDA entry points in %s", probes, path);
}

static bool is_cuda_library(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	return !strncmp(base, "libcudart.so", 12) || !strncmp(base, "libcuda.so", 10);
}

/* Looks for CUDA libraries in a process's mappings and for a statically linked runtime. */
static void scan_process(__u32 pid)
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

static bool comm_matches(const char *comm)
{
	for (int i = 0; i < L.ncomms; i++)
		if (!strncmp(L.comms[i], comm, CW_COMM_LEN - 1))
			return true;
	return false;
}

/* One pass over /proc: follow processes by comm, and find CUDA libraries in followed ones. */
static void scan_processes(void)
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
		if (L.ncomms && !is_followed(pid)) {
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

static void emit_stats(void)
{
	int ncpus = libbpf_num_possible_cpus();
	__u64 values[ncpus > 0 ? ncpus : 1];
	struct cw_stats s = {};
	__u64 real_before, real_after;
	__u8 v;
	__u32 key, next;

	for (__u32 kind = 0; kind < CW_KIND_MAX; kind++) {
		if (bpf_map_lookup_elem(L.drops_fd, &kind, values))
			continue;
		for (int c = 0; c < ncpus; c++)
			s.drops[kind] += values[c];
		s.events[kind] = L.delivered[kind];
	}
	if (L.ring_consumer && L.ring_producer)
		s.ringbuf_used = *L.ring_producer - *L.ring_consumer;
	if (!L.settings.follow_all)
		for (int err = bpf_map_get_next_key(L.followed_fd, NULL, &key); !err;
		     err = bpf_map_get_next_key(L.followed_fd, &key, &next), key = next)
			if (!bpf_map_lookup_elem(L.followed_fd, &key, &v))
				s.followed++;
	s.libraries = L.nlibraries;
	/* The monotonic sample sits between two realtime samples: take their midpoint. */
	real_before = now_ns(CLOCK_REALTIME);
	s.mono_ns = now_ns(CLOCK_MONOTONIC);
	real_after = now_ns(CLOCK_REALTIME);
	s.real_ns = real_before + (real_after - real_before) / 2;
	emit_frame(CW_FRAME_STATS, &s, sizeof(s));
	flush_out();
}

static int kind_by_name(const char *name)
{
	for (int k = 0; k < CW_KIND_MAX; k++)
		if (kind_names[k] && !strcmp(kind_names[k], name))
			return k;
	return -1;
}

static bool set_min(const char *kind_name, const char *us)
{
	int kind = kind_by_name(kind_name);
	char *end;
	unsigned long long v = strtoull(us, &end, 10);

	if (kind < 0 || *end || end == us)
		return false;
	L.settings.min_ns[kind] = v * 1000;
	return true;
}

static void add_comm(const char *name)
{
	if (L.ncomms < MAX_COMMS)
		snprintf(L.comms[L.ncomms++], CW_COMM_LEN, "%s", name);
}

static void on_exec(const struct cw_event *e)
{
	if (L.ncomms && comm_matches(e->comm))
		follow(e->pid, true);
	if (is_followed(e->pid) && L.npending < MAX_PENDING_SCANS)
		L.pending[L.npending++] = (typeof(L.pending[0])){ e->pid, now_ns(CLOCK_MONOTONIC) + EXEC_SCAN_DELAY_MS * 1000000ull };
}

/* Milliseconds until the next pending scan is due, at most max_ms. */
static int next_scan_ms(__u64 now, int max_ms)
{
	int ms = max_ms;

	for (int i = 0; i < L.npending; i++) {
		int due = L.pending[i].due_ns > now ? (L.pending[i].due_ns - now + 999999) / 1000000 : 0;

		ms = due < ms ? due : ms;
	}
	return ms;
}

static void scan_pending(__u64 now)
{
	for (int i = 0; i < L.npending;) {
		if (L.pending[i].due_ns > now) {
			i++;
			continue;
		}
		scan_process(L.pending[i].pid);
		L.pending[i] = L.pending[--L.npending];
	}
}

static int on_record(void *ctx, void *data, size_t size)
{
	const struct cw_event *e = data;

	(void)ctx;
	if (size < sizeof(*e))
		return 0;
	if (e->kind == CW_KIND_PROC_EXEC)
		on_exec(e);
	if (e->kind < CW_KIND_MAX)
		L.delivered[e->kind]++;
	emit_event(e);
	return 0;
}

static void handle_command(char *line)
{
	char *verb = strtok(line, " \t\r\n"), *arg = strtok(NULL, " \t\r\n"), *arg2 = strtok(NULL, " \t\r\n");
	char *end;
	unsigned long pid = arg ? strtoul(arg, &end, 10) : 0;

	if (!verb)
		return;
	if (!strcmp(verb, "follow") && arg && !*end && pid) {
		follow(pid, true);
		scan_process(pid);
	} else if (!strcmp(verb, "unfollow") && arg && !*end && pid) {
		follow(pid, false);
	} else if (!strcmp(verb, "comm") && arg) {
		add_comm(arg);
		scan_processes();
	} else if (!strcmp(verb, "min") && arg && arg2 && set_min(arg, arg2)) {
		push_settings();
	} else if (!strcmp(verb, "attach") && arg) {
		probe_cuda_file(arg, 0, false);
	} else if (!strcmp(verb, "stats")) {
		emit_stats();
	} else if (!strcmp(verb, "quit")) {
		exiting = 1;
	} else {
		message("warn", "\"event\":\"bad_command\"", "unknown or malformed command: %s%s%s", verb,
			arg ? " " : "", arg ? arg : "");
	}
}

/* Reads whole lines from stdin; returns false at end of input. */
static bool read_commands(void)
{
	static char buf[4096];
	static size_t len;
	ssize_t n = read(STDIN_FILENO, buf + len, sizeof(buf) - 1 - len);
	char *nl;

	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	if (n == 0)
		return false;
	len += n;
	buf[len] = 0;
	while ((nl = memchr(buf, '\n', len))) {
		*nl = 0;
		handle_command(buf);
		len -= nl + 1 - buf;
		memmove(buf, nl + 1, len);
	}
	if (len == sizeof(buf) - 1)
		len = 0; /* an absurdly long line: drop it rather than stall */
	return true;
}

static void map_ring_positions(void)
{
	long page = sysconf(_SC_PAGESIZE);
	void *cons = mmap(NULL, page, PROT_READ, MAP_SHARED, L.events_fd, 0);
	void *prod = mmap(NULL, page, PROT_READ, MAP_SHARED, L.events_fd, page);

	L.ring_consumer = cons == MAP_FAILED ? NULL : cons;
	L.ring_producer = prod == MAP_FAILED ? NULL : prod;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: causeway-loader [--pid P]... [--comm NAME]... [--lib PATH]... [--all]\n"
		"                       [--min-duration-us N] [--min KIND=US]... [--ringbuf-mb N] [--stats-ms N]\n"
		"Loads Causeway's eBPF programs and writes framed records (bpf/causeway.h) on stdout.\n"
		"Commands on stdin: follow PID | unfollow PID | comm NAME | min KIND US | attach PATH | stats | quit\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "pid", required_argument, NULL, 'p' },   { "comm", required_argument, NULL, 'c' },
		{ "lib", required_argument, NULL, 'l' },   { "all", no_argument, NULL, 'a' },
		{ "min-duration-us", required_argument, NULL, 'm' },
		{ "min", required_argument, NULL, 'k' },   { "ringbuf-mb", required_argument, NULL, 'r' },
		{ "stats-ms", required_argument, NULL, 's' }, { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *libs[64];
	__u32 pids[256];
	int nlibs = 0, npids = 0, opt;
	unsigned long ringbuf_mb = 16, stats_ms = 1000;
	struct cw_hello hello;
	struct pollfd fds[2];
	__u64 last_stats, last_scan;
	char *eq;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'p':
			if (npids < 256)
				pids[npids++] = strtoul(optarg, NULL, 10);
			break;
		case 'c':
			add_comm(optarg);
			break;
		case 'l':
			if (nlibs < 64)
				libs[nlibs++] = optarg;
			break;
		case 'a':
			L.settings.follow_all = 1;
			L.settings.exclude[0] = getpid();
			L.settings.exclude[1] = getppid();
			break;
		case 'm':
			for (int k = 0; k < CW_KIND_MAX; k++)
				if (k != CW_KIND_CUDA_LAUNCH && k != CW_KIND_TCP_RETRANSMIT)
					L.settings.min_ns[k] = strtoull(optarg, NULL, 10) * 1000;
			break;
		case 'k':
			eq = strchr(optarg, '=');
			if (!eq || (*eq = 0, !set_min(optarg, eq + 1)))
				cannot_run("bad --min %s: expected KIND=MICROSECONDS", optarg);
			break;
		case 'r':
			ringbuf_mb = strtoul(optarg, NULL, 10);
			break;
		case 's':
			stats_ms = strtoul(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!ringbuf_mb || (ringbuf_mb & (ringbuf_mb - 1)) || ringbuf_mb > 1024)
		cannot_run("--ringbuf-mb must be a power of two from 1 to 1024");
	if (!stats_ms)
		stats_ms = 1000;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	libbpf_set_print(on_libbpf_print);
	check_can_run();
	load_programs(ringbuf_mb);
	push_settings();
	for (int i = 0; i < npids; i++)
		follow(pids[i], true);

	L.ring = ring_buffer__new(L.events_fd, on_record, NULL, NULL);
	if (!L.ring)
		cannot_run("cannot open the ring buffer: %s", strerror(errno));
	map_ring_positions();
	for (int i = 0; i < nlibs; i++)
		probe_cuda_file(libs[i], 0, false);
	scan_processes();

	hello = (struct cw_hello){ CW_ABI_VERSION, sizeof(struct cw_event), L.ringbuf_bytes,
				   libbpf_num_possible_cpus() };
	emit_frame(CW_FRAME_HELLO, &hello, sizeof(hello));
	emit_stats();

	fds[0] = (struct pollfd){ .fd = ring_buffer__epoll_fd(L.ring), .events = POLLIN };
	fds[1] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
	last_stats = last_scan = now_ns(CLOCK_MONOTONIC);
	while (!exiting) {
		__u64 now;

		if (poll(fds, 2, next_scan_ms(now_ns(CLOCK_MONOTONIC), POLL_MS)) < 0 && errno != EINTR)
			break;
		ring_buffer__consume(L.ring);
		if (fds[1].revents & (POLLIN | POLLHUP) && !read_commands())
			break;
		flush_out();
		now = now_ns(CLOCK_MONOTONIC);
		scan_pending(now);
		if (now - last_scan >= RESCAN_MS * 1000000ull) {
			scan_processes();
			last_scan = now;
		}
		if (now - last_stats >= stats_ms * 1000000ull) {
			emit_stats();
			last_stats = now;
		}
	}

	for (int i = 0; i < L.nlinks; i++)
		bpf_link__destroy(L.links[i]);
	ring_buffer__consume(L.ring);
	flush_out();
	emit_stats();
	ring_buffer__free(L.ring);
	cuda_bpf__destroy(L.cuda);
	tcp_bpf__destroy(L.tcp);
	block_bpf__destroy(L.block);
	futex_bpf__destroy(L.futex);
	sched_bpf__destroy(L.sched);
	proc_bpf__destroy(L.proc);
	return 0;
}
