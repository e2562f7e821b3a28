/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fsck.c - the checker: table of passes, problem reports, repairs, summary
 *
 * fsck_run() opens the store (pass 0 does, so that an unopenable store is
 * itself a reported problem), then runs the passes of fsck_passes[] in
 * order. Passes report through fsck_problem(), which counts, prints (text
 * or JSON), latches repeats and decides whether to repair: -n never, -y
 * always, -p when the problem is PREEN_OK (anything else that would be
 * left halts the run), ask mode through the caller's callback. A repair
 * the key or a sound journal would be needed for is refused with the
 * reason printed.
 *
 * Repairs: changes of journaled column families go into one journaled
 * transaction (committed every FSCK_TXN_MAX operations and at the end of
 * each pass), so replicas receive them; local bookkeeping, journal
 * records themselves and the signed head go into a raw batch written
 * just before. Segment punches come after the batch that stops naming the
 * record is durable.
 *
 * Output: text grouped by pass, or one JSON document streamed as the
 * passes run and closed by fsck_finish() with the summary and the exit
 * status the tool chose.
 */
#include "fsck.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "fsck_int.h"
#include "log.h"

#define FSCK_TXN_MAX	4096
#define FSCK_PATH_DEPTH 64

#define ERROR	 FSCK_SEV_ERROR
#define WARNING	 FSCK_SEV_WARNING
#define INFO	 FSCK_SEV_INFO
#define PREEN_OK FSCK_PF_PREEN_OK
#define NO_OK	 FSCK_PF_NO_OK
#define FATAL	 FSCK_PF_FATAL
#define KEY	 FSCK_PF_KEY
#define KEYED	 FSCK_PF_KEYED

const struct fsck_problem_desc fsck_problems[FSCK_PR_COUNT] = {
#define FSCK_PROBLEM(sym, code, name, sev, repair, flags, msg)                 \
	[sym] = {code, name, sev, repair, flags, msg},
#include "fsck_problems.def"
#undef FSCK_PROBLEM
};

#undef ERROR
#undef WARNING
#undef INFO
#undef PREEN_OK
#undef NO_OK
#undef FATAL
#undef KEY
#undef KEYED

struct fsck_pass_desc {
	unsigned nr;
	const char *title;
	int (*fn)(struct fsck *f);
	bool keyed;
};

/*
 * Run order: the journal right after the header, because what it proves
 * is restored before the structural passes judge (and repair) the rest.
 */
static const struct fsck_pass_desc fsck_passes[] = {
    {4, "checking the journal, its chain and the state it records", fsck_pass4,
     false},
    {1, "checking block segments and checksums", fsck_pass1, false},
    {2, "checking extents and reference counts", fsck_pass2, false},
    {3, "checking inodes, directory entries and connectivity", fsck_pass3,
     false},
    {5, "checking tags, attributes and block contents with the key", fsck_pass5,
     true},
};

size_t fsck_problem_count(void)
{
	return FSCK_PR_COUNT;
}

int fsck_problem_info(size_t i, uint32_t *code, const char **name,
		      const char **message)
{
	if (i >= FSCK_PR_COUNT)
		return -ERANGE;
	*code = fsck_problems[i].code;
	*name = fsck_problems[i].name;
	*message = fsck_problems[i].msg;
	return 0;
}

int fsck_new(const struct fsck_opts *o, struct fsck **out)
{
	struct fsck *f;

	*out = NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->o = *o;
	f->out = o->out ? o->out : stdout;
	f->rw = o->mode != FSCK_MODE_NO && !o->compare;
	f->json_first_pass = true;
	if (store_batch_new(&f->raw)) {
		free(f);
		return -ENOMEM;
	}
	for (size_t q = 0; q < FSCK_PR_COUNT; q++)
		f->latch[q].answer = -1;
	*out = f;
	return 0;
}

static void fsck_close_store(struct fsck *f)
{
	int ret;

	fsck_pass1_stop(f);
	if (!f->st)
		return;
	if (f->rw && !f->library) {
		ret = fsck_commit(f);
		if (ret)
			fsck_lib_error(f, "cannot write the repairs", ret);
	}
	if (f->j) {
		/* Signs the new head with the key; reaps released blocks. */
		ret = journal_sync(f->j);
		if (ret)
			fsck_lib_error(f, "cannot sync the journal", ret);
		journal_close(f->j);
		f->j = NULL;
	} else if (f->rw && f->modified) {
		ret = store_sync(f->st);
		if (ret)
			fsck_lib_error(f, "cannot sync the store", ret);
	}
	store_close(f->st);
	f->st = NULL;
}

void fsck_free(struct fsck *f)
{
	if (!f)
		return;
	fsck_close_store(f);
	journal_txn_free(f->txn);
	store_batch_free(f->raw);
	fsck_blk_release(&f->blocks);
	fsck_ino_release(&f->inodes);
	free(f->lost_inos);
	free(f->redo);
	codec_free(f->codec);
	key_free(f->k);
	free(f);
}

/* ---- output helpers ---- */

const char *fsck_hex(char *buf, const void *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *b = p;

	for (size_t q = 0; q < n; q++) {
		buf[2 * q] = digits[b[q] >> 4];
		buf[2 * q + 1] = digits[b[q] & 15];
	}
	buf[2 * n] = '\0';
	return buf;
}

/* Length of a valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t q = 1; q < len; q++) {
		if ((s[q] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[q] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A JSON string; invalid UTF-8 becomes U+FFFD. */
