// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A process outlives its main thread when that thread calls pthread_exit: /proc/PID then shows
 * a zombie, whose maps are empty and whose exe, root and mem are gone, while the process runs on
 * in its other threads. Its per-thread directories still have them.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "process_dir.h"

/* A task's state letter from its stat file; 0 when it has none (gone). */
static char state_of(const char *stat_path)
{
	char stat[512], *paren;
	size_t n;
	FILE *f = fopen(stat_path, "re");

	if (!f)
		return 0;
	n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = '\0';
	/* The state follows the command's name, which may itself hold parentheses. */
	paren = strrchr(stat, ')');
	return paren && paren[1] == ' ' ? paren[2] : 0;
}

static bool running(char state)
{
	return state && state != 'Z' && state != 'X';
}

bool process_dir(__u32 pid, char *dir, size_t len)
{
	char path[64];
	struct dirent *de;
	bool found = false;
	DIR *tasks;
	char state;

	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	state = state_of(path);
	if (running(state)) {
		snprintf(dir, len, "/proc/%u", pid);
		return true;
	}
	if (state != 'Z')
		return false;
	snprintf(path, sizeof(path), "/proc/%u/task", pid);
	tasks = opendir(path);
	if (!tasks)
		return false;
	while (!found && (de = readdir(tasks))) {
		char *end;
		unsigned long tid = strtoul(de->d_name, &end, 10);

		if (*end || !tid || tid == pid)
			continue;
		snprintf(path, sizeof(path), "/proc/%u/task/%lu/stat", pid, tid);
		if (running(state_of(path))) {
			snprintf(dir, len, "/proc/%u/task/%lu", pid, tid);
			found = true;
		}
	}
	closedir(tasks);
	return found;
}
