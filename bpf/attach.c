// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Loading and attaching the probe families. The proc family is loaded first and
 * creates the shared maps; every other family reuses their fds, so all programs
 * write one ring and read one filter. Tracepoints attach at load; the CUDA
 * uprobes attach per library file, as cuda_libs.c finds them (by uprobe_multi links
 * where the kernel has them, else one uprobe per entry point), and the programs
 * watching for CUDA libraries being mapped (proc.bpf.c) when the loader is ready
 * for their records.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>

#include "attach.h"
#include "filter.h"
#include "frames.h"
#include "proc.skel.h"
#include "irq.skel.h"
#include "sched.skel.h"
#include "futex.skel.h"
#include "block.skel.h"
#include "tcp.skel.h"
#include "ipc.skel.h"
#include "cuda.skel.h"

#define MAX_LINKS 4096 /* about 30 CUDA library files, at 2 links per exported entry point */
#define MAX_MULTI_LINKS 128 /* 2 per CUDA library, of which cuda_libs.c probes at most 64 */

/*
 * The uprobe_multi link (Linux 6.6), as include/uapi/linux/bpf.h defines it: Debian 12's uapi
 * headers and libbpf 1.1 have neither the attach type nor the link's attributes, so the loader
 * makes the link with bpf(2) itself. The layout is the start of union bpf_attr's link_create.
 */
#define CW_TRACE_UPROBE_MULTI 48 /* enum bpf_attach_type's BPF_TRACE_UPROBE_MULTI */
#define CW_F_UPROBE_MULTI_RETURN (1U << 0)

struct uprobe_multi_link_create {
	__u32 prog_fd;
	__u32 target_fd;
	__u32 attach_type;
	__u32 flags;
	struct {
		__aligned_u64 path;
		__aligned_u64 offsets;
		__aligned_u64 ref_ctr_offsets;
		__aligned_u64 cookies;
		__u32 cnt;
		__u32 flags;
		__u32 pid; /* 0: every process that maps the file */
	} uprobe_multi;
};

static struct {
	struct proc_bpf *proc;
	struct irq_bpf *irq;
	struct sched_bpf *sched;
	struct futex_bpf *futex;
	struct block_bpf *block;
	struct tcp_bpf *tcp;
	struct ipc_bpf *ipc;
	struct cuda_bpf *cuda;
} skel;
static struct shared_maps maps;
static int cuda_threads_fd = -1; /* shared too, but only the probes and exits use it */
static int windows_fd = -1; /* likewise: the reduction's windows */
static int traces_ctx_fd = -1; /* OBI's map when reused, else the probes' own (empty, never read) */
static struct bpf_link *links[MAX_LINKS];
static int nlinks;
static bool cuda_multi; /* the CUDA programs attach by uprobe_multi links, kept in multi_links */
static int multi_links[MAX_MULTI_LINKS];
static int nmulti_links;

static bool has_capability(int cap)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = {};

	if (syscall(SYS_capget, &hdr, data))
		return false;
	return data[cap / 32].effective & (1u << (cap % 32));
}

void check_can_run(void)
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

static bool vmlinux_has(const char *name, __u32 kind)
{
	struct btf *btf = btf__load_vmlinux_btf();
	bool found;

	if (!btf)
		return false;
	found = btf__find_by_name_kind(btf, name, kind) >= 0;
	btf__free(btf);
	return found;
}

/* Every object after the first reuses the first one's shared maps. */
static int share_maps(struct bpf_object *obj)
{
	static const char *const names[] = { "events", "followed", "drops", "settings",
					     "interrupt_depth", "gpu_processes", "cuda_threads",
					     "windows", "thread_ctx", "traces_ctx_v1" };
	int fds[] = { maps.events, maps.followed, maps.drops, maps.settings,
		      maps.interrupt_depth, maps.gpu_processes, cuda_threads_fd,
		      windows_fd, maps.thread_ctx, traces_ctx_fd };

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

	if (nlinks < MAX_LINKS) {
		links[nlinks++] = link;
		return;
	}
	bpf_link__destroy(link);
	if (!warned)
		message("warn", "\"event\":\"probe_limit\"", "more than %d probes: further CUDA entry points are not probed", MAX_LINKS);
	warned = true;
}