static void json_str(FILE *o, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	fputc('"', o);
	while (n) {
		size_t l;

		if (*p == '"' || *p == '\\') {
			fprintf(o, "\\%c", *p);
			l = 1;
		} else if (*p < 0x20 || *p == 0x7f) {
			fprintf(o, "\\u%04x", *p);
			l = 1;
		} else if ((l = utf8_len(p, n)) != 0) {
			fwrite(p, 1, l, o);
		} else {
			fputs("\\ufffd", o);
			l = 1;
		}
		p += l;
		n -= l;
	}
	fputc('"', o);
}

/* A name or path for text output: control bytes and invalid UTF-8 escaped. */
static void text_str(FILE *o, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	while (n) {
		size_t l =
		    *p >= 0x20 && *p != 0x7f && *p != '\\' ? utf8_len(p, n) : 0;

		if (l)
			fwrite(p, 1, l, o);
		else if (*p == '\\')
			fputs("\\\\", o);
		else
			fprintf(o, "\\x%02x", *p);
		l = l ? l : 1;
		p += l;
		n -= l;
	}
}

/* Expand %1, %2 and %s of a problem message. */
static void expand_msg(char *buf, size_t cap, const char *msg,
		       const struct fsck_pctx *pc)
{
	size_t o = 0;

	for (const char *m = msg; *m && o + 1 < cap; m++) {
		int w = 0;

		if (*m != '%' || !m[1]) {
			buf[o++] = *m;
			continue;
		}
		m++;
		if (*m == '1')
			w = snprintf(buf + o, cap - o, "%" PRIu64, pc->n1);
		else if (*m == '2')
			w = snprintf(buf + o, cap - o, "%" PRIu64, pc->n2);
		else if (*m == 's')
			w = snprintf(buf + o, cap - o, "%s",
				     pc->str ? pc->str : "?");
		else
			buf[o++] = *m;
		if (w > 0)
			o = MIN(o + (size_t)w, cap - 1);
	}
	buf[o] = '\0';
}

const char *fsck_path(struct fsck *f, uint64_t ino, char *buf, size_t cap)
{
	char parts[FSCK_PATH_DEPTH][FS_NAME_MAX + 2];
	size_t n = 0, o = 0;
	uint64_t cur = ino;

	if (!f->k || !f->st || cap < 2)
		return NULL;
	if (ino == FS_ROOT_INO) {
		strcpy(buf, "/");
		return buf;
	}
	while (cur != FS_ROOT_INO) {
		struct fsck_ino *e = fsck_ino_find(&f->inodes, cur);
		uint8_t key[FSCK_DIRENT_KEY], *val = NULL;
		size_t vlen, nlen;
		int ret;

		if (!e || !e->parent || n == ARRAY_SIZE(parts))
			return NULL;
		put_be64(key, e->parent);
		memcpy(key + 8, e->hash, KEY_NAME_HASH_BYTES);
		ret = store_get(f->st, STORE_CF_DIRENT, key, sizeof(key),
				(void **)&val, &vlen);
		if (ret == 0)
			ret = fsck_dirent_open(f, key, val, vlen, parts[n],
					       &nlen);
		free(val);
		if (ret)
			return NULL;
		n++;
		cur = e->parent;
	}
	while (n--) {
		int w = snprintf(buf + o, cap - o, "/%s", parts[n]);

		if (w < 0 || (size_t)w >= cap - o)
			return NULL;
		o += (size_t)w;
	}
	return buf;
}

static const char *sev_name(enum fsck_sev s)
{
	return s == FSCK_SEV_ERROR     ? "error"
	       : s == FSCK_SEV_WARNING ? "warning"
				       : "info";
}

/*
 * Location: text (" ino 12 '/a' block 3 ...") or JSON object members.
 * Returns whether anything was printed.
 */
static bool print_location(struct fsck *f, const struct fsck_pctx *pc,
			   bool json)
{
	char hex[2 * 64 + 1], path[4096];
	const char *p = NULL;
	bool first = true;

#define SEP() (json ? (first ? (first = false, "") : ",") : " ")
	if (pc->cf) {
		enum store_cf c = (enum store_cf)(pc->cf - 1);
		const char *cf = store_cf_name(c);
		bool show_key = pc->key && !pc->ino && !pc->id && !pc->seq;
		char text[65];

		/* super's keys are names; the rest binary. */
		if (show_key && c == STORE_CF_SUPER)
			snprintf(text, sizeof(text), "%.*s",
				 (int)MIN(pc->klen, (size_t)64),
				 (const char *)pc->key);
		else if (show_key)
			fsck_hex(text, pc->key, MIN(pc->klen, (size_t)32));
		if (json) {
			fprintf(f->out, "%s\"cf\":\"%s\"", SEP(), cf);
			if (show_key) {
				fputs(",\"key\":", f->out);
				json_str(f->out, text);
			}
		} else {
			fprintf(f->out, "%scf %s", SEP(), cf);
			if (show_key && c == STORE_CF_SUPER) {
				fputs(" key '", f->out);
				text_str(f->out, text);
				fputc('\'', f->out);
			} else if (show_key) {
				fprintf(f->out, " key %s", text);
			}
		}
	}
	if (pc->ino) {
		p = fsck_path(f, pc->ino, path, sizeof(path));
		if (json)
			fprintf(f->out, "%s\"ino\":%" PRIu64, SEP(), pc->ino);
		else
			fprintf(f->out, "%sino %" PRIu64, SEP(), pc->ino);
		if (p) {
			if (json) {
				fprintf(f->out, "%s\"path\":", SEP());
				json_str(f->out, p);
			} else {
				fputs(" '", f->out);
				text_str(f->out, p);
				fputc('\'', f->out);
			}
		}
	}
	if (pc->has_idx)
		fprintf(f->out,
			json ? "%s\"block\":%" PRIu64 : "%sblock %" PRIu64,
			SEP(), pc->idx);
	if (pc->id)
		fprintf(f->out, json ? "%s\"id\":\"%s\"" : "%sid %s", SEP(),
			fsck_hex(hex, pc->id, json ? 32 : 8));
	if (pc->seq)
		fprintf(f->out, json ? "%s\"seq\":%" PRIu64 : "%sseq %" PRIu64,
			SEP(), pc->seq);
	if (pc->has_seg) {
		if (json)
			fprintf(f->out,
				"%s\"segment\":%" PRIu32 ",\"offset\":%" PRIu64,
				SEP(), pc->seg, pc->off);
		else
			fprintf(f->out,
				"%ssegment %08" PRIu32 " offset %" PRIu64,
				SEP(), pc->seg, pc->off);
	}
#undef SEP
	return !first || (!json && (pc->ino || pc->has_idx || pc->id ||
				    pc->seq || pc->has_seg || pc->cf));
}

