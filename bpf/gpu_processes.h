/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The processes found using CUDA, and the libraries each uses (gpu_processes.c). */
#ifndef CAUSEWAY_GPU_PROCESSES_H
#define CAUSEWAY_GPU_PROCESSES_H

#include <linux/types.h>
#include "causeway.h"

/* The probes' gpu_processes map; -1 (`--list-gpu`): only list. */
void gpu_processes_use_map(int fd);
/* pid uses the library (cuda_libs.c's index): listed, followed, and said once per library. */
void gpu_process_uses(__u32 pid, int library, enum cw_gpu_process how);
/* pid exited or exec'd another program: it leaves the list. */
void gpu_process_gone(__u32 pid, const char *reason);
__u32 gpu_process_count(void);

#endif /* CAUSEWAY_GPU_PROCESSES_H */