/* Attaches one program; a missing tracepoint is a warning, not fatal. */
static void attach_program(struct bpf_program *prog)
{
	struct bpf_link *link = bpf_program__attach(prog);
	char extra[256];

	if (!link) {
		snprintf(extra, sizeof(extra), "\"event\":\"attach_failed\",\"probe\":\"%s\"",
			 bpf_program__name(prog));
		message("warn", extra, "cannot attach %s: %s", bpf_program__name(prog), strerror(errno));
		return;
	}
	keep_link(link);
}

static bool is_exit(struct bpf_program *prog)
{
	const char *name = bpf_program__name(prog);
	size_t len = strlen(name);

	return len > 5 && !strcmp(name + len - 5, "_exit");
}

/* Attaches every auto-attachable program of obj. */
static void attach_object(struct bpf_object *obj)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj)
		if (bpf_program__autoload(prog) && bpf_program__autoattach(prog))
			attach_program(prog);
}

/*
 * The interrupt counters' exit programs before their entries: an interrupt that began before
 * its entry program was attached then only fails to leave a depth it never entered, instead of
 * leaving its cpu counted as in an interrupt for good.
 */
static void attach_interrupt_depth(void)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, skel.irq->obj)
		if (is_exit(prog))
			attach_program(prog);
	bpf_object__for_each_program(prog, skel.irq->obj)
		if (!is_exit(prog))
			attach_program(prog);
}

#define OPEN_LOAD(field, skel_name)                                                              \
	do {                                                                                      \
		skel.field = skel_name##__open();                                                 \
		if (!skel.field)                                                                  \
			cannot_run("cannot open the " #field " programs: %s", strerror(errno));   \
		if (share_maps(skel.field->obj))                                                  \
			cannot_run("cannot share maps with the " #field " programs");             \
		if (skel_name##__load(skel.field))                                                \
			cannot_run("the kernel refused the " #field " programs (see stderr)");    \
	} while (0)

/*
 * A pipe's read and write functions, as each kernel names them: anon_pipe_read and
 * anon_pipe_write since Linux 6.16 (a FIFO's fifo_pipe_read and fifo_pipe_write call them, so
 * a FIFO is seen once, through them), pipe_read and pipe_write before.
 */
static const char *const pipe_functions[][2] = {
	{ "anon_pipe_read", "anon_pipe_write" },
	{ "pipe_read", "pipe_write" },
};

/* Points the fexit pipe programs at the functions this kernel's BTF has; NULL when it has neither pair. */
static const char *const *target_pipes(struct ipc_bpf *ipc)
{
	struct btf *btf = btf__load_vmlinux_btf();
	const char *const *found = NULL;

	for (size_t i = 0; btf && !found && i < sizeof(pipe_functions) / sizeof(pipe_functions[0]); i++)
		if (btf__find_by_name_kind(btf, pipe_functions[i][0], BTF_KIND_FUNC) >= 0 &&
		    btf__find_by_name_kind(btf, pipe_functions[i][1], BTF_KIND_FUNC) >= 0 &&
		    !bpf_program__set_attach_target(ipc->progs.pipe_read_exit, 0, pipe_functions[i][0]) &&
		    !bpf_program__set_attach_target(ipc->progs.pipe_write_exit, 0, pipe_functions[i][1]))
			found = pipe_functions[i];
	btf__free(btf);
	return found;
}

/* Loads one way of probing pipes, the fexit programs or the syscall tracepoints, and not the other. */
static void probe_pipes_by(struct bpf_object *obj, bool fexit)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj) {
		const char *section = bpf_program__section_name(prog);

		if (!strcmp(section, "fexit"))
			bpf_program__set_autoload(prog, fexit);
		else if (!strncmp(section, "tracepoint/syscalls/", strlen("tracepoint/syscalls/")))
			bpf_program__set_autoload(prog, !fexit);
	}
}

static bool quiet_libbpf; /* while trying fexit or uprobe_multi programs: a refusal is reported once, by the loader */

int on_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG || quiet_libbpf)
		return 0;
	return vfprintf(stderr, fmt, args);
}