static void json_pass_open(struct fsck *f)
{
	if (!f->o.json || f->pass_open)
		return;
	fprintf(f->out, "%s\n  {\"pass\":%u,\"problems\":[",
		f->json_first_pass ? "" : ",", f->pass);
	f->json_first_pass = false;
	f->json_first_problem = true;
	f->pass_open = true;
}

void fsck_pass_begin(struct fsck *f, unsigned pass, const char *title)
{
	f->pass = pass;
	for (size_t q = 0; q < FSCK_PR_COUNT; q++) {
		f->latch[q].seen = 0;
		f->latch[q].hidden = 0;
		f->latch[q].hidden_fixed = 0;
	}
	if (f->o.json) {
		f->pass_open = false;
		fprintf(f->out, "%s\n  {\"pass\":%u,\"title\":",
			f->json_first_pass ? "" : ",", pass);
		json_str(f->out, title);
		fputs(",\"problems\":[", f->out);
		f->json_first_pass = false;
		f->json_first_problem = true;
		f->pass_open = true;
	} else {
		fprintf(f->out, "Pass %u: %s\n", pass, title);
	}
	fflush(f->out);
}

/* Why a repair that exists is not possible now, or NULL. */
static const char *fix_blocker(struct fsck *f,
			       const struct fsck_problem_desc *d,
			       const struct fsck_pctx *pc)
{
	if (pc->nofix)
		return pc->nofix;
	if ((d->flags & FSCK_PF_KEY) && !f->k)
		return "needs the key";
	if (!f->rw)
		return NULL; /* declined, not blocked */
	if (pc->journaled && f->redo_left)
		return "the records pending redo must be written again first";
	if (pc->journaled && f->o.mode != FSCK_MODE_NO && !fsck_can_journal(f))
		return "the journal cannot take new records";
	return NULL;
}

static bool decide(struct fsck *f, enum fsck_problem_id id,
		   const struct fsck_problem_desc *d, const char *blocked,
		   bool shown)
{
	struct fsck_latch *l = &f->latch[id];
	char q[160];

	if (blocked || !f->rw)
		return false;
	switch (f->o.mode) {
	case FSCK_MODE_YES:
		return true;
	case FSCK_MODE_PREEN:
		return d->flags & FSCK_PF_PREEN_OK;
	case FSCK_MODE_ASK:
		if (!shown && l->answer >= 0)
			return l->answer;
		snprintf(q, sizeof(q), "%s", d->repair);
		l->answer = f->o.ask && f->o.ask(f->o.ask_arg, q);
		return l->answer;
	case FSCK_MODE_NO:
	default:
		return false;
	}
}

