// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * causeway-loader: the one privileged part of Causeway. Loads the CO-RE
 * programs, attaches them, finds every process using CUDA and probes its
 * libraries, and streams the ring buffer to stdout as framed binary records
 * (causeway.h). Takes commands on stdin, one per line (commands.c):
 *   follow PID | unfollow PID | comm NAME | min KIND MICROSECONDS
 *   attach PATH | shed on|off | stats | quit
 * Exits 0 on SIGTERM, SIGINT, `quit` or end of stdin; exits 2 with a one-line
 * reason (stderr, and a MESSAGE frame) when capture cannot run here.
 * With --list-gpu it loads nothing: it writes the GPU processes it finds as
 * MESSAGE frames and exits.
 *
 * This file is the option parsing, the poll loop and what the loader itself does
 * with records. The rest, by concern: frames.c (stdout), attach.c (loading and
 * attaching the programs), filter.c (what is followed and kept), cuda_libs.c
 * (finding GPU processes and probing their libraries), gpu_processes.c (the list
 * of them), elf_symbols.c (function symbols), names.c (kernel names the probes could not
 * read), stub_names.c (kernels registered before the probes, named from their symbols),
 * stats.c (the STATS frame), commands.c (stdin), thread_ctx.c (where processes publish their
 * active span), process_dir.c (where a process whose main thread ended is read).
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "attach.h"
#include "causeway.h"
#include "clock.h"
#include "commands.h"
#include "cuda_libs.h"
#include "filter.h"
#include "frames.h"
#include "gpu_processes.h"
#include "names.h"
#include "stats.h"
#include "stub_names.h"
#include "thread_ctx.h"

/* Without the probe reporting CUDA libraries as they are mapped, every process is rescanned this often. */
#define RESCAN_MS 2000
/*
 * Records are read at least this often: the probes wake the loader only once a quarter of the ring
 * waits (cw_submit). Until a wakeup a poll waits this long even with records left (the ring's fd
 * is made ready by a wakeup, then stays ready until a drain empties it), so DRAIN_MAX_RECORDS per
 * POLL_MS at first; from the wakeup on, drain after drain without waiting.
 */
#define POLL_MS 10
/*
 * Records read per drain at most. A drain otherwise goes on as long as the probes write, which
 * under a flood is forever: between drains the loader reads its commands (`shed on`) and writes
 * its watermark.
 */
#define DRAIN_MAX_RECORDS 4096
/* What on_record returns to end a drain (libbpf stops consuming on a negative return). */
#define DRAIN_FULL (-EAGAIN)
#define MAX_LIBS 64
#define MAX_PIDS 256

/*
 * The event watermark (struct cw_watermark). Before each drain the loader reads the clock, then
 * the ring's producer position: a record reserved before that read lies below the position,
 * committed or not. Once the consumer position passes it, every such record has been read (a
 * drain stops at a record reserved but not yet committed on another cpu, and reads it in a later
 * drain). Samples wait until the consumer passes them, so under a flood the watermark trails by
 * what the ring holds. A probe reads the clock a little before it reserves its record (an
 * interrupt may come between): the watermark is that much earlier than the sample.
 */
#define WATERMARK_SAMPLES 64
#define WATERMARK_SLACK_NS 1000000ull

struct watermark_sample {
	__u64 mono_ns;
	__u64 produced;
};

static struct watermark_sample samples[WATERMARK_SAMPLES];
static int nsamples;
static __u64 watermark_sent;

struct options {
	const char *libs[MAX_LIBS];
	int nlibs;
	__u32 pids[MAX_PIDS];
	int npids;
	unsigned long ringbuf_mb;
	unsigned long stats_ms;
	bool list_gpu;
};

static volatile sig_atomic_t exiting;
static unsigned int drained;

static void on_signal(int sig)
{
	(void)sig;
	exiting = 1;
}

/* A process exec'd: follow it if its new name is followed, and see whether its program links CUDA. */
static void on_exec(const struct cw_event *e)
{
	gpu_process_gone(e->pid, "exec");
	forget_stubs(e->pid);
	if (comm_matches(e->comm))
		follow(e->pid, true);
	check_executable(e->pid);
	if (is_followed(e->pid))
		thread_ctx_exec(e->pid);
}

