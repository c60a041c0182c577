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
/* The CUDA uprobe and uretprobe on the function at offset in path, the api as their cookie. */
bool attach_cuda_function(const char *path, __u32 api, size_t offset);
void detach_all(void);
void unload_programs(void);

#endif /* CAUSEWAY_ATTACH_H */