bool fsck_problem(struct fsck *f, enum fsck_problem_id id,
		  const struct fsck_pctx *pc)
{
	const struct fsck_problem_desc *d = &fsck_problems[id];
	struct fsck_latch *l = &f->latch[id];
	const char *blocked;
	char msg[512];
	bool counted = d->sev != FSCK_SEV_INFO;
	bool shown, fix;

	l->seen++;
	shown = f->o.verbose || l->seen <= FSCK_LATCH_SHOW ||
		(d->flags & FSCK_PF_FATAL);
	blocked = d->repair ? fix_blocker(f, d, pc) : "";
	expand_msg(msg, sizeof(msg), d->msg, pc);

	if (shown) {
		if (f->o.json) {
			json_pass_open(f);
			fprintf(f->out,
				"%s\n    {\"code\":\"0x%06" PRIx32
				"\",\"name\":\"%s\",\"severity\":\"%s\",",
				f->json_first_problem ? "" : ",", d->code,
				d->name, sev_name(d->sev));
			f->json_first_problem = false;
			fputs("\"message\":", f->out);
			json_str(f->out, msg);
			fputs(",\"location\":{", f->out);
			print_location(f, pc, true);
			fputc('}', f->out);
		} else {
			fprintf(f->out, "0x%06" PRIx32 " %s:", d->code,
				d->name);
			if (print_location(f, pc, false))
				fputc(':', f->out);
			fprintf(f->out, " %s.", msg);
		}
	}
	if (shown && !f->o.json && f->o.mode == FSCK_MODE_ASK && !blocked &&
	    d->repair && f->rw) {
		fprintf(f->out, " %s", d->repair);
		fflush(f->out);
	}
	fix = decide(f, id, d, blocked, shown);

	if (counted)
		f->problems++;
	if (fix) {
		if (counted)
			f->corrected++;
	} else if (counted && !(d->flags & FSCK_PF_NO_OK)) {
		f->left++;
		if (f->o.mode == FSCK_MODE_PREEN && !(d->flags & FSCK_PF_FATAL))
			f->halted = true;
	}
	if ((d->flags & FSCK_PF_FATAL) && !fix)
		f->fatal = true;

	if (shown) {
		const char *outcome;

		if (!d->repair)
			outcome = counted ? "not-repairable" : "none";
		else if (fix)
			outcome = "fixed";
		else if (blocked)
			outcome = "blocked";
		else
			outcome = "declined";
		if (f->o.json) {
			if (d->repair) {
				fputs(",\"repair\":", f->out);
				json_str(f->out, d->repair);
			}
			fprintf(f->out, ",\"outcome\":\"%s\"", outcome);
			if (blocked && *blocked) {
				fputs(",\"why\":", f->out);
				json_str(f->out, blocked);
			}
			fputc('}', f->out);
		} else if (f->o.mode == FSCK_MODE_ASK && d->repair && f->rw &&
			   !blocked) {
			/* the answer was typed after the question */
		} else if (!d->repair) {
			fputs(counted ? " No repair.\n" : "\n", f->out);
		} else if (blocked) {
			fprintf(f->out, " %s? no (%s)\n", d->repair, blocked);
		} else {
			fprintf(f->out, " %s? %s\n", d->repair,
				fix ? "yes" : "no");
		}
		fflush(f->out);
	} else {
		l->hidden++;
		if (fix)
			l->hidden_fixed++;
	}
	return fix;
}

void fsck_pass_end(struct fsck *f)
{
	int ret;

	for (size_t q = 0; q < FSCK_PR_COUNT; q++) {
		const struct fsck_problem_desc *d = &fsck_problems[q];
		struct fsck_latch *l = &f->latch[q];

		if (!l->hidden)
			continue;
		if (f->o.json) {
			json_pass_open(f);
			fprintf(
			    f->out,
			    "%s\n    {\"code\":\"0x%06" PRIx32
			    "\",\"name\":\"%s\",\"severity\":\"%s\","
			    "\"latched\":%" PRIu64 ",\"fixed\":%" PRIu64 "}",
			    f->json_first_problem ? "" : ",", d->code, d->name,
			    sev_name(d->sev), l->hidden, l->hidden_fixed);
			f->json_first_problem = false;
		} else {
			fprintf(f->out,
				"0x%06" PRIx32 " %s: %" PRIu64
				" more like this",
				d->code, d->name, l->hidden);
			if (d->repair)
				fprintf(f->out, " (%" PRIu64 " fixed)",
					l->hidden_fixed);
			fputs(".\n", f->out);
		}
	}
	if (f->rw && f->st && !f->library) {
		ret = fsck_commit(f);
		if (ret)
			fsck_lib_error(f, "cannot write the repairs", ret);
	}
	if (f->o.json && f->pass_open) {
		fputs("]}", f->out);
		f->pass_open = false;
	}
	if (f->halted && !f->o.json)
		fprintf(f->out,
			"\n%s: UNEXPECTED INCONSISTENCY; RUN %s MANUALLY "
			"(without -p)\n",
			f->o.store,
			f->o.progname ? f->o.progname : "fsck.embassyfs");
	fflush(f->out);
}

bool fsck_stopped(struct fsck *f)
{
	if (f->o.cancel && *f->o.cancel)
		f->cancelled = true;
	return f->fatal || f->halted || f->cancelled || f->library;
}

void fsck_lib_error(struct fsck *f, const char *what, int err)
{
	if (!f->library)
		log_err("%s: %s", what, strerror(-err));
	f->library = true;
}

static void progress(struct fsck *f, const char *what, uint64_t done,
		     uint64_t total, bool bytes)
{
	if (!f->o.progress)
		return;
	if (f->o.cancel && *f->o.cancel)
		f->cancelled = true;
	if (f->prog_what && f->prog_what != what)
		f->o.progress(f->o.progress_arg, f->prog_what, 0, 0, false,
			      true);
	f->prog_what = what;
	f->o.progress(f->o.progress_arg, what, done, total, bytes, false);
}

void fsck_progress(struct fsck *f, const char *what, uint64_t done,
		   uint64_t total)
{
	progress(f, what, done, total, false);
}

void fsck_progress_bytes(struct fsck *f, const char *what, uint64_t done,
			 uint64_t total)
{
	progress(f, what, done, total, true);
}

void fsck_progress_end(struct fsck *f)
{
	if (f->o.progress && f->prog_what)
		f->o.progress(f->o.progress_arg, f->prog_what, 0, 0, false,
			      true);
	f->prog_what = NULL;
}

/* ---- repairs ---- */