static int on_record(void *ctx, void *data, size_t size)
{
	const struct cw_event *e = data;
	char name[KERNEL_NAME_MAX];

	(void)ctx;
	if (size < sizeof(*e))
		return 0;
	count_delivered(e->kind);
	switch (e->kind) {
	case CW_KIND_PROC_EXEC:
		on_exec(e);
		break;
	case CW_KIND_CUDA_MAPPED:
		scan_process(e->pid, CW_GPU_SEEN_STARTING);
		thread_ctx_scan(e->pid); /* followed from now on: its libraries mapped so far went unreported */
		break;
	case CW_KIND_CODE_MAPPED:
		thread_ctx_mapped(e->pid, e->u.mapped.dev, e->u.mapped.ino);
		return ++drained < DRAIN_MAX_RECORDS ? 0 : DRAIN_FULL; /* the loader's alone: not sent on */
	case CW_KIND_PROC_EXIT:
		gpu_process_gone(e->pid, "exit");
		forget_stubs(e->pid);
		break;
	case CW_KIND_CUDA_REGISTER:
		kernel_name(e, name, sizeof(name));
		stub_registered(e, name);
		emit_registration(e, name);
		return ++drained < DRAIN_MAX_RECORDS ? 0 : DRAIN_FULL;
	case CW_KIND_CUDA_LAUNCH:
	case CW_KIND_CUDA_LAUNCHES:
		name_launched_stub(e);
		break;
	}
	emit_event(e);
	return ++drained < DRAIN_MAX_RECORDS ? 0 : DRAIN_FULL;
}

/* Reads what the ring holds, DRAIN_MAX_RECORDS at most; true when it held more. */
static bool drain(struct ring_buffer *ring)
{
	drained = 0;
	return ring_buffer__consume(ring) == DRAIN_FULL;
}

static void sample_watermark(void)
{
	__u64 mono_ns = now_ns(CLOCK_MONOTONIC), produced, consumed;

	if (!ring_positions(&produced, &consumed))
		return;
	/* Full: the oldest goes; a later sample is reached later, so the watermark only lags more. */
	if (nsamples == WATERMARK_SAMPLES)
		memmove(samples, samples + 1, --nsamples * sizeof(*samples));
	samples[nsamples++] = (struct watermark_sample){ mono_ns, produced };
}

/* After a drain: the newest sample the consumer has passed, if newer than the last one sent. */
static void emit_watermark(void)
{
	__u64 produced, consumed, reached = 0;
	struct cw_watermark w;
	int passed = 0;

	if (!ring_positions(&produced, &consumed))
		return;
	while (passed < nsamples && samples[passed].produced <= consumed)
		reached = samples[passed++].mono_ns;
	nsamples -= passed;
	memmove(samples, samples + passed, nsamples * sizeof(*samples));
	if (reached <= watermark_sent + WATERMARK_SLACK_NS)
		return;
	w.mono_ns = reached - WATERMARK_SLACK_NS;
	watermark_sent = w.mono_ns;
	emit_frame(CW_FRAME_WATERMARK, &w, sizeof(w));
}

/* The startup pass over /proc, timed: its cost grows with the processes on the node. */
static void scan_at_start(void)
{
	__u64 start = now_ns(CLOCK_MONOTONIC);
	int processes = scan_processes(true);
	double ms = (now_ns(CLOCK_MONOTONIC) - start) / 1e6;
	char extra[160];

	snprintf(extra, sizeof(extra), "\"event\":\"scan\",\"processes\":%d,\"gpu_processes\":%u,\"ms\":%.3f", processes,
		 gpu_process_count(), ms);
	message("info", extra, "scanned %d processes in %.1f ms: %u use CUDA", processes, ms, gpu_process_count());
}