/*
 * The ipc family. Pipes by fexit on their read and write functions where the kernel has them and
 * accepts fexit; otherwise (some kernels refuse fexit: no trampolines on the architecture, or a
 * locked-down build) by the read, readv, write and writev syscalls on a pipe, which run a
 * program on every such syscall of every process. The loader says which it uses.
 */
static void load_ipc(void)
{
	const char *const *targets = NULL;
	char why[256] = "";
	char extra[256];
	int err;

	for (bool try_fexit = true;; try_fexit = false) {
		skel.ipc = ipc_bpf__open();
		if (!skel.ipc)
			cannot_run("cannot open the ipc programs: %s", strerror(errno));
		targets = try_fexit ? target_pipes(skel.ipc) : NULL;
		if (try_fexit && !targets)
			snprintf(why, sizeof(why), "this kernel's BTF has neither %s and %s nor %s and %s",
				 pipe_functions[0][0], pipe_functions[0][1], pipe_functions[1][0], pipe_functions[1][1]);
		probe_pipes_by(skel.ipc->obj, targets != NULL);
		if (share_maps(skel.ipc->obj))
			cannot_run("cannot share maps with the ipc programs");
		quiet_libbpf = targets != NULL;
		err = ipc_bpf__load(skel.ipc);
		quiet_libbpf = false;
		if (!err)
			break;
		if (!targets)
			cannot_run("the kernel refused the ipc programs (see stderr)");
		snprintf(why, sizeof(why), "the kernel refused fexit programs on %s and %s: %s", targets[0],
			 targets[1], strerror(-err));
		ipc_bpf__destroy(skel.ipc);
	}
	if (targets) {
		snprintf(extra, sizeof(extra), "\"event\":\"pipes\",\"by\":\"fexit\",\"read\":\"%s\",\"write\":\"%s\"",
			 targets[0], targets[1]);
		message("info", extra, "probing pipes at %s and %s", targets[0], targets[1]);
	} else {
		message("info", "\"event\":\"pipes\",\"by\":\"syscalls\"",
			"probing pipes at the read, readv, write and writev syscalls: %s", why);
	}
}

/*
 * OpenTelemetry eBPF Instrumentation (OBI) pins its threads' current trace context by name under
 * <bpffs>/otel/ (OTEL_EBPF_BPF_FS_PATH, default /sys/fs/bpf): an LRU hash from pid_tgid to the
 * trace and span ids. When it is there and of that definition, the probes read it (common.bpf.h).
 */
static void reuse_obi_traces_ctx(struct bpf_map *map)
{
	const char *fs = getenv("OTEL_EBPF_BPF_FS_PATH");
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/otel/traces_ctx_v1", fs && *fs ? fs : "/sys/fs/bpf");
	fd = bpf_obj_get(path);
	if (fd < 0)
		return;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.type != BPF_MAP_TYPE_LRU_HASH || info.key_size != 8 ||
	    info.value_size != sizeof(struct cw_span_context)) {
		message("warn", "\"event\":\"obi_traces_ctx\"",
			"%s is not OBI's trace context map (an LRU hash of 8-byte keys, 24-byte values): not read", path);
	} else if (bpf_map__reuse_fd(map, fd)) {
		message("warn", "\"event\":\"obi_traces_ctx\"", "cannot reuse OBI's trace context map %s: %s", path,
			strerror(errno));
	} else {
		read_obi_traces_ctx();
		message("info", "\"event\":\"obi_traces_ctx\"",
			"reading OBI's trace context map %s where a thread publishes no context", path);
	}
	close(fd);
}

