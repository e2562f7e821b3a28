/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/* log.c - levelled logger with stderr, syslog and capture sinks */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
	const char *progname;
	enum log_sink sink;
	log_capture_fn *capture;
	void *capture_arg;
	int level;
	unsigned debug;
	int debug_parsed;
} log_cfg = { "embassyfs", LOG_SINK_STDERR, NULL, NULL, LOG_INFO, 0, 0 };

static const struct {
	const char *name;
	unsigned bit;
} log_categories[] = {
	{ "store", LOG_DBG_STORE },   { "journal", LOG_DBG_JOURNAL },
	{ "fs", LOG_DBG_FS },         { "fuse", LOG_DBG_FUSE },
	{ "codec", LOG_DBG_CODEC },   { "key", LOG_DBG_KEY },
	{ "sync", LOG_DBG_SYNC },     { "fsck", LOG_DBG_FSCK },
};

void log_init(const char *progname)
{
	const char *env = getenv("EMBASSYFS_DEBUG");

	log_cfg.progname = progname;
	if (env && *env && log_set_debug(env) < 0)
		fprintf(stderr, "%s: ignoring unknown category in EMBASSYFS_DEBUG='%s'\n",
			progname, env);
}

void log_set_sink(enum log_sink sink, log_capture_fn *capture_fn, void *arg)
{
	if (sink == LOG_SINK_SYSLOG)
		openlog(log_cfg.progname, LOG_PID, LOG_DAEMON);
	log_cfg.sink = sink;
	log_cfg.capture = capture_fn;
	log_cfg.capture_arg = arg;
}

void log_set_level(int level)
{
	log_cfg.level = level;
}

int log_set_debug(const char *list)
{
	unsigned mask = 0;
	const char *p = list;
	int ret = 0;

	while (*p) {
		size_t n = strcspn(p, ",");
		size_t i;

		if (n == 3 && !strncmp(p, "all", 3)) {
			mask = ~0u;
		} else {
			for (i = 0; i < ARRAY_SIZE(log_categories); i++)
				if (strlen(log_categories[i].name) == n &&
				    !strncmp(p, log_categories[i].name, n))
					break;
			if (i == ARRAY_SIZE(log_categories))
				ret = -EINVAL;
			else
				mask |= log_categories[i].bit;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	log_cfg.debug = mask;
	if (mask)
		log_cfg.level = LOG_DEBUG;
	return ret;
}

int log_debug_on(enum log_debug_category cat)
{
	return (log_cfg.debug & (unsigned)cat) != 0;
}

void log_vmsg(int level, const char *fmt, va_list ap)
{
	char buf[1024];

	if (level > log_cfg.level)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	switch (log_cfg.sink) {
	case LOG_SINK_SYSLOG:
		syslog(level, "%s", buf);
		break;
	case LOG_SINK_CAPTURE:
		if (log_cfg.capture)
			log_cfg.capture(level, buf, log_cfg.capture_arg);
		break;
	case LOG_SINK_STDERR:
	default:
		fprintf(stderr, "%s: %s\n", log_cfg.progname, buf);
		break;
	}
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

const char *log_hex(char *buf, const void *data, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *p = data;

	for (size_t i = 0; i < n; i++) {
		buf[2 * i] = digits[p[i] >> 4];
		buf[2 * i + 1] = digits[p[i] & 15];
	}
	buf[2 * n] = '\0';
	return buf;
}