/* A whole non-negative number, or the loader cannot run. */
static unsigned long long number(const char *text, const char *option)
{
	char *end;
	unsigned long long v = strtoull(text, &end, 10);

	if (end == text || *end || *text == '-')
		cannot_run("bad %s %s: expected a whole number", option, text);
	return v;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: causeway-loader [--pid P]... [--comm NAME]... [--lib PATH]... [--all]\n"
		"                       [--min-duration-us N] [--min KIND=US]... [--ringbuf-mb N] [--stats-ms N]\n"
		"                       [--reduce-window-ms N] [--launch-whole-us N] [--runqueue-whole-us N]\n"
		"                       [--wait-whole-us N] [--no-reduce]\n"
		"       causeway-loader --list-gpu\n"
		"Loads Causeway's eBPF programs and writes framed records (bpf/causeway.h) on stdout.\n"
		"Commands on stdin: follow PID | unfollow PID | comm NAME | min KIND US | attach PATH | shed on|off | stats | quit\n"
		"--list-gpu loads nothing: writes the processes using CUDA as MESSAGE frames, and exits.\n"
		"Reduction (default on: 10 ms windows, 100 us thresholds): per thread per window, launches that\n"
		"returned within --launch-whole-us, run-queue waits shorter than --runqueue-whole-us, and\n"
		"blocked and futex waits shorter than --wait-whole-us are summed, one record per kind;\n"
		"--no-reduce (or --reduce-window-ms 0) writes every record whole.\n");
}

