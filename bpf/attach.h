/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Loading the probe families into the kernel and attaching them (attach.c). */
#ifndef CAUSEWAY_ATTACH_H
#define CAUSEWAY_ATTACH_H

#include <stdarg.h>
#include <stdbool.h>
#include <linux/types.h>
#include <bpf/libbpf.h>

/* The maps every family shares (common.bpf.h): created by the first object loaded, reused by the others. */
struct shared_maps {
	int events;   /* the ring buffer */
	int followed; /* tgid -> 1 */
	int drops;    /* per kind, per cpu: failed reservations */
	int settings; /* the one struct cw_settings */
	int gpu_processes; /* tgid -> enum cw_gpu_process */
	int interrupt_depth; /* per cpu: how deep in interrupt work (irq.bpf.c) */
	int thread_ctx; /* tgid -> the offset of its OTEP 4947 thread context from the thread pointer */
};

/* libbpf's messages on stderr, without its debug output. */
int on_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args);
/* Exits 2 with the reason when this process or kernel cannot load the probes. */
void check_can_run(void);
/* Loads every family and attaches all but the CUDA uprobes; exits 2 when the kernel refuses one. */
struct shared_maps load_programs(__u32 ringbuf_mb);
/* The program that reports CUDA libraries as they are mapped; false when this kernel cannot attach it. */
bool attach_library_watch(void);
/*
 * The CUDA probes (entry and return) at n functions of path, at offsets[i] with apis[i] as the
 * cookie; how many functions are probed.
 */
int attach_cuda_functions(const char *path, const __u32 *apis, const size_t *offsets, int n);
/* How attach_cuda_functions attaches on this kernel: "uprobe_multi" or "uprobe". */
const char *cuda_attach_mode(void);
void detach_all(void);
void unload_programs(void);

#endif /* CAUSEWAY_ATTACH_H */