bool fsck_can_journal(struct fsck *f)
{
	int ret;

	if (!f->rw || !f->st || !f->have_hdr || f->redo_left)
		return false;
	if (f->j)
		return true;
	if (f->jerr)
		return false;
	/* Journal records fixed by pass 4 must be in place first. */
	if (store_batch_count(f->raw)) {
		f->writes++;
		ret = store_write(f->st, f->raw, false);
		if (ret) {
			fsck_lib_error(f, "cannot write the repairs", ret);
			f->jerr = ret;
			return false;
		}
		store_batch_clear(f->raw);
		f->modified = true;
	}
	/* Opening reaps released blocks: the local family changes. */
	f->writes++;
	ret = journal_open(f->st, f->k, f->hdr.id, &f->j);
	if (ret) {
		log_warn("the journal of '%s' cannot be opened for new "
			 "records: %s; repairs of journaled values are refused",
			 f->o.store, strerror(-ret));
		f->jerr = ret;
		return false;
	}
	/* Blocks freed by repairs are released at close, not under the scan. */
	journal_reaper_off(f->j);
	return true;
}

struct journal_txn *fsck_txn(struct fsck *f)
{
	if (!fsck_can_journal(f))
		return NULL;
	if (!f->txn && journal_txn_new(f->j, &f->txn)) {
		fsck_lib_error(f, "cannot start a repair", -ENOMEM);
		return NULL;
	}
	return f->txn;
}

int fsck_txn_added(struct fsck *f, size_t ops)
{
	f->txn_ops += ops;
	if (f->txn_ops < FSCK_TXN_MAX)
		return 0;
	return fsck_commit(f);
}

struct store_batch *fsck_raw(struct fsck *f)
{
	return f->raw;
}

int fsck_commit(struct fsck *f)
{
	int ret;

	if (!f->rw || !f->st)
		return 0;
	if (store_batch_count(f->raw)) {
		f->writes++;
		ret = store_write(f->st, f->raw, false);
		if (ret)
			return ret;
		store_batch_clear(f->raw);
		f->modified = true;
	}
	if (f->txn && !journal_txn_empty(f->txn)) {
		f->writes++;
		ret = journal_commit(f->j, f->txn, false, NULL);
		if (ret)
			return ret;
		f->modified = true;
	}
	f->txn_ops = 0;
	return 0;
}

/*
 * Walk the keys with the prefix (all if plen is 0), from the first or from
 * the one after key `after` (alen > 0).
 */
static int cf_walk(struct fsck *f, enum store_cf cf, const void *prefix,
		   size_t plen, const uint8_t *after, size_t alen,
		   fsck_cf_fn *fn, void *arg, const atomic_bool *stop)
{
	struct store_iter *it = NULL;
	uint64_t n = 0;
	int ret;

	ret = plen ? store_iter_new(f->st, cf, &it)
		   : store_iter_new_scan(f->st, cf, &it);
	if (ret)
		return ret;
	if (alen)
		store_iter_seek(it, after, alen);
	else if (plen)
		store_iter_seek(it, prefix, plen);
	else
		store_iter_seek_first(it);
	for (; store_iter_valid(it); store_iter_next(it)) {
		size_t klen, vlen;
		const uint8_t *k = store_iter_key(it, &klen);
		const uint8_t *v = store_iter_value(it, &vlen);

		if (plen && (klen < plen || memcmp(k, prefix, plen)))
			break;
		if (alen && klen == alen && !memcmp(k, after, alen))
			continue;
		ret = fn(f, arg, k, klen, v, vlen);
		if (ret)
			goto out;
		if ((++n & 0x3fff) == 0 &&
		    (stop ? atomic_load(stop) : fsck_stopped(f))) {
			ret = -ECANCELED;
			goto out;
		}
	}
	ret = store_iter_status(it);
out:
	store_iter_free(it);
	return ret;
}

/*
 * What the kept families may hold in all: a fixed cost, not one per block.
 * Past it, walks read RocksDB again from where the memory ends.
 */
#define FSCK_KEEP_BYTES (64u << 20)

/* Make room in c for need more bytes, within the shared budget. */
static bool keep_room(struct fsck *f, struct fsck_cf_cache *c, size_t need)
{
	size_t want[2] = {MAX(c->cap ? 2 * c->cap : (size_t)1 << 20,
			      c->used + need),
			  c->used + need};

	if (c->used + need <= c->cap)
		return true;
	for (int q = 0; q < 2; q++) {
		size_t more = want[q] - c->cap;
		uint8_t *b;

		if (atomic_fetch_add(&f->cache_bytes, more) + more >
		    (f->o.keep_bytes ? f->o.keep_bytes : FSCK_KEEP_BYTES)) {
			atomic_fetch_sub(&f->cache_bytes, more);
			continue;
		}
		b = realloc(c->buf, want[q]);
		if (!b) {
			atomic_fetch_sub(&f->cache_bytes, more);
			return false;
		}
		c->buf = b;
		c->cap = want[q];
		return true;
	}
	return false;
}

static bool keep_add(struct fsck *f, struct fsck_cf_cache *c, const uint8_t *k,
		     size_t klen, const uint8_t *v, size_t vlen)
{
	size_t need = 8 + klen + vlen;

	if (!keep_room(f, c, need))
		return false;
	put_be32(c->buf + c->used, (uint32_t)klen);
	put_be32(c->buf + c->used + 4, (uint32_t)vlen);
	memcpy(c->buf + c->used + 8, k, klen);
	memcpy(c->buf + c->used + 8 + klen, v, vlen);
	c->used += need;
	return true;
}

static int keep_fn(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		   const uint8_t *v, size_t vlen)
{
	return keep_add(f, arg, k, klen, v, vlen) ? 0 : -EFBIG;
}

static void cache_drop(struct fsck *f, struct fsck_cf_cache *c)
{
	atomic_fetch_sub(&f->cache_bytes, c->cap);
	free(c->buf);
	memset(c, 0, sizeof(*c));
}

