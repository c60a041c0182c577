// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * causeway-floor: the benchmark's floor (floor.bpf.c), the physical cost of the hooks the
 * loader uses. Attaches an empty program at every point the loader attaches one: the CUDA
 * entry points of each --lib file, found as the loader finds them (cuda_symbols.h,
 * elf_symbols.c), and the tracepoints, with pipes by fexit where the kernel accepts it and
 * by the syscalls otherwise, as the loader decides (attach.c). Prints one line on stdout once
 * everything is attached, and detaches at SIGINT or SIGTERM.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "cuda_symbols.h"
#include "elf_symbols.h"
#include "floor.skel.h"

#define MAX_LINKS 4096

static struct bpf_link *links[MAX_LINKS];
static int nlinks;
static volatile sig_atomic_t exiting;
static bool quiet_libbpf; /* while trying fexit: a refusal is expected on some kernels */

static int on_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG || quiet_libbpf)
		return 0;
	return vfprintf(stderr, fmt, args);
}

static void on_signal(int sig)
{
	(void)sig;
	exiting = 1;
}

static void keep(struct bpf_link *link, const char *what)
{
	if (!link)
		fprintf(stderr, "floor: cannot attach %s: %s\n", what, strerror(errno));
	else if (nlinks < MAX_LINKS)
		links[nlinks++] = link;
	else
		bpf_link__destroy(link);
}

static bool vmlinux_has(const char *name, __u32 kind)
{
	struct btf *btf = btf__load_vmlinux_btf();
	bool found = btf && btf__find_by_name_kind(btf, name, kind) >= 0;

	btf__free(btf);
	return found;
}

/* The pipe functions the loader's fexit programs target, as this kernel names them (attach.c). */
static bool target_pipes(struct floor_bpf *floor)
{
	static const char *const names[][2] = { { "anon_pipe_read", "anon_pipe_write" },
						{ "pipe_read", "pipe_write" } };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (vmlinux_has(names[i][0], BTF_KIND_FUNC) && vmlinux_has(names[i][1], BTF_KIND_FUNC))
			return !bpf_program__set_attach_target(floor->progs.pipe_read_exit, 0, names[i][0]) &&
			       !bpf_program__set_attach_target(floor->progs.pipe_write_exit, 0, names[i][1]);
	return false;
}

/* Loads the programs with pipes by fexit or by the syscall tracepoints, and not the other. */
static struct floor_bpf *load(bool try_fexit)
{
	struct floor_bpf *floor = floor_bpf__open();
	struct bpf_program *prog;
	bool fexit;
	int err;

	if (!floor)
		return NULL;
	fexit = try_fexit && target_pipes(floor);
	bpf_object__for_each_program(prog, floor->obj) {
		const char *section = bpf_program__section_name(prog);

		if (!strcmp(section, "fexit"))
			bpf_program__set_autoload(prog, fexit);
		else if (!strncmp(bpf_program__name(prog), "pipe_", strlen("pipe_")))
			bpf_program__set_autoload(prog, !fexit);
	}
	if (!vmlinux_has("btf_trace_block_io_start", BTF_KIND_TYPEDEF))
		bpf_program__set_autoload(floor->progs.block_io_start, false);
	quiet_libbpf = fexit;
	err = floor_bpf__load(floor);
	quiet_libbpf = false;
	if (!err) {
		fprintf(stderr, "floor: pipes by %s\n", fexit ? "fexit" : "the syscall tracepoints");
		return floor;
	}
	floor_bpf__destroy(floor);
	return fexit ? load(false) : NULL;
}

static void attach_library(struct floor_bpf *floor, const char *path)
{
	const char *names[NSYMBOLS];
	size_t offsets[NSYMBOLS];

	for (size_t i = 0; i < NSYMBOLS; i++)
		names[i] = cuda_symbols[i].symbol;
	if (elf_function_offsets(path, names, NSYMBOLS, offsets) <= 0) {
		fprintf(stderr, "floor: no CUDA entry point in %s\n", path);
		return;
	}
	for (size_t i = 0; i < NSYMBOLS; i++) {
		LIBBPF_OPTS(bpf_uprobe_opts, exit, .retprobe = true);

		if (!offsets[i])
			continue;
		keep(bpf_program__attach_uprobe_opts(floor->progs.cuda_enter, -1, path, offsets[i], NULL), names[i]);
		keep(bpf_program__attach_uprobe_opts(floor->progs.cuda_exit, -1, path, offsets[i], &exit), names[i]);
	}
}

int main(int argc, char **argv)
{
	struct floor_bpf *floor;
	struct bpf_program *prog;

	if (argc < 3 || argc % 2 == 0) {
		fprintf(stderr, "usage: causeway-floor --lib PATH [--lib PATH]...\n");
		return 2;
	}
	libbpf_set_print(on_libbpf_print);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	floor = load(true);
	if (!floor) {
		fprintf(stderr, "floor: the kernel refused the programs (see above)\n");
		return 1;
	}
	bpf_object__for_each_program(prog, floor->obj)
		if (bpf_program__autoload(prog) && prog != floor->progs.cuda_enter && prog != floor->progs.cuda_exit)
			keep(bpf_program__attach(prog), bpf_program__name(prog));
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--lib")) {
			fprintf(stderr, "floor: unknown option %s\n", argv[i]);
			return 2;
		}
		attach_library(floor, argv[i + 1]);
	}
	printf("floor: %d empty programs attached\n", nlinks);
	fflush(stdout);
	while (!exiting)
		sleep(1); /* a signal ends it early; one between the test and the sleep waits a second */
	for (int i = 0; i < nlinks; i++)
		bpf_link__destroy(links[i]);
	floor_bpf__destroy(floor);
	return 0;
}