/* Comms, follow-all and thresholds go straight into the filter; the rest into o. */
static void parse_options(int argc, char **argv, struct options *o)
{
	static const struct option options[] = {
		{ "pid", required_argument, NULL, 'p' },   { "comm", required_argument, NULL, 'c' },
		{ "lib", required_argument, NULL, 'l' },   { "all", no_argument, NULL, 'a' },
		{ "min-duration-us", required_argument, NULL, 'm' },
		{ "min", required_argument, NULL, 'k' },   { "ringbuf-mb", required_argument, NULL, 'r' },
		{ "stats-ms", required_argument, NULL, 's' }, { "list-gpu", no_argument, NULL, 'g' },
		{ "reduce-window-ms", required_argument, NULL, 'w' },
		{ "launch-whole-us", required_argument, NULL, 'L' },
		{ "runqueue-whole-us", required_argument, NULL, 'R' },
		{ "wait-whole-us", required_argument, NULL, 'W' },
		{ "no-reduce", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	__u64 window_ns, launch_whole_ns, runqueue_whole_ns, wait_whole_ns;
	int opt;
	char *eq;

	reduction(&window_ns, &launch_whole_ns, &runqueue_whole_ns, &wait_whole_ns);

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'p':
			if (o->npids < MAX_PIDS)
				o->pids[o->npids++] = strtoul(optarg, NULL, 10);
			break;
		case 'c':
			add_comm(optarg);
			break;
		case 'l':
			if (o->nlibs < MAX_LIBS)
				o->libs[o->nlibs++] = optarg;
			break;
		case 'a':
			follow_all();
			break;
		case 'm':
			set_min_all(strtoull(optarg, NULL, 10));
			break;
		case 'k':
			eq = strchr(optarg, '=');
			if (!eq || (*eq = 0, !set_min(optarg, eq + 1)))
				cannot_run("bad --min %s: expected KIND=MICROSECONDS", optarg);
			break;
		case 'r':
			o->ringbuf_mb = strtoul(optarg, NULL, 10);
			break;
		case 's':
			o->stats_ms = strtoul(optarg, NULL, 10);
			break;
		case 'g':
			o->list_gpu = true;
			break;
		case 'w':
			window_ns = number(optarg, "--reduce-window-ms") * 1000000ull;
			break;
		case 'L':
			launch_whole_ns = number(optarg, "--launch-whole-us") * 1000ull;
			break;
		case 'R':
			runqueue_whole_ns = number(optarg, "--runqueue-whole-us") * 1000ull;
			break;
		case 'W':
			wait_whole_ns = number(optarg, "--wait-whole-us") * 1000ull;
			break;
		case 'n':
			window_ns = 0;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	set_reduction(window_ns, launch_whole_ns, runqueue_whole_ns, wait_whole_ns);
	if (!o->ringbuf_mb || (o->ringbuf_mb & (o->ringbuf_mb - 1)) || o->ringbuf_mb > 1024)
		cannot_run("--ringbuf-mb must be a power of two from 1 to 1024");
	if (!o->stats_ms)
		o->stats_ms = 1000;
}

/* --list-gpu: the startup scan alone, without loading or attaching anything. */
static int list_gpu_processes(void)
{
	cuda_libs_list_only();
	scan_at_start();
	flush_out();
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { .ringbuf_mb = 16, .stats_ms = 1000 };
	struct shared_maps maps;
	struct ring_buffer *ring;
	struct cw_hello hello;
	struct pollfd fds[2];
	__u64 last_stats, last_scan;
	bool watching_libraries;

	parse_options(argc, argv, &o);
	signal(SIGPIPE, SIG_IGN);
	frames_open();
	if (o.list_gpu)
		return list_gpu_processes();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	libbpf_set_print(on_libbpf_print);
	check_can_run();
	maps = load_programs(o.ringbuf_mb);
	filter_use_maps(maps.settings, maps.followed);
	gpu_processes_use_map(maps.gpu_processes);
	thread_ctx_use_map(maps.thread_ctx);
	push_settings();
	for (int i = 0; i < o.npids; i++)
		follow(o.pids[i], true);

	ring = ring_buffer__new(maps.events, on_record, NULL, NULL);
	if (!ring)
		cannot_run("cannot open the ring buffer: %s", strerror(errno));
	stats_open(maps.events, maps.drops);
	/* Before the scan, so that no library mapped meanwhile is missed. */
	watching_libraries = attach_library_watch();
	if (!watching_libraries)
		message("warn", "\"event\":\"library_watch\"",
			"this kernel cannot report CUDA libraries as they are mapped (mmap syscall tracepoints): every process is rescanned every %d ms instead",
			RESCAN_MS);
	for (int i = 0; i < o.nlibs; i++)
		probe_cuda_library(o.libs[i]);
	scan_at_start();

	hello = (struct cw_hello){ CW_ABI_VERSION, sizeof(struct cw_event), o.ringbuf_mb << 20,
				   libbpf_num_possible_cpus() };
	emit_frame(CW_FRAME_HELLO, &hello, sizeof(hello));
	emit_stats();
	/*
	 * Loading parsed the kernel's BTF (megabytes, freed since): glibc keeps freed heap for
	 * reuse, so give it back rather than carry it in RSS for the loader's whole run.
	 */
	malloc_trim(0);

	fds[0] = (struct pollfd){ .fd = ring_buffer__epoll_fd(ring), .events = POLLIN };
	fds[1] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
	last_stats = last_scan = now_ns(CLOCK_MONOTONIC);
	while (!exiting && !quit_requested()) {
		__u64 now;

		if (poll(fds, 2, POLL_MS) < 0 && errno != EINTR)
			break;
		sample_watermark();
		drain(ring);
		emit_watermark();
		thread_ctx_retry();
		if (!read_commands(fds[1].revents & (POLLIN | POLLHUP)))
			break;
		flush_out();
		now = now_ns(CLOCK_MONOTONIC);
		if (!watching_libraries && now - last_scan >= RESCAN_MS * 1000000ull) {
			scan_processes(true);
			last_scan = now;
		}
		if (now - last_stats >= o.stats_ms * 1000000ull) {
			emit_stats();
			last_stats = now;
		}
	}

	/*
	 * The counts as of the stop, before detaching, which can outlast the supervisor's grace
	 * period where the CUDA probes are one uprobe per entry point (the kernel detaches each in
	 * turn, a grace period each): a loader killed meanwhile has said them.
	 */
	drain(ring);
	flush_out();
	emit_stats();
	detach_all();
	/* Detached: nothing more comes, so the ring is read to its end. */
	while (drain(ring))
		;
	flush_out();
	emit_stats();
	ring_buffer__free(ring);
	unload_programs();
	return 0;
}