static int link_uprobe_multi(int prog_fd, const char *path, const __u64 *offsets, const __u64 *cookies, __u32 cnt,
			     __u32 flags)
{
	struct uprobe_multi_link_create attr;

	memset(&attr, 0, sizeof(attr)); /* the kernel refuses nonzero padding */
	attr.prog_fd = prog_fd;
	attr.attach_type = CW_TRACE_UPROBE_MULTI;
	attr.uprobe_multi.path = (__u64)(unsigned long)path;
	attr.uprobe_multi.offsets = (__u64)(unsigned long)offsets;
	attr.uprobe_multi.cookies = (__u64)(unsigned long)cookies;
	attr.uprobe_multi.cnt = cnt;
	attr.uprobe_multi.flags = flags;
	return syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
}

/*
 * Whether this kernel makes uprobe_multi links, the way libbpf probes it: an empty program of
 * that attach type, linked on "/", which a kernel that knows the link refuses as no regular file
 * (EBADF) and an older one as an unknown attach type. why says the refusal.
 */
static bool kernel_has_uprobe_multi(char *why, size_t len)
{
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = (enum bpf_attach_type)CW_TRACE_UPROBE_MULTI);
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	__u64 offset = 0;
	int prog_fd, link_fd, err;

	quiet_libbpf = true;
	prog_fd = bpf_prog_load(BPF_PROG_TYPE_KPROBE, NULL, "GPL", insns, sizeof(insns) / sizeof(insns[0]), &opts);
	quiet_libbpf = false;
	if (prog_fd < 0) {
		snprintf(why, len, "the kernel refused a uprobe_multi program: %s", strerror(errno));
		return false;
	}
	link_fd = link_uprobe_multi(prog_fd, "/", &offset, NULL, 1, 0);
	err = link_fd < 0 ? errno : 0;
	if (link_fd >= 0)
		close(link_fd);
	close(prog_fd);
	if (err != EBADF)
		snprintf(why, len, "the kernel makes no uprobe_multi links (Linux 6.6): %s",
			 err ? strerror(err) : "a link on / was made");
	return err == EBADF;
}

/*
 * The cuda family, with the pair of programs for how the kernel can attach them (cuda.bpf.c):
 * cuda_enter and cuda_exit where it makes uprobe_multi links, the _each pair otherwise or when
 * CAUSEWAY_CUDA_ATTACH=uprobe says so. Said once.
 */
static void load_cuda(void)
{
	/* The per-function way forced: where a kernel's uprobe_multi misbehaves, and to test the fallback. */
	const char *forced = getenv("CAUSEWAY_CUDA_ATTACH");
	char why[256] = "";

	if (forced && strcmp(forced, "uprobe") != 0)
		cannot_run("CAUSEWAY_CUDA_ATTACH=%s: the one value it takes is uprobe (one uprobe per entry point)", forced);
	if (forced)
		snprintf(why, sizeof(why), "CAUSEWAY_CUDA_ATTACH=uprobe");
	else
		cuda_multi = kernel_has_uprobe_multi(why, sizeof(why));
	skel.cuda = cuda_bpf__open();
	if (!skel.cuda)
		cannot_run("cannot open the cuda programs: %s", strerror(errno));
	bpf_program__set_autoload(skel.cuda->progs.cuda_enter, cuda_multi);
	bpf_program__set_autoload(skel.cuda->progs.cuda_exit, cuda_multi);
	bpf_program__set_autoload(skel.cuda->progs.cuda_enter_each, !cuda_multi);
	bpf_program__set_autoload(skel.cuda->progs.cuda_exit_each, !cuda_multi);
	if (cuda_multi &&
	    (bpf_program__set_expected_attach_type(skel.cuda->progs.cuda_enter,
						   (enum bpf_attach_type)CW_TRACE_UPROBE_MULTI) ||
	     bpf_program__set_expected_attach_type(skel.cuda->progs.cuda_exit,
						   (enum bpf_attach_type)CW_TRACE_UPROBE_MULTI)))
		cannot_run("cannot set the cuda programs' attach type");
	if (share_maps(skel.cuda->obj))
		cannot_run("cannot share maps with the cuda programs");
	if (cuda_bpf__load(skel.cuda))
		cannot_run("the kernel refused the cuda programs (see stderr)");
	if (cuda_multi)
		message("info", "\"event\":\"cuda_attach\",\"by\":\"uprobe_multi\"",
			"attaching CUDA entry points by uprobe_multi, one link per library for entries and one for returns");
	else
		message("info", "\"event\":\"cuda_attach\",\"by\":\"uprobe\"",
			"attaching CUDA entry points by one uprobe each: %s", why);
}

