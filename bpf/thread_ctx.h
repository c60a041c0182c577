/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Where followed processes publish their active span: the OTEP 4947 thread context (thread_ctx.c). */
#ifndef CAUSEWAY_THREAD_CTX_H
#define CAUSEWAY_THREAD_CTX_H

#include <linux/types.h>

/* The probes' thread_ctx map (common.bpf.h). */
void thread_ctx_use_map(int fd);
/* Every module the process maps: one that exports the thread context gives its offset. */
void thread_ctx_scan(__u32 pid);
/* The process exec'd a new program: looked at anew. */
void thread_ctx_exec(__u32 pid);
/* The process mapped code from the file (dev as the kernel encodes it): looked at unless known not to export it. */
void thread_ctx_mapped(__u32 pid, __u32 dev, __u64 ino);
/* Modules whose loader had not yet relocated the slot: read again, until they are or time is up. */
void thread_ctx_retry(void);
/* Processes whose context the probes read now, and those found exporting one they cannot read (since start). */
__u32 thread_ctx_processes(void);
__u32 thread_ctx_unresolved(void);

#endif /* CAUSEWAY_THREAD_CTX_H */
