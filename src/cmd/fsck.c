/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fsck.c - fsck.embassyfs: check a store, with or without its key, repair it
 *
 * Options follow e2fsck, so that fsck(8) can run it as "fsck -t embassyfs"
 * and from the pass field of /etc/fstab: -n, -y, -p (and -a), -f, -V, and
 * the letters fsck(8) may pass through (-C fd, -t type, -r, -s, -v).
 * The checks themselves are the library's (src/fsck.h); this file parses
 * the command line, reads the secret, draws the progress line, asks when
 * neither -n, -y nor -p is given on a terminal, catches SIGINT/SIGTERM and
 * turns the result into the exit status of src/cli.h (CLI_FSCK_EX_*).
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsck.h"
#include "key.h"
#include "log.h"
#include "progress.h"

#define PROG "fsck.embassyfs"

struct fsck_cmd {
	const char *store;
	const char *compare;
	const char *passphrase_file;
	const char *key_file;
	enum fsck_mode mode;
	int nmodes;
	bool json;
	bool verbose;
	int progress; /* -1 default, 0 off, 1 on */
	unsigned threads;
};

static volatile sig_atomic_t fsck_cancel;

static void fsck_on_signal(int sig)
{
	fsck_cancel = 1;
	signal(sig, SIG_DFL); /* a second one ends the process at once */
}

static void fsck_usage(void)
{
	fputs("Usage:\n", stdout);
	printf(" %s [-n | -y | -p] [-f] [options] <store>\n", PROG);
	printf(" %s --compare <other-store> <store>\n", PROG);
	fputs("\nCheck an embassyfs store and repair what can be repaired.\n"
	      "Without a key, the checks read only what is stored in the "
	      "clear;\nwith one, every value and block is opened too.\n",
	      stdout);
	fputs("\nOptions:\n", stdout);
	fputs(" -n, --no                      check only: open read-only, "
	      "change nothing\n"
	      " -y, --yes                     repair everything repairable\n"
	      " -p, -a, --preen               repair what is safe; stop on "
	      "anything else\n"
	      " -f, --force                   check even if clean (every run "
	      "is a full check)\n"
	      "     --passphrase-file <file>  unlock with the passphrase in "
	      "<file> (- for stdin)\n"
	      "     --key-file <file>         unlock with a key file\n"
	      "     --compare <other>         compare the state of <other> "
	      "and <store> (keyless)\n"
	      "     --json                    print one JSON document\n"
	      "     --progress                show progress on stderr\n"
	      "     --no-progress             do not show progress\n"
	      " -C <fd>                       show progress (fsck(8) "
	      "compatibility)\n"
	      " -v, --verbose                 list every problem (no "
	      "latching)\n"
	      "     --threads <n>             threads opening blocks with "
	      "the key\n"
	      " -h, --help                    display this help\n"
	      " -V, --version                 display version\n",
	      stdout);
	fputs("\nWithout -n, -y or -p, each repair is asked for on the "
	      "terminal.\n",
	      stdout);
	printf("\nSee %s(8).\n", PROG);
}

static NORETURN void fsck_usage_error(void)
{
	cli_errtryhelp(PROG, CLI_FSCK_EX_USAGE);
}

static void fsck_set_mode(struct fsck_cmd *c, enum fsck_mode m)
{
	if (c->nmodes && c->mode != m) {
		log_err("give only one of -n, -y and -p");
		fsck_usage_error();
	}
	c->mode = m;
	c->nmodes = 1;
}

