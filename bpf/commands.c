// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Commands on stdin, one per line, from the sidecar that supervises the loader:
 *   follow PID | unfollow PID | comm NAME | min KIND MICROSECONDS
 *   attach PATH | shed on|off | stats | quit
 * An unknown or malformed command is answered with a warning MESSAGE.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "cuda_libs.h"
#include "filter.h"
#include "thread_ctx.h"
#include "frames.h"
#include "stats.h"

static bool quit;

static void handle_command(char *line)
{
	char *verb = strtok(line, " \t\r\n"), *arg = strtok(NULL, " \t\r\n"), *arg2 = strtok(NULL, " \t\r\n");
	char *end;
	unsigned long pid = arg ? strtoul(arg, &end, 10) : 0;

	if (!verb)
		return;
	if (!strcmp(verb, "follow") && arg && !*end && pid) {
		follow(pid, true);
		thread_ctx_scan(pid);
	} else if (!strcmp(verb, "unfollow") && arg && !*end && pid) {
		follow(pid, false);
	} else if (!strcmp(verb, "comm") && arg) {
		add_comm(arg);
		scan_processes(false);
	} else if (!strcmp(verb, "min") && arg && arg2 && set_min(arg, arg2)) {
		push_settings();
	} else if (!strcmp(verb, "shed") && arg && (!strcmp(arg, "on") || !strcmp(arg, "off"))) {
		set_shed(!strcmp(arg, "on"));
	} else if (!strcmp(verb, "attach") && arg) {
		probe_cuda_library(arg);
	} else if (!strcmp(verb, "stats")) {
		emit_stats();
	} else if (!strcmp(verb, "quit")) {
		quit = true;
	} else {
		message("warn", "\"event\":\"bad_command\"", "unknown or malformed command: %s%s%s", verb,
			arg ? " " : "", arg ? arg : "");
	}
}

bool read_commands(void)
{
	static char buf[4096];
	static size_t len;
	ssize_t n = read(STDIN_FILENO, buf + len, sizeof(buf) - 1 - len);
	char *nl;

	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	if (n == 0)
		return false;
	len += n;
	buf[len] = 0;
	while ((nl = memchr(buf, '\n', len))) {
		*nl = 0;
		handle_command(buf);
		len -= nl + 1 - buf;
		memmove(buf, nl + 1, len);
	}
	if (len == sizeof(buf) - 1)
		len = 0; /* an absurdly long line: drop it rather than stall */
	return true;
}

bool quit_requested(void)
{
	return quit;
}
