/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/* progress.c - one-line progress on a terminal: done, rate, ETA */
#include "progress.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROGRESS_INTERVAL_NS 100000000ll /* 10 redraws a second */

struct progress {
	FILE *out;
	bool enabled;
	bool shown;
	const char *what;
	int64_t start_ns;
	int64_t last_ns;
	size_t width; /* of the last line drawn */
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

int progress_new(FILE *out, bool enabled, struct progress **res)
{
	struct progress *p;

	*res = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->out = out;
	p->enabled = enabled;
	*res = p;
	return 0;
}

void progress_end(struct progress *p)
{
	if (!p || !p->enabled)
		return;
	if (p->shown) {
		fprintf(p->out, "\r%*s\r", (int)p->width, "");
		fflush(p->out);
	}
	p->shown = false;
	p->what = NULL;
	p->width = 0;
}

void progress_free(struct progress *p)
{
	progress_end(p);
	free(p);
}

static void fmt_amount(char *buf, size_t cap, double v, bool bytes)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	size_t u = 0;

	if (!bytes) {
		snprintf(buf, cap, "%.0f", v);
		return;
	}
	while (v >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		v /= 1024;
		u++;
	}
	snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

void progress_update(struct progress *p, const char *what, uint64_t done,
		     uint64_t total, bool bytes)
{
	char line[160], a[32], b[32], r[32];
	double secs, rate;
	int64_t t;
	int n;

	if (!p || !p->enabled)
		return;
	t = now_ns();
	if (what != p->what) {
		progress_end(p);
		p->what = what;
		p->start_ns = t;
		p->last_ns = 0;
	}
	if (p->last_ns && t - p->last_ns < PROGRESS_INTERVAL_NS)
		return;
	p->last_ns = t;
	secs = (double)(t - p->start_ns) / 1e9;
	rate = secs > 0.05 ? (double)done / secs : 0;
	fmt_amount(a, sizeof(a), (double)done, bytes);
	fmt_amount(r, sizeof(r), rate, bytes);
	if (total) {
		double left = rate > 0 && total > done
				  ? (double)(total - done) / rate
				  : 0;
		unsigned eta = (unsigned)(left + 0.5);

		fmt_amount(b, sizeof(b), (double)total, bytes);
		n = snprintf(
		    line, sizeof(line), "%s: %3u%% %s of %s  %s/s  ETA %u:%02u",
		    what, (unsigned)(done >= total ? 100 : done * 100 / total),
		    a, b, r, eta / 60, eta % 60);
	} else {
		n = snprintf(line, sizeof(line), "%s: %s  %s/s", what, a, r);
	}
	if (n < 0)
		return;
	fprintf(p->out, "\r%s", line);
	if ((size_t)n < p->width)
		fprintf(p->out, "%*s", (int)(p->width - (size_t)n), "");
	p->width = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	p->shown = true;
	fflush(p->out);
}
