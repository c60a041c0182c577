/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Finding the CUDA libraries of followed processes and probing them (cuda_libs.c). */
#ifndef CAUSEWAY_CUDA_LIBS_H
#define CAUSEWAY_CUDA_LIBS_H

#include <linux/types.h>

/* A library named by --lib or `attach`: probed whatever its file name. */
void probe_cuda_library(const char *path);
/* A process's mapped CUDA libraries, and its executable in case the runtime is linked in. */
void scan_process(__u32 pid);
/* One pass over /proc: follow processes by comm, and scan the followed ones. */
void scan_processes(void);

/* A followed process exec'd: scan it once ld.so has mapped its libraries. */
void scan_after_exec(__u32 pid);
/* Milliseconds until the next scan after exec is due, at most max_ms. */
int next_scan_ms(__u64 now, int max_ms);
/* Runs the scans after exec that are due. */
void scan_pending(__u64 now);

/* CUDA library files probed so far. */
__u32 cuda_libraries(void);

#endif /* CAUSEWAY_CUDA_LIBS_H */