/* Let go of every family kept before the last write: none can serve. */
static void cache_drop_stale(struct fsck *f)
{
	for (int cf = 0; cf < STORE_CF_COUNT; cf++)
		if (f->cache[cf].on && f->cache[cf].writes != f->writes)
			cache_drop(f, &f->cache[cf]);
}

int fsck_cf_keep(struct fsck *f, enum store_cf cf)
{
	struct fsck_cf_cache *c = &f->cache[cf];
	int ret;

	if (c->on && c->writes == f->writes)
		return 0;
	cache_drop_stale(f);
	cache_drop(f, c);
	c->writes = f->writes;
	ret = cf_walk(f, cf, NULL, 0, NULL, 0, keep_fn, c, NULL);
	if (ret == 0 || ret == -EFBIG) {
		c->on = c->used > 0 || ret == 0;
		c->whole = ret == 0;
		return 0;
	}
	cache_drop(f, c);
	return ret == -ECANCELED ? ret : 0;
}

struct keep_walk {
	struct fsck_cf_cache *c;
	fsck_cf_fn *fn;
	void *arg;
	bool full;	/* the budget ran out: keeping stopped */
};

static int keep_walk_fn(struct fsck *f, void *arg, const uint8_t *k,
			size_t klen, const uint8_t *v, size_t vlen)
{
	struct keep_walk *w = arg;

	if (!w->full && !keep_add(f, w->c, k, klen, v, vlen))
		w->full = true;
	return w->fn(f, w->arg, k, klen, v, vlen);
}

int fsck_cf_walk_keep(struct fsck *f, enum store_cf cf, fsck_cf_fn *fn,
		      void *arg, const atomic_bool *stop)
{
	struct fsck_cf_cache *c = &f->cache[cf];
	struct keep_walk w = {.c = c, .fn = fn, .arg = arg};
	int ret;

	cache_drop(f, c);
	c->writes = f->writes;
	ret = cf_walk(f, cf, NULL, 0, NULL, 0, keep_walk_fn, &w, stop);
	if (ret == 0) {
		c->on = true;
		c->whole = !w.full;
	} else {
		cache_drop(f, c);
	}
	return ret;
}

void fsck_cf_unkeep(struct fsck *f)
{
	for (int cf = 0; cf < STORE_CF_COUNT; cf++)
		cache_drop(f, &f->cache[cf]);
}

/* A whole walk of a kept family: memory first, then RocksDB past it. */
static int cache_walk(struct fsck *f, struct fsck_cf_cache *c,
		      enum store_cf cf, const void *prefix, size_t plen,
		      fsck_cf_fn *fn, void *arg)
{
	const uint8_t *last = NULL;
	size_t lastlen = 0, n = 0;
	int ret;

	for (size_t at = 0; at < c->used;) {
		size_t klen = get_be32(c->buf + at);
		size_t vlen = get_be32(c->buf + at + 4);
		const uint8_t *k = c->buf + at + 8;

		at += 8 + klen + vlen;
		if (plen) {
			int d = memcmp(k, prefix, MIN(klen, plen));

			if (d < 0 || (d == 0 && klen < plen))
				continue;
			if (d > 0)
				return 0; /* past the prefix: all of it was here */
		}
		ret = fn(f, arg, k, klen, k + klen, vlen);
		if (ret)
			return ret;
		if ((++n & 0x3fff) == 0 && fsck_stopped(f))
			return -ECANCELED;
		last = k;
		lastlen = klen;
	}
	if (c->whole)
		return 0;
	return cf_walk(f, cf, prefix, plen, last, lastlen, fn, arg, NULL);
}

int fsck_cf_walk(struct fsck *f, enum store_cf cf, const void *prefix,
		 size_t plen, fsck_cf_fn *fn, void *arg)
{
	struct fsck_cf_cache *c = &f->cache[cf];

	if (c->on && c->writes == f->writes)
		return cache_walk(f, c, cf, prefix, plen, fn, arg);
	cache_drop_stale(f);
	return cf_walk(f, cf, prefix, plen, NULL, 0, fn, arg, NULL);
}

int fsck_cf_walk_stop(struct fsck *f, enum store_cf cf, const void *prefix,
		      size_t plen, fsck_cf_fn *fn, void *arg,
		      const atomic_bool *stop)
{
	return cf_walk(f, cf, prefix, plen, NULL, 0, fn, arg, stop);
}

/* ---- run and summary ---- */

double fsck_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double fsck_epoch; /* fsck_mono() when the last check began */

static double fsck_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double fsck_now(void)
{
	return fsck_mono() - fsck_epoch;
}

/*
 * The passes walk RocksDB's tables in key order, and from a cold cache
 * every block they touched was a small synchronous read while the segment
 * scan held the disk. A helper thread reads the table files first, in
 * large requests, then asks for the head of the segments; nothing is
 * written, and the memory is the page cache's.
 */
#define PREFETCH_BUF	   (4u << 20)
#define PREFETCH_SEG_BYTES (512ull << 20)

struct fsck_prefetch {
	pthread_t th;
	const char *store;
	atomic_bool stop;
};

