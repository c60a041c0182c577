// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The user-space side of the followed and settings maps (common.bpf.h): which
 * processes the probes record (by pid, by comm, or all), and how long a record
 * of each kind must last to be kept. The loader holds the settings and writes
 * them whole; the probes only read them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "causeway.h"
#include "filter.h"
#include "frames.h"
#include "process_dir.h"

#define MAX_COMMS 32

/*
 * The kind names that `min KIND US` and --min KIND=US take: the kinds with a threshold. CUDA
 * records have none (even a short sync says which work completed), nor have point events.
 */
static const char *const kind_names[CW_KIND_MAX] = {
	[CW_KIND_SCHED_RUNQUEUE] = "sched.runqueue",
	[CW_KIND_SCHED_BLOCKED] = "sched.blocked",
	[CW_KIND_FUTEX_WAIT] = "futex.wait",
	[CW_KIND_BLOCK_IO] = "block.io",
};

/* Reduction on by default (common.bpf.h): the thresholds match what user space calls a wait. */
static struct cw_settings settings = {
	.window_ns = 10 * 1000000ull,
	.launch_whole_ns = 100 * 1000ull,
	.runqueue_whole_ns = 100 * 1000ull,
	.wait_whole_ns = 100 * 1000ull,
};
static int settings_fd = -1, followed_fd = -1;
static char comms[MAX_COMMS][CW_COMM_LEN];
static int ncomms;

void filter_use_maps(int settings_map, int followed_map)
{
	settings_fd = settings_map;
	followed_fd = followed_map;
}

void push_settings(void)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(settings_fd, &zero, &settings, BPF_ANY))
		message("error", NULL, "cannot update settings: %s", strerror(errno));
}

void follow_all(void)
{
	settings.follow_all = 1;
	settings.exclude[0] = getpid();
	settings.exclude[1] = getppid();
}

void set_min_all(unsigned long long us)
{
	for (int k = 0; k < CW_KIND_MAX; k++)
		if (kind_names[k])
			settings.min_ns[k] = us * 1000;
}

void set_reduction(__u64 window_ns, __u64 launch_whole_ns, __u64 runqueue_whole_ns, __u64 wait_whole_ns)
{
	settings.window_ns = window_ns;
	settings.launch_whole_ns = launch_whole_ns;
	settings.runqueue_whole_ns = runqueue_whole_ns;
	settings.wait_whole_ns = wait_whole_ns;
}

void reduction(__u64 *window_ns, __u64 *launch_whole_ns, __u64 *runqueue_whole_ns, __u64 *wait_whole_ns)
{
	*window_ns = settings.window_ns;
	*launch_whole_ns = settings.launch_whole_ns;
	*runqueue_whole_ns = settings.runqueue_whole_ns;
	*wait_whole_ns = settings.wait_whole_ns;
}

static int kind_by_name(const char *name)
{
	for (int k = 0; k < CW_KIND_MAX; k++)
		if (kind_names[k] && !strcmp(kind_names[k], name))
			return k;
	return -1;
}

bool set_min(const char *kind_name, const char *us)
{
	int kind = kind_by_name(kind_name);
	char *end;
	unsigned long long v = strtoull(us, &end, 10);

	if (kind < 0 || *end || end == us)
		return false;
	settings.min_ns[kind] = v * 1000;
	return true;
}

void set_shed(bool on)
{
	if (settings.shed == on)
		return;
	settings.shed = on;
	push_settings();
}

void read_obi_traces_ctx(void)
{
	settings.obi_traces_ctx = 1;
}

void read_thread_ctx(void)
{
	if (settings.thread_ctx)
		return;
	settings.thread_ctx = 1;
	push_settings();
}

/* Whether process pid runs: some thread of it does (its exit has not happened). */
static bool runs(__u32 pid)
{
	char dir[64];

	return process_dir(pid, dir, sizeof(dir));
}

void follow(__u32 pid, bool on)
{
	static unsigned long refused;
	__u8 one = 1;

	if (!on) {
		bpf_map_delete_elem(followed_fd, &pid);
		return;
	}
	if (!bpf_map_update_elem(followed_fd, &pid, &one, BPF_ANY)) {
		/*
		 * Checked after the insert: a process that exits later leaves the table at its exit. One
		 * already gone (a --pid that exited before a restart) would stay, and follow the next
		 * process given its pid.
		 */
		if (!runs(pid)) {
			char extra[64];

			bpf_map_delete_elem(followed_fd, &pid);
			snprintf(extra, sizeof(extra), "\"event\":\"not_running\",\"pid\":%u", pid);
			message("warn", extra, "pid %u is not running: not followed", pid);
		}
		return;
	}
	/* The table is full (children of followed processes fill it too): said, with the count so far, at 1, 2, 4, ... */
	refused++;
	if (!(refused & (refused - 1)))
		message("warn", "\"event\":\"followed_table_full\"",
			"cannot follow pid %u: %s (%lu processes not followed so far; the table holds %d)", pid,
			strerror(errno), refused, CW_MAX_FOLLOWED);
}

bool is_followed(__u32 pid)
{
	__u8 v;

	if (settings.follow_all)
		return pid != settings.exclude[0] && pid != settings.exclude[1];
	return bpf_map_lookup_elem(followed_fd, &pid, &v) == 0;
}

__u32 followed_count(void)
{
	__u32 n = 0, key, next;
	__u8 v;

	if (!settings.follow_all)
		for (int err = bpf_map_get_next_key(followed_fd, NULL, &key); !err;
		     err = bpf_map_get_next_key(followed_fd, &key, &next), key = next)
			if (!bpf_map_lookup_elem(followed_fd, &key, &v))
				n++;
	return n;
}

void add_comm(const char *name)
{
	if (ncomms < MAX_COMMS)
		snprintf(comms[ncomms++], CW_COMM_LEN, "%s", name);
}

bool follows_comms(void)
{
	return ncomms > 0;
}

bool comm_matches(const char *comm)
{
	for (int i = 0; i < ncomms; i++)
		if (!strncmp(comms[i], comm, CW_COMM_LEN - 1))
			return true;
	return false;
}