static void fsck_parse_args(int argc, char **argv, struct fsck_cmd *c)
{
	enum {
		OPT_PASSPHRASE_FILE = 256,
		OPT_KEY_FILE,
		OPT_JSON,
		OPT_PROGRESS,
		OPT_NO_PROGRESS,
		OPT_COMPARE,
		OPT_THREADS,
	};
	/* clang-format off */
	static const struct option longopts[] = {
		{ "no", no_argument, NULL, 'n' },
		{ "yes", no_argument, NULL, 'y' },
		{ "preen", no_argument, NULL, 'p' },
		{ "force", no_argument, NULL, 'f' },
		{ "passphrase-file", required_argument, NULL, OPT_PASSPHRASE_FILE },
		{ "key-file", required_argument, NULL, OPT_KEY_FILE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "progress", no_argument, NULL, OPT_PROGRESS },
		{ "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
		{ "compare", required_argument, NULL, OPT_COMPARE },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	/* clang-format on */
	char *end;
	int opt;

	memset(c, 0, sizeof(*c));
	c->progress = -1;
	while ((opt = getopt_long(argc, argv, "nypafC:t:rsvdhV", longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'n':
			fsck_set_mode(c, FSCK_MODE_NO);
			break;
		case 'y':
			fsck_set_mode(c, FSCK_MODE_YES);
			break;
		case 'p':
		case 'a':
			fsck_set_mode(c, FSCK_MODE_PREEN);
			break;
		case 'f':
		case 'r': /* e2fsck: interactive repair, a no-op */
		case 's': /* fsck(8): serialize; nothing to do here */
		case 'd': /* e2fsck: debug output; ignored */
		case 't': /* fsck(8) type, already chosen */
			break;
		case 'C':
			if (strcmp(optarg, "0") && strcmp(optarg, "1") &&
			    strcmp(optarg, "2") &&
			    (strtol(optarg, &end, 10) < 0 || *end)) {
				log_err("invalid -C descriptor '%s'", optarg);
				fsck_usage_error();
			}
			c->progress = 1;
			break;
		case 'v':
			c->verbose = true;
			break;
		case OPT_PASSPHRASE_FILE:
			c->passphrase_file = optarg;
			break;
		case OPT_KEY_FILE:
			c->key_file = optarg;
			break;
		case OPT_JSON:
			c->json = true;
			break;
		case OPT_PROGRESS:
			c->progress = 1;
			break;
		case OPT_NO_PROGRESS:
			c->progress = 0;
			break;
		case OPT_COMPARE:
			c->compare = optarg;
			break;
		case OPT_THREADS: {
			unsigned long v = strtoul(optarg, &end, 10);

			if (!*optarg || *end || v == 0 || v > 256) {
				log_err("invalid --threads '%s': use 1 to 256",
					optarg);
				fsck_usage_error();
			}
			c->threads = (unsigned)v;
			break;
		}
		case 'h':
			fsck_usage();
			exit(CLI_EX_OK);
		case 'V':
			cli_print_version(PROG);
			exit(CLI_EX_OK);
		default:
			fsck_usage_error();
		}
	}
	if (optind == argc) {
		log_err("no store given");
		fsck_usage_error();
	}
	if (argc - optind > 1) {
		log_err("unexpected argument '%s'", argv[optind + 1]);
		fsck_usage_error();
	}
	c->store = argv[optind];
	if (c->passphrase_file && c->key_file) {
		log_err("give either --passphrase-file or --key-file");
		fsck_usage_error();
	}
	if (c->compare) {
		if (c->nmodes && c->mode != FSCK_MODE_NO) {
			log_err("--compare only reads: it takes no -y or -p");
			fsck_usage_error();
		}
		if (c->passphrase_file || c->key_file) {
			log_err("--compare works without the key: drop "
				"--passphrase-file and --key-file");
			fsck_usage_error();
		}
		c->mode = FSCK_MODE_NO;
		c->nmodes = 1;
	}
	if (!c->nmodes && c->json) {
		log_err("--json cannot ask questions: give -n, -y or -p");
		fsck_usage_error();
	}
}

static void fsck_on_progress(void *arg, const char *what, uint64_t done,
			     uint64_t total, bool bytes, bool end)
{
	struct progress *p = arg;

	if (end)
		progress_end(p);
	else
		progress_update(p, what, done, total, bytes);
}

static bool fsck_on_ask(void *arg, const char *question)
{
	bool *all = arg;
	char line[64];

	(void)question;
	if (*all) {
		fputs("? yes\n", stdout);
		return true;
	}
	for (;;) {
		fputs("<y/n/a>? ", stdout);
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin)) {
			fputs("no\n", stdout);
			return false;
		}
		switch (line[0]) {
		case 'y':
		case 'Y':
			return true;
		case 'n':
		case 'N':
			return false;
		case 'a':
		case 'A':
			*all = true;
			return true;
		default:
			break;
		}
	}
}

static int fsck_status(const struct fsck_cmd *c, const struct fsck_result *r)
{
	int code = CLI_FSCK_EX_OK;

	if (r->operational) {
		code = CLI_FSCK_EX_ERROR;
		if (r->modified)
			code |= CLI_FSCK_EX_CORRECTED;
	} else if (c->compare) {
		if (r->differ)
			code |= CLI_FSCK_EX_UNCORRECTED;
	} else if (r->fatal) {
		code |= CLI_FSCK_EX_ERROR;
		if (r->modified)
			code |= CLI_FSCK_EX_CORRECTED;
		if (r->left)
			code |= CLI_FSCK_EX_UNCORRECTED;
	} else if (r->left || r->halted) {
		code |= CLI_FSCK_EX_UNCORRECTED;
	} else if (r->corrected) {
		code |= CLI_FSCK_EX_CORRECTED;
	}
	if (r->library)
		code |= CLI_FSCK_EX_LIBRARY;
	if (r->cancelled) {
		code |= CLI_FSCK_EX_CANCELED;
		code &= ~CLI_FSCK_EX_CORRECTED;
	}
	return code;
}

int main(int argc, char **argv)
{
	struct cli_secret secret = {0};
	struct progress *prog = NULL;
	struct fsck_opts o = {0};
	struct fsck_result r;
	struct fsck_cmd c;
	struct fsck *f = NULL;
	bool all = false, show;
	int status = CLI_FSCK_EX_ERROR, ret;

	log_init(PROG);
	fsck_parse_args(argc, argv, &c);
	if (!c.nmodes) {
		if (!isatty(STDIN_FILENO)) {
			log_err("no -n, -y or -p given and standard input is "
				"not a terminal to ask on; give one of them");
			return CLI_FSCK_EX_ERROR;
		}
		c.mode = FSCK_MODE_ASK;
	}
	if (key_lib_init()) {
		log_err("cannot initialise libsodium");
		return CLI_FSCK_EX_LIBRARY;
	}
	cli_raise_nofile();
	if (c.key_file)
		ret = cli_secret_read_keyfile(&secret, c.key_file);
	else if (c.passphrase_file)
		ret =
		    cli_secret_read_passphrase_file(&secret, c.passphrase_file);
	else
		ret = 0;
	if (ret)
		goto out;

	show = c.progress == 1 ||
	       (c.progress == -1 && !c.json && isatty(STDERR_FILENO));
	ret = progress_new(stderr, show, &prog);
	if (ret)
		goto out;
	signal(SIGINT, fsck_on_signal);
	signal(SIGTERM, fsck_on_signal);

	o.store = c.store;
	o.compare = c.compare;
	o.mode = c.mode;
	o.json = c.json;
	o.verbose = c.verbose;
	o.secret_kind = secret.kind == CLI_SECRET_KEYFILE ? FSCK_SECRET_KEYFILE
			: secret.kind == CLI_SECRET_PASSPHRASE
			    ? FSCK_SECRET_PASSPHRASE
			    : FSCK_SECRET_NONE;
	o.secret = secret.data;
	o.secret_len = secret.len;
	o.out = stdout;
	o.progname = PROG;
	o.version = PACKAGE_VERSION;
	o.progress = fsck_on_progress;
	o.progress_arg = prog;
	o.ask = fsck_on_ask;
	o.ask_arg = &all;
	o.cancel = &fsck_cancel;
	o.threads = c.threads;

	ret = fsck_new(&o, &f);
	if (ret) {
		log_err("cannot start the check: %s", cli_strerror(ret));
		status = CLI_FSCK_EX_LIBRARY;
		goto out;
	}
	(void)fsck_run(f);
	progress_end(prog);
	/* The secret is not needed past the unlock. */
	cli_secret_release(&secret);
	fsck_get_result(f, &r);
	status = fsck_status(&c, &r);
	fsck_finish(f, status);
out:
	fsck_free(f);
	progress_free(prog);
	cli_secret_release(&secret);
	return status;
}
