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

static char buf[4096];
static size_t len;
static bool at_eof;

/* Appends what stdin has to buf; false once stdin is at its end. */
static bool take_input(void)
{
	ssize_t n;

	if (at_eof)
		return false;
	n = read(STDIN_FILENO, buf + len, sizeof(buf) - 1 - len);
	if (n == 0)
		at_eof = true;
	if (n <= 0)
		return n == 0 ? false : errno == EINTR || errno == EAGAIN;
	len += n;
	return true;
}

/* Runs each whole line in buf; with only_shed, the `shed` lines alone, the rest kept in order. */
static void run_lines(bool only_shed)
{
	size_t at = 0;
	char *nl;

	while ((nl = memchr(buf + at, '\n', len - at))) {
		size_t line_len = nl + 1 - (buf + at);

		if (only_shed && strncmp(buf + at, "shed ", 5)) {
			at += line_len;
			continue;
		}
		*nl = 0;
		handle_command(buf + at);
		memmove(buf + at, nl + 1, len - at - line_len);
		len -= line_len;
	}
	if (len == sizeof(buf) - 1 && !memchr(buf, '\n', len))
		len = 0; /* an absurdly long line: drop it rather than stall */
}

bool read_commands(bool readable)
{
	bool more = !readable || take_input();

	run_lines(false);
	return more;
}

int shed_commands_fd(void)
{
	return at_eof || len == sizeof(buf) - 1 ? -1 : STDIN_FILENO;
}

void read_shed_commands(void)
{
	take_input();
	run_lines(true);
}

bool quit_requested(void)
{
	return quit;
}