struct shared_maps load_programs(__u32 ringbuf_mb)
{
	skel.proc = proc_bpf__open();
	if (!skel.proc)
		cannot_run("cannot open the proc programs: %s", strerror(errno));
	if (bpf_map__set_max_entries(skel.proc->maps.events, ringbuf_mb << 20))
		cannot_run("bad ring buffer size %u MiB (a power of two is needed)", ringbuf_mb);
	bpf_program__set_autoattach(skel.proc->progs.mmap_enter, false);
	bpf_program__set_autoattach(skel.proc->progs.mmap_exit, false);
	reuse_obi_traces_ctx(skel.proc->maps.traces_ctx_v1);
	if (proc_bpf__load(skel.proc))
		cannot_run("the kernel refused the proc programs (see stderr)");
	maps.events = bpf_map__fd(skel.proc->maps.events);
	maps.followed = bpf_map__fd(skel.proc->maps.followed);
	maps.drops = bpf_map__fd(skel.proc->maps.drops);
	maps.settings = bpf_map__fd(skel.proc->maps.settings);
	maps.gpu_processes = bpf_map__fd(skel.proc->maps.gpu_processes);
	cuda_threads_fd = bpf_map__fd(skel.proc->maps.cuda_threads);
	windows_fd = bpf_map__fd(skel.proc->maps.windows);
	maps.interrupt_depth = bpf_map__fd(skel.proc->maps.interrupt_depth);
	maps.thread_ctx = bpf_map__fd(skel.proc->maps.thread_ctx);
	traces_ctx_fd = bpf_map__fd(skel.proc->maps.traces_ctx_v1);

	OPEN_LOAD(irq, irq_bpf);
	OPEN_LOAD(sched, sched_bpf);
	OPEN_LOAD(futex, futex_bpf);
	skel.block = block_bpf__open();
	if (!skel.block)
		cannot_run("cannot open the block programs: %s", strerror(errno));
	/* block_io_start (Linux 6.5) names the submitter; without it the issuer is used. */
	if (!vmlinux_has("btf_trace_block_io_start", BTF_KIND_TYPEDEF))
		bpf_program__set_autoload(skel.block->progs.block_io_start, false);
	if (share_maps(skel.block->obj) || block_bpf__load(skel.block))
		cannot_run("the kernel refused the block programs (see stderr)");
	OPEN_LOAD(tcp, tcp_bpf);
	load_ipc();
	load_cuda();

	attach_object(skel.proc->obj);
	attach_interrupt_depth();
	attach_object(skel.sched->obj);
	attach_object(skel.futex->obj);
	attach_object(skel.block->obj);
	attach_object(skel.tcp->obj);
	attach_object(skel.ipc->obj);
	return maps;
}

/* Keeps both links of an entry and exit pair, or neither. */
static bool keep_pair(struct bpf_link *enter, struct bpf_link *exit)
{
	if (enter && exit) {
		keep_link(enter);
		keep_link(exit);
		return true;
	}
	bpf_link__destroy(enter);
	bpf_link__destroy(exit);
	return false;
}

