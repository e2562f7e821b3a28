/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/* cli.c - exit helpers, secrets, error text and parsers for the tools */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"

NORETURN void cli_errtryhelp(const char *prog, int code)
{
	fprintf(stderr, "Try '%s --help' for more information.\n", prog);
	exit(code);
}

void cli_print_version(const char *prog)
{
	printf("%s (%s) %s\n", prog, PACKAGE_NAME, PACKAGE_VERSION);
}

const char *cli_basename(const char *argv0)
{
	const char *p = strrchr(argv0, '/');

	return p ? p + 1 : argv0;
}

const char *cli_strerror(int negerr)
{
	switch (-negerr) {
	case EKEYREJECTED:
		return "wrong passphrase or key file";
	case EUCLEAN:
		return "store is corrupt";
	case EMEDIUMTYPE:
		return "not an embassyfs volume";
	case EPROTONOSUPPORT:
		return "unknown volume format";
	case EBUSY:
		return "in use by another embassyfs process";
	case EROFS:
		return "read-only volume";
	default:
		return strerror(-negerr);
	}
}

int cli_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	default:
		return -EINVAL;
	}
	if (shift) {
		end++;
		if (!strcmp(end, "iB") || !strcmp(end, "B"))
			end += strlen(end);
	}
	if (*end)
		return -EINVAL;
	if (v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

int cli_parse_cost(const char *s, enum key_cost *out)
{
	if (!strcmp(s, "min"))
		*out = KEY_COST_MIN;
	else if (!strcmp(s, "interactive"))
		*out = KEY_COST_INTERACTIVE;
	else if (!strcmp(s, "moderate"))
		*out = KEY_COST_MODERATE;
	else
		return -EINVAL;
	return 0;
}

void cli_secret_release(struct cli_secret *s)
{
	/* sodium_free() wipes the whole allocation before unmapping it. */
	sodium_free(s->data);
	s->data = NULL;
	s->len = 0;
	s->kind = CLI_SECRET_NONE;
}

/*
 * Read all of path (or standard input for "-") into a fresh guarded buffer
 * of max + 2 bytes, so that a file longer than max is seen as such and a
 * passphrase keeps room for its NUL. Prints its message, except for -EFBIG
 * (longer than max), whose limit the caller names.
 */
static int cli_read_secret_file(const char *path, const char *what, size_t max,
				uint8_t **bufp, size_t *lenp)
{
	bool is_stdin = !strcmp(path, "-");
	uint8_t *buf = NULL;
	size_t len = 0;
	struct stat sb;
	int fd = -1;
	int ret;

	*bufp = NULL;
	*lenp = 0;
	fd = is_stdin ? STDIN_FILENO
		      : open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		ret = -errno;
		log_err("cannot open %s '%s': %s", what, path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &sb)) {
		ret = -errno;
		log_err("cannot read %s '%s': %s", what, path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(sb.st_mode)) {
		ret = -EINVAL;
		log_err("cannot read %s '%s': it is a directory", what, path);
		goto out;
	}
	if (S_ISREG(sb.st_mode) && (sb.st_mode & (S_IRGRP | S_IROTH)))
		log_warn("%s '%s' is readable by group or others; "
			 "restrict it with 'chmod 600 %s'",
			 what, path, path);

	buf = sodium_malloc(max + 2);
	if (!buf) {
		ret = -ENOMEM;
		log_err("cannot read %s '%s': %s", what, path,
			strerror(ENOMEM));
		goto out;
	}
	while (len <= max) {
		ssize_t n = read(fd, buf + len, max + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			log_err("cannot read %s '%s': %s", what, path,
				strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		ret = -EFBIG; /* the caller says what the limit is */
		goto out;
	}
	buf[len] = '\0';
	*bufp = buf;
	*lenp = len;
	buf = NULL;
	ret = 0;
out:
	sodium_free(buf);
	if (fd >= 0 && !is_stdin)
		close(fd);
	return ret;
}

int cli_secret_read_passphrase_file(struct cli_secret *s, const char *path)
{
	const char *what = "passphrase file";
	uint8_t *buf;
	size_t len;
	int ret;

	memset(s, 0, sizeof(*s));
	/* + 1: room for the trailing newline that is not part of it */
	ret = cli_read_secret_file(path, what, CLI_PASSPHRASE_MAX + 1, &buf,
				   &len);
	if (ret && ret != -EFBIG)
		return ret;
	if (!ret && len && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (ret || len > CLI_PASSPHRASE_MAX) {
		log_err("%s '%s' is too long: at most %d bytes", what, path,
			CLI_PASSPHRASE_MAX);
		if (!ret)
			sodium_free(buf);
		return -EINVAL;
	}
	if (len == 0) {
		log_err("%s '%s' is empty; write the passphrase into it", what,
			path);
		sodium_free(buf);
		return -EINVAL;
	}
	s->kind = CLI_SECRET_PASSPHRASE;
	s->data = buf;
	s->len = len;
	return 0;
}

int cli_secret_read_keyfile(struct cli_secret *s, const char *path)
{
	const char *what = "key file";
	uint8_t *buf;
	size_t len;
	int ret;

	memset(s, 0, sizeof(*s));
	ret = cli_read_secret_file(path, what, CLI_KEYFILE_MAX, &buf, &len);
	if (ret == -EFBIG)
		log_err("%s '%s' is too long: at most %u bytes are accepted",
			what, path, CLI_KEYFILE_MAX);
	if (ret)
		return ret == -EFBIG ? -EINVAL : ret;
	if (len < KEY_BYTES) {
		log_err("%s '%s' is too short: %zu bytes, at least %d are "
			"needed; make one with 'head -c 64 /dev/urandom >%s'",
			what, path, len, KEY_BYTES, path);
		sodium_free(buf);
		return -EINVAL;
	}
	s->kind = CLI_SECRET_KEYFILE;
	s->data = buf;
	s->len = len;
	return 0;
}

/*
 * The one exception to "no mutable globals": a signal handler has no
 * context argument. It only records which signal interrupted the prompt,
 * so that the terminal is restored before the signal is delivered again.
 */
static volatile sig_atomic_t cli_prompt_signal;

static void cli_prompt_handler(int sig)
{
	cli_prompt_signal = sig;
}

static const int cli_prompt_signals[] = {
    SIGALRM, SIGHUP,  SIGINT,  SIGPIPE, SIGQUIT,
    SIGTERM, SIGTSTP, SIGTTIN, SIGTTOU,
};

/* Read one line from the terminal into buf (cap bytes, NUL included). */
static int cli_tty_read_line(int fd, char *buf, size_t cap, size_t *lenp)
{
	size_t len = 0;
	bool too_long = false;
	char c;

	for (;;) {
		ssize_t n = read(fd, &c, 1);

		if (n < 0 && errno == EINTR) {
			if (cli_prompt_signal)
				return -EINTR;
			continue;
		}
		if (n < 0)
			return -errno;
		if (n == 0 || c == '\n' || c == '\r')
			break;
		if (len + 1 < cap)
			buf[len++] = c;
		else
			too_long = true;
	}
	buf[len] = '\0';
	*lenp = len;
	return too_long ? -E2BIG : 0;
}

static int cli_tty_ask(int fd, const char *prompt, char *buf, size_t cap,
		       size_t *lenp)
{
	struct sigaction sa, saved[ARRAY_SIZE(cli_prompt_signals)];
	struct termios old, noecho;
	int ret;

	if (tcgetattr(fd, &old)) {
		log_err("cannot turn off echo on the terminal: %s",
			strerror(errno));
		return -EIO;
	}
	cli_prompt_signal = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = cli_prompt_handler;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: read() must return EINTR so that we can clean up. */
	for (size_t i = 0; i < ARRAY_SIZE(cli_prompt_signals); i++)
		sigaction(cli_prompt_signals[i], &sa, &saved[i]);

	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
	noecho.c_lflag |= ICANON;
	if (tcsetattr(fd, TCSAFLUSH, &noecho)) {
		ret = -EIO;
		log_err("cannot turn off echo on the terminal: %s",
			strerror(errno));
		goto out;
	}
	if (write(fd, prompt, strlen(prompt)) < 0) {
		ret = -EIO;
		log_err("cannot write to the terminal: %s", strerror(errno));
		goto out_restore;
	}
	ret = cli_tty_read_line(fd, buf, cap, lenp);
	/* The newline the user typed was not echoed. */
	if (write(fd, "\n", 1) < 0 && !ret)
		ret = -errno;
out_restore:
	tcsetattr(fd, TCSAFLUSH, &old);
out:
	for (size_t i = 0; i < ARRAY_SIZE(cli_prompt_signals); i++)
		sigaction(cli_prompt_signals[i], &saved[i], NULL);
	if (cli_prompt_signal) {
		raise(cli_prompt_signal);
		ret = -EINTR;
	}
	if (ret == -E2BIG) {
		log_err("passphrase is too long: at most %d bytes are accepted",
			CLI_PASSPHRASE_MAX);
		ret = -EINVAL;
	} else if (ret && ret != -EINTR && ret != -EIO) {
		log_err("cannot read from the terminal: %s", strerror(-ret));
	}
	return ret;
}

int cli_secret_prompt(struct cli_secret *s, const char *prompt,
		      const char *confirm)
{
	const size_t cap = CLI_PASSPHRASE_MAX + 1;
	char *buf = NULL, *again = NULL;
	size_t len, len2;
	int fd, ret;

	memset(s, 0, sizeof(*s));
	fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		log_err("no passphrase given and no terminal to ask on; "
			"use --passphrase-file or --key-file");
		return -ENXIO;
	}
	buf = sodium_malloc(cap);
	again = confirm ? sodium_malloc(cap) : NULL;
	if (!buf || (confirm && !again)) {
		ret = -ENOMEM;
		log_err("cannot read the passphrase: %s", strerror(ENOMEM));
		goto out;
	}
	ret = cli_tty_ask(fd, prompt, buf, cap, &len);
	if (ret)
		goto out;
	if (len == 0) {
		ret = -EINVAL;
		log_err("empty passphrase; a passphrase is needed");
		goto out;
	}
	if (confirm) {
		ret = cli_tty_ask(fd, confirm, again, cap, &len2);
		if (ret)
			goto out;
		if (len2 != len || sodium_memcmp(buf, again, len)) {
			ret = -EINVAL;
			log_err("the passphrases do not match; try again");
			goto out;
		}
	}
	s->kind = CLI_SECRET_PASSPHRASE;
	s->data = (uint8_t *)buf;
	s->len = len;
	buf = NULL;
	ret = 0;
out:
	sodium_free(buf);
	sodium_free(again);
	close(fd);
	return ret;
}

int cli_secret_get(struct cli_secret *s, const char *passphrase_file,
		   const char *key_file, const char *store, bool confirm)
{
	char prompt[512];

	memset(s, 0, sizeof(*s));
	if (key_file)
		return cli_secret_read_keyfile(s, key_file);
	if (passphrase_file)
		return cli_secret_read_passphrase_file(s, passphrase_file);
	snprintf(prompt, sizeof(prompt),
		 "%s for '%s': ", confirm ? "New passphrase" : "Passphrase",
		 store);
	return cli_secret_prompt(s, prompt,
				 confirm ? "Repeat the passphrase: " : NULL);
}

int cli_secret_seal(const struct cli_secret *s, const struct key *k,
		    enum key_cost cost, uint8_t slot[static KEY_SLOT_BYTES])
{
	switch (s->kind) {
	case CLI_SECRET_PASSPHRASE:
		return key_slot_seal_passphrase(k, (const char *)s->data,
						s->len, cost, slot);
	case CLI_SECRET_KEYFILE:
		return key_slot_seal_keyfile(k, s->data, s->len, slot);
	case CLI_SECRET_NONE:
	default:
		return -EINVAL;
	}
}

int cli_volume_probe(const char *store)
{
	uint32_t format = 0;
	int ret;

	ret = volume_probe(store, &format);
	switch (-ret) {
	case 0:
		break;
	case ENOENT:
		log_err("'%s' does not exist; give the directory of a volume "
			"made by mkfs.embassyfs",
			store);
		break;
	case ENOTDIR:
	case EMEDIUMTYPE:
		log_err("'%s' is not an embassyfs volume; check the path, or "
			"create a volume there with mkfs.embassyfs",
			store);
		break;
	case EPROTONOSUPPORT:
		if (format < VOLUME_FORMAT)
			log_err("'%s' has volume format %u, written by an "
				"earlier development version; %s %s reads "
				"format %d only: copy the files out with the "
				"version that made it, into a new volume",
				store, format, PACKAGE_NAME, PACKAGE_VERSION,
				VOLUME_FORMAT);
		else
			log_err("'%s' has volume format %u, which %s %s cannot "
				"read (it knows format %d); use a newer "
				"embassyfs",
				store, format, PACKAGE_NAME, PACKAGE_VERSION,
				VOLUME_FORMAT);
		break;
	default:
		log_err("cannot read '%s': %s", store, cli_strerror(ret));
		break;
	}
	return ret;
}

void cli_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int cli_volume_open(const char *store, enum volume_open_flags flags,
		    const struct cli_secret *s, struct volume **out)
{
	const char *pass = s ? (const char *)s->data : NULL;
	struct volume *v = NULL;
	int ret;

	*out = NULL;
	ret = cli_volume_probe(store);
	if (ret)
		return ret;
	cli_raise_nofile();
	ret = volume_open(store, flags, &v);
	switch (-ret) {
	case 0:
		break;
	case EBUSY:
		log_err("'%s' is in use by another embassyfs process "
			"(already mounted?)",
			store);
		goto out;
	case EUCLEAN:
		log_err("'%s' is corrupt: its volume header cannot be read; "
			"check it with 'fsck.embassyfs %s'",
			store, store);
		goto out;
	default:
		log_err("cannot open '%s': %s", store, cli_strerror(ret));
		goto out;
	}
	if (!s)
		goto out;

	if (s->kind == CLI_SECRET_KEYFILE)
		ret = volume_unlock_keyfile(v, s->data, s->len);
	else
		ret = volume_unlock_passphrase(v, pass, s->len);
	switch (-ret) {
	case 0:
		break;
	case EKEYREJECTED:
		log_err("wrong %s for '%s': no key slot opens with it",
			s->kind == CLI_SECRET_KEYFILE ? "key file"
						      : "passphrase",
			store);
		break;
	case EUCLEAN:
		log_err("'%s' is corrupt: its volume header fails the check "
			"under the key; check it with 'fsck.embassyfs %s'",
			store, store);
		break;
	default:
		log_err("cannot unlock '%s': %s", store, cli_strerror(ret));
		break;
	}
out:
	if (ret)
		volume_close(v);
	else
		*out = v;
	return ret;
}