/* Read every table file of STORE/db once, in large requests. */
static void prefetch_tables(struct fsck_prefetch *pf)
{
	char path[4096];
	struct dirent *d;
	void *buf;
	DIR *dir;

	snprintf(path, sizeof(path), "%s/db", pf->store);
	dir = opendir(path);
	if (!dir)
		return;
	buf = malloc(PREFETCH_BUF);
	while (buf && !atomic_load(&pf->stop) && (d = readdir(dir))) {
		size_t len = strlen(d->d_name);
		ssize_t n;
		int fd;

		if (len < 4 || (strcmp(d->d_name + len - 4, ".sst") &&
				strcmp(d->d_name + len - 4, ".log")))
			continue;
		fd = openat(dirfd(dir), d->d_name, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;	/* compacted away by a writer */
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		/* An error is RocksDB's to report, when a walk meets it. */
		while (!atomic_load(&pf->stop) &&
		       (n = read(fd, buf, PREFETCH_BUF)) != 0)
			if (n < 0 && errno != EINTR)
				break;
		close(fd);
	}
	free(buf);
	closedir(dir);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Where the segments cannot be read O_DIRECT (the scan's way), ask for
 * their head, which pass 1 scans once the block index is loaded: the
 * disk stays busy meanwhile, and the scan's own read-ahead takes over
 * from there. Read O_DIRECT, the page cache would only hold a second copy.
 */
static void prefetch_segments(const char *store, atomic_bool *stop)
{
	uint64_t budget = PREFETCH_SEG_BYTES;
	char path[4096], **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *d;
	DIR *dir;

	snprintf(path, sizeof(path), "%s/seg", store);
	dir = opendir(path);
	if (!dir)
		return;
	while ((d = readdir(dir))) {
		char *name;

		if (d->d_name[0] == '.')
			continue;
		if (n == cap) {
			size_t c = cap ? 2 * cap : 16;
			char **p = realloc(names, c * sizeof(*p));

			if (!p)
				break;
			names = p;
			cap = c;
		}
		name = strdup(d->d_name);
		if (!name)
			break;
		names[n++] = name;
	}
	if (n)
		qsort(names, n, sizeof(*names), cmp_name);
	for (size_t q = 0; q < n; q++) {
		int fd = atomic_load(stop) ? -1
					   : openat(dirfd(dir), names[q],
						    O_RDONLY | O_CLOEXEC);
		struct stat sb;

		if (fd >= 0 && q == 0 && fcntl(fd, F_SETFL, O_DIRECT) == 0)
			budget = 0;
		if (fd >= 0 && budget && fstat(fd, &sb) == 0) {
			uint64_t len = MIN((uint64_t)sb.st_size, budget);

			(void)posix_fadvise(fd, 0, (off_t)len,
					    POSIX_FADV_WILLNEED);
			budget -= len;
		}
		if (fd >= 0)
			close(fd);
		free(names[q]);
	}
	free(names);
	closedir(dir);
}

static void *prefetch_main(void *arg)
{
	struct fsck_prefetch *pf = arg;

	prefetch_tables(pf);
	prefetch_segments(pf->store, &pf->stop);
	return NULL;
}

static void prefetch_start(struct fsck *f)
{
	struct fsck_prefetch *pf = calloc(1, sizeof(*pf));

	if (!pf)
		return;
	pf->store = f->o.store;
	if (pthread_create(&pf->th, NULL, prefetch_main, pf)) {
		free(pf);
		return;
	}
	f->prefetch = pf;
}

static void prefetch_stop(struct fsck *f)
{
	struct fsck_prefetch *pf = f->prefetch;

	if (!pf)
		return;
	atomic_store(&pf->stop, true);
	pthread_join(pf->th, NULL);
	free(pf);
	f->prefetch = NULL;
}


int fsck_run(struct fsck *f)
{
	double t0, c0;
	int ret;

	fsck_epoch = fsck_mono();
	if (f->o.json) {
		fputs("{\"program\":\"fsck.embassyfs\",\"version\":", f->out);
		json_str(f->out, f->o.version ? f->o.version : "");
		fputs(",\"store\":", f->out);
		json_str(f->out, f->o.store);
		if (f->o.compare) {
			fputs(",\"compare\":", f->out);
			json_str(f->out, f->o.compare);
		}
		fprintf(f->out, ",\"mode\":\"%s\",\"keyed\":%s,\"passes\":[",
			f->o.compare		       ? "compare"
			: f->o.mode == FSCK_MODE_NO    ? "check"
			: f->o.mode == FSCK_MODE_YES   ? "repair"
			: f->o.mode == FSCK_MODE_PREEN ? "preen"
						       : "ask",
			f->o.secret_kind != FSCK_SECRET_NONE ? "true"
							     : "false");
	}
	ret = key_lib_init();
	if (ret) {
		fsck_lib_error(f, "cannot initialise libsodium", ret);
		return ret;
	}
	if (f->o.compare)
		return fsck_compare(f);

	prefetch_start(f);
	t0 = fsck_now();
	c0 = fsck_cpu();
	ret = fsck_pass0(f);
	log_dbg(LOG_DBG_FSCK,
		"pass 0: %.3f s, until %.3f s (this thread's CPU %.3f s)",
		fsck_now() - t0, fsck_now(), fsck_cpu() - c0);
	for (size_t q = 0; q < ARRAY_SIZE(fsck_passes) && !ret; q++) {
		const struct fsck_pass_desc *p = &fsck_passes[q];

		if (fsck_stopped(f) || !f->st)
			break;
		if (p->keyed && !f->k)
			continue;
		fsck_pass_begin(f, p->nr, p->title);
		t0 = fsck_now();
		c0 = fsck_cpu();
		ret = p->fn(f);
		log_dbg(LOG_DBG_FSCK,
			"pass %u: %.3f s, until %.3f s (this thread's CPU "
			"%.3f s)",
			p->nr, fsck_now() - t0, fsck_now(), fsck_cpu() - c0);
		if (ret == -ECANCELED)
			ret = 0;
		if (ret)
			fsck_lib_error(f, "the check failed", ret);
		fsck_progress_end(f);
		fsck_pass_end(f);
	}
	prefetch_stop(f);
	log_dbg(LOG_DBG_FSCK, "kept in memory: %zu bytes",
		atomic_load(&f->cache_bytes));
	fsck_cf_unkeep(f);
	fsck_close_store(f);
	return f->library ? -EIO : 0;
}

void fsck_get_result(const struct fsck *f, struct fsck_result *r)
{
	memset(r, 0, sizeof(*r));
	r->problems = f->problems;
	r->corrected = f->corrected;
	r->left = f->left;
	r->modified = f->modified;
	r->fatal = f->fatal;
	r->operational = f->operational;
	r->library = f->library;
	r->cancelled = f->cancelled;
	r->halted = f->halted;
	r->differ = f->differ;
}

static void human_bytes(char *buf, size_t cap, uint64_t b)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)b;
	size_t u = 0;

	while (v >= 1024 && u + 1 < ARRAY_SIZE(unit)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, cap, "%" PRIu64 " B", b);
	else
		snprintf(buf, cap, "%.1f %s", v, unit[u]);
}

void fsck_finish(struct fsck *f, int status)
{
	const struct fsck_stats *s = &f->stats;
	char b1[32], b2[32];

	if (f->o.json) {
		if (f->pass_open)
			fputs("]}", f->out);
		fprintf(f->out,
			"\n ],\n \"summary\":{\"inodes\":%" PRIu64
			",\"directories\":%" PRIu64 ",\"files\":%" PRIu64
			",\"symlinks\":%" PRIu64 ",\"blocks\":%" PRIu64
			",\"block_bytes\":%" PRIu64 ",\"segments\":%" PRIu64
			",\"segment_bytes\":%" PRIu64
			",\"journal_records\":%" PRIu64 ",\"head\":%" PRIu64
			",\"signed_head\":%" PRIu64
			",\"damaged_files\":%" PRIu64 ",\"problems\":%" PRIu64
			",\"corrected\":%" PRIu64 ",\"left\":%" PRIu64
			",\"modified\":%s,\"fatal\":%s,\"cancelled\":%s"
			",\"halted\":%s",
			s->inodes, s->dirs, s->files, s->symlinks, s->blocks,
			s->block_bytes, s->segments, s->seg_bytes,
			s->journal_records, s->head_seq, s->signed_seq,
			s->damaged_files, f->problems, f->corrected, f->left,
			f->modified ? "true" : "false",
			f->fatal ? "true" : "false",
			f->cancelled ? "true" : "false",
			f->halted ? "true" : "false");
		if (f->o.compare)
			fprintf(f->out, ",\"differ\":%s",
				f->differ ? "true" : "false");
		fprintf(f->out, "},\n \"exit\":%d\n}\n", status);
		fflush(f->out);
		return;
	}
	if (f->cancelled) {
		fprintf(f->out,
			"\n%s: check cancelled: %" PRIu64 " problem%s found so "
			"far, %" PRIu64 " corrected\n",
			f->o.store, f->problems, f->problems == 1 ? "" : "s",
			f->corrected);
		if (f->modified)
			fputs("\n***** STORE WAS MODIFIED *****\n", f->out);
		fflush(f->out);
		return;
	}
	if (f->o.compare) {
		fprintf(f->out, "\n%s: %s\n", f->o.store,
			f->operational ? "comparison not completed"
			: f->differ    ? "the stores differ"
				       : "the stores hold the same state");
		fflush(f->out);
		return;
	}
	if (f->operational) {
		fprintf(f->out, "\n%s: check not completed\n", f->o.store);
		fflush(f->out);
		return;
	}
	human_bytes(b1, sizeof(b1), s->block_bytes);
	human_bytes(b2, sizeof(b2), s->seg_bytes);
	fprintf(f->out,
		"\n%s: %" PRIu64 " inodes (%" PRIu64 " directories, %" PRIu64
		" files, %" PRIu64 " symlinks), %" PRIu64
		" blocks (%s), %" PRIu64 " segments (%s), %" PRIu64
		" journal records\n",
		f->o.store, s->inodes, s->dirs, s->files, s->symlinks,
		s->blocks, b1, s->segments, b2, s->journal_records);
	if (f->problems == 0 && !f->fatal && s->damaged_files)
		fprintf(f->out,
			"%s: consistent, but %" PRIu64 " file%s data "
			"recorded lost (file-block-damaged above)\n",
			f->o.store, s->damaged_files,
			s->damaged_files == 1 ? " has" : "s have");
	else if (f->problems == 0 && !f->fatal)
		fprintf(f->out, "%s: clean%s\n", f->o.store,
			f->k ? "" : " (keyless checks)");
	else
		fprintf(f->out,
			"%s: %" PRIu64 " problem%s: %" PRIu64
			" corrected, %" PRIu64 " left uncorrected%s\n",
			f->o.store, f->problems, f->problems == 1 ? "" : "s",
			f->corrected, f->left,
			f->fatal ? ", check not completed" : "");
	if (f->modified)
		fputs("\n***** STORE WAS MODIFIED *****\n", f->out);
	fflush(f->out);
}