bool attach_library_watch(void)
{
	return keep_pair(bpf_program__attach(skel.proc->progs.mmap_enter),
			 bpf_program__attach(skel.proc->progs.mmap_exit));
}

const char *cuda_attach_mode(void)
{
	return cuda_multi ? "uprobe_multi" : "uprobe";
}

static bool attach_cuda_function(const char *path, __u32 api, size_t offset)
{
	LIBBPF_OPTS(bpf_uprobe_opts, enter, .bpf_cookie = api);
	LIBBPF_OPTS(bpf_uprobe_opts, exit, .bpf_cookie = api, .retprobe = true);

	return keep_pair(bpf_program__attach_uprobe_opts(skel.cuda->progs.cuda_enter_each, -1, path, offset, &enter),
			 bpf_program__attach_uprobe_opts(skel.cuda->progs.cuda_exit_each, -1, path, offset, &exit));
}

/*
 * All of a library's entry points by two links: the returns' first, then the entries', so each
 * call is seen whole or not at all (a return without its entry is ignored, cuda.bpf.c). The
 * kernel registers a link's uprobes one after another in the one bpf(2) call, so a library's
 * entry points go live within microseconds of each other, not one system call apart each.
 */
static int attach_cuda_multi(const char *path, const __u32 *apis, const size_t *offsets, int n)
{
	__u64 *offs = calloc(n, sizeof(*offs)), *cookies = calloc(n, sizeof(*cookies));
	int exit_fd = -1, enter_fd = -1, err = 0;

	if (nmulti_links + 2 > MAX_MULTI_LINKS) {
		free(offs);
		free(cookies);
		message("warn", "\"event\":\"probe_limit\"", "more than %d uprobe_multi links: %s is not probed",
			MAX_MULTI_LINKS, path);
		return 0;
	}
	for (int i = 0; offs && cookies && i < n; i++) {
		offs[i] = offsets[i];
		cookies[i] = apis[i];
	}
	if (offs && cookies) {
		exit_fd = link_uprobe_multi(bpf_program__fd(skel.cuda->progs.cuda_exit), path, offs, cookies, n,
					    CW_F_UPROBE_MULTI_RETURN);
		if (exit_fd >= 0)
			enter_fd = link_uprobe_multi(bpf_program__fd(skel.cuda->progs.cuda_enter), path, offs,
						     cookies, n, 0);
	}
	err = errno;
	free(offs);
	free(cookies);
	if (enter_fd < 0) {
		if (exit_fd >= 0)
			close(exit_fd);
		message("warn", "\"event\":\"attach_failed\",\"probe\":\"cuda_enter\"",
			"cannot attach the CUDA probes to %s by uprobe_multi: %s", path, strerror(err));
		return 0;
	}
	multi_links[nmulti_links++] = exit_fd;
	multi_links[nmulti_links++] = enter_fd;
	return n;
}

int attach_cuda_functions(const char *path, const __u32 *apis, const size_t *offsets, int n)
{
	int attached = 0;

	if (cuda_multi)
		return attach_cuda_multi(path, apis, offsets, n);
	for (int i = 0; i < n; i++)
		attached += attach_cuda_function(path, apis[i], offsets[i]);
	return attached;
}

/* In the reverse order of attaching: entries before their returns, for the reason attach_cuda_multi gives. */
void detach_all(void)
{
	while (nmulti_links > 0)
		close(multi_links[--nmulti_links]);
	while (nlinks > 0)
		bpf_link__destroy(links[--nlinks]);
}

void unload_programs(void)
{
	cuda_bpf__destroy(skel.cuda);
	ipc_bpf__destroy(skel.ipc);
	tcp_bpf__destroy(skel.tcp);
	block_bpf__destroy(skel.block);
	futex_bpf__destroy(skel.futex);
	sched_bpf__destroy(skel.sched);
	irq_bpf__destroy(skel.irq);
	proc_bpf__destroy(skel.proc);
}
