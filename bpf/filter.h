/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What the probes keep: the processes followed and each kind's minimum duration (filter.c). */
#ifndef CAUSEWAY_FILTER_H
#define CAUSEWAY_FILTER_H

#include <stdbool.h>
#include <linux/types.h>

/* Until this is called the settings are only gathered (from the options); then push_settings writes them. */
void filter_use_maps(int settings_fd, int followed_fd);
void push_settings(void);

/* Every process but the loader and its parent, which would trace themselves. */
void follow_all(void);
/* The same minimum for every kind that has a duration. */
void set_min_all(unsigned long long us);
/* `min KIND US`: false for an unknown kind or a malformed number. */
bool set_min(const char *kind_name, const char *us);
/* `shed on|off`: while on, the probes write no event records, and count each one per kind. */
void set_shed(bool on);

/* In-kernel reduction (common.bpf.h): window_ns 0 turns it off. */
void set_reduction(__u64 window_ns, __u64 launch_whole_ns, __u64 runqueue_whole_ns, __u64 wait_whole_ns);
void reduction(__u64 *window_ns, __u64 *launch_whole_ns, __u64 *runqueue_whole_ns, __u64 *wait_whole_ns);

/* The probes read OBI's traces_ctx_v1 map where a thread publishes no context (attach.c found it). */
void read_obi_traces_ctx(void);
/*
 * A process publishes its thread context (thread_ctx.c wrote its offset first): from now on the
 * probes look every process up in the thread_ctx map. Kept on: processes forked from it inherit it.
 */
void read_thread_ctx(void);

void follow(__u32 pid, bool on);
bool is_followed(__u32 pid);
/* Pids in the followed map; 0 with follow_all. */
__u32 followed_count(void);

/* Processes are also followed by comm: those named so now, and those that exec under the name. */
void add_comm(const char *name);
bool follows_comms(void);
bool comm_matches(const char *comm);

#endif /* CAUSEWAY_FILTER_H */
