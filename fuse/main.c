/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * main.c - embassyfs, also run as mount.embassyfs: serve a volume over FUSE
 *
 *   embassyfs [-f] [-d] [-s] [-o opts] [--passphrase-file F | --key-file F]
 *             STORE MOUNTPOINT
 *   mount.embassyfs STORE MOUNTPOINT [-sfnv] [-o opts]    (from mount(8))
 *
 * The name in argv[0] chooses the grammar: for mount(8), -f means "fake"
 * and -s "sloppy", and the exit codes are util-linux's MNT_EX_* (1 usage,
 * 32 mount failure); embassyfs exits 1 on any failure.
 *
 * Order of work, so that every error is reported on the terminal with a
 * non-zero exit before anything is mounted, and the process detaches only
 * once the mount is live (libfuse example/passthrough_ll.c at fuse-3.14.0
 * is the model, with one change below):
 *
 *   parse options, probe the store, check the mount point,
 *   fuse_session_new()                  (rejects unknown -o options)
 *   fork, unless -f                     (the parent waits for a status)
 *   read the secret, open and unlock the volume, fs_open()
 *   fuse_set_signal_handlers(), fuse_session_mount()
 *   detach: setsid, stdio to /dev/null, log to syslog, tell the parent
 *   fuse_session_loop_mt()
 *   unmount, end the session (destroy() syncs), fs_close(), volume_close()
 *
 * The change: fuse_daemonize() forks after the mount, but RocksDB's
 * background threads and its fcntl lock on the store belong to the process
 * that opened it and do not survive a fork. So we fork first, before the
 * volume is opened, and the child does all of the work; the parent only
 * relays the child's exit status, or exits 0 once the child says the mount
 * is live. The secret is read in the child too, so that its mlocked pages
 * are the child's (mlock is not inherited across fork).
 */
#include "fuse_int.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "volume.h"

#define EFS_PROG	"embassyfs"
#define EFS_HELPER_PROG "mount.embassyfs"
/* Worker threads kept waiting for requests, unless -o max_idle_threads= */
#define EFS_IDLE_THREADS 10
/*
 * The kernel's writeback cache is on unless -o no_writeback_cache: small
 * writes then reach the daemon merged into large requests. The kernel
 * stamps mtime/ctime of cached writes itself and sends them in a setattr,
 * so init() tells fs to leave those times alone (fs_set_kernel_cmtime).
 */
#define EFS_WRITEBACK_DEFAULT 1

/*
 * The kernel reads a FUSE mount in 128 KiB requests unless the mount's
 * read_ahead_kb is raised (root only): at 1 MiB, a sequential read reaches
 * the daemon as whole runs of blocks (cold reads here: 533 -> 715 MB/s).
 * At 4 MiB the requests stay 1 MiB (max_read) but four are in flight, so
 * one request's segment read overlaps another's decryption on the other
 * core (a cold 1 GiB read, alternately: 482-525 -> 658-701 MB/s; 16 MiB
 * was slower again). The device number comes from mountinfo: a stat() of
 * the mount point would wait for this very daemon, whose loop has not
 * started yet.
 */
#define EFS_READAHEAD_KB 4096

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void efs_unescape(char *p)
{
	char *o = p;

	for (; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' &&
		    p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
			*o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 +
				      (p[3] - '0'));
			p += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
}

static void efs_raise_readahead(const char *mnt)
{
	unsigned maj = 0, min = 0;
	char line[8192], path[96];
	bool found = false;
	FILE *f;

	if (geteuid() != 0)
		return;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char point[4096];
		unsigned a, b;

		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &a, &b, point) != 3)
			continue;
		efs_unescape(point);
		if (!strcmp(point, mnt)) {
			maj = a;
			min = b;
			found = true;	/* the last one is the topmost */
		}
	}
	fclose(f);
	if (!found)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", maj,
		 min);
	f = fopen(path, "we");
	if (!f) {
		log_dbg(LOG_DBG_FUSE, "cannot open %s: %s", path, strerror(errno));
		return;
	}
	fprintf(f, "%u\n", EFS_READAHEAD_KB);
	if (fclose(f))
		log_dbg(LOG_DBG_FUSE, "cannot set %s: %s", path, strerror(errno));
}

/* Targets of the -o options we read ourselves (fuse_opt, offsetof). */
struct efs_conf {
	char *passphrase_file;
	char *key_file;
	int rdonly;
	int writeback;
	unsigned inode_cache; /* 0: the default */
	int allow_other; /* allow_other or allow_root was given */
	int default_permissions;
	int fsname;
	int subtype;
};

struct efs_cmd {
	const char *prog;
	bool helper; /* run as mount.embassyfs */
	bool fake;   /* mount -f: check everything, mount nothing */
	int usage_code;
	int fail_code;
	const char *store_arg;
	const char *mnt_arg;
	char *store; /* absolute, symlinks resolved */
	char *mnt;
	const char *passphrase_file_arg; /* --passphrase-file */
	const char *key_file_arg;	 /* --key-file */
	struct efs_conf conf;
	struct fuse_args args;
	struct fuse_cmdline_opts opts;
};

/* clang-format off */
#define EFS_OPT(t, p, v) { t, offsetof(struct efs_conf, p), v }

static const struct fuse_opt efs_opts[] = {
	EFS_OPT("passphrase_file=%s", passphrase_file, 0),
	EFS_OPT("key_file=%s", key_file, 0),
	EFS_OPT("ro", rdonly, 1),
	EFS_OPT("rw", rdonly, 0),
	EFS_OPT("writeback_cache", writeback, 1),
	EFS_OPT("no_writeback_cache", writeback, 0),
	EFS_OPT("inode_cache=%u", inode_cache, 0),
	EFS_OPT("allow_other", allow_other, 1),
	EFS_OPT("allow_root", allow_other, 1),
	EFS_OPT("default_permissions", default_permissions, 1),
	EFS_OPT("fsname=", fsname, 1),
	EFS_OPT("subtype=", subtype, 1),
	/* Seen here, but libfuse must see them too. */
	FUSE_OPT_KEY("ro", FUSE_OPT_KEY_KEEP),
	FUSE_OPT_KEY("rw", FUSE_OPT_KEY_KEEP),
	FUSE_OPT_KEY("allow_other", FUSE_OPT_KEY_KEEP),
	FUSE_OPT_KEY("allow_root", FUSE_OPT_KEY_KEEP),
	FUSE_OPT_KEY("default_permissions", FUSE_OPT_KEY_KEEP),
	FUSE_OPT_KEY("fsname=", FUSE_OPT_KEY_KEEP),
	FUSE_OPT_KEY("subtype=", FUSE_OPT_KEY_KEEP),
	/* fstab and mount(8) options that mean nothing to FUSE (x-* below) */
	FUSE_OPT_KEY("defaults", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nouser", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("owner", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("group", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("comment=", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_END
};
/* clang-format on */

static int efs_opt_proc(void *data, const char *arg, int key,
			struct fuse_args *outargs)
{
	(void)data;
	(void)outargs;
	/* x-systemd.*, x-gvfs-*, ...: for user space, never for the kernel */
	if (key == FUSE_OPT_KEY_OPT && !strncmp(arg, "x-", 2))
		return 0;
	return 1; /* keep: libfuse accepts it or names it as unknown */
}

/*
 * libfuse's messages go through our logger (fuse_set_log_func, 3.7+).
 * libfuse builds some lines from several calls, so the pieces are joined
 * per thread until the newline; this buffer belongs to the logger.
 */
static void efs_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	static _Thread_local char line[1024];
	static _Thread_local size_t len;
	int n;

	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	if (n < 0)
		return;
	len = MIN(len + (size_t)n, sizeof(line) - 1);
	if (len && line[len - 1] != '\n' && len < sizeof(line) - 1)
		return;
	while (len && line[len - 1] == '\n')
		line[--len] = '\0';
	log_msg((int)level, "%s", line);
	len = 0;
}

static void efs_usage(void)
{
	fputs("Usage:\n", stdout);
	printf(" %s [options] <store> <mountpoint>\n", EFS_PROG);
	printf(" %s <store> <mountpoint> [-sfnv] [-o <options>]\n",
	       EFS_HELPER_PROG);
	fputs("\nMount the embassyfs volume in the directory <store> on "
	      "<mountpoint>.\n",
	      stdout);
	fputs("\nOptions:\n", stdout);
	fputs(" -o passphrase_file=<file>     read the passphrase from <file>\n"
	      "                                 (- for standard input)\n",
	      stdout);
	fputs(" -o key_file=<file>            unlock with a key file\n",
	      stdout);
	fputs("     --passphrase-file <file>  -o passphrase_file=<file>\n",
	      stdout);
	fputs("     --key-file <file>         -o key_file=<file>\n", stdout);
	fputs(" -o ro                         mount read-only\n", stdout);
	fputs(" -o rw                         mount read-write (the default)\n",
	      stdout);
	printf(" -o [no_]writeback_cache       let the kernel cache writes "
	       "(default %s)\n",
	       EFS_WRITEBACK_DEFAULT ? "on" : "off");
	fputs(" -o inode_cache=<n>            idle inodes kept loaded "
	      "(default 65536)\n",
	      stdout);
	fputs(" -f                            stay in the foreground, log to "
	      "stderr\n",
	      stdout);
	fputs(" -d                            debug output (implies -f)\n",
	      stdout);
	fputs(" -s                            one thread only\n", stdout);
	fputs(" -h, --help                    display this help\n", stdout);
	fputs(" -V, --version                 display version\n", stdout);
	printf("\nAs %s, -f means fake (mount nothing), and -s, -n\n"
	       "and -v are ignored, as mount(8) wants.\n",
	       EFS_HELPER_PROG);
	fputs("Without passphrase_file or key_file, the passphrase is asked\n"
	      "for on the terminal. Options of mount(8) and fstab such as\n"
	      "defaults, noauto, nofail, _netdev, x-systemd.* are ignored.\n",
	      stdout);
	fputs("\nFUSE options:\n", stdout);
	fflush(stdout);
	fuse_cmdline_help();
	fuse_lowlevel_help();
	printf("\nSee %s(8).\n", EFS_PROG);
}

static void efs_version(const struct efs_cmd *c)
{
	cli_print_version(c->prog);
	printf("FUSE library version %s\n", fuse_pkgversion());
	fflush(stdout);
	fuse_lowlevel_version();
}

static NORETURN void efs_usage_error(const struct efs_cmd *c)
{
	cli_errtryhelp(c->prog, c->usage_code);
}

/* getopt_long over argv; -o options and -f/-d/-s go into c->args. */
static void efs_parse_argv(struct efs_cmd *c, int argc, char **argv)
{
	enum { OPT_PASSPHRASE_FILE = 256, OPT_KEY_FILE };
	/* clang-format off */
	static const struct option longopts[] = {
		{ "passphrase-file", required_argument, NULL, OPT_PASSPHRASE_FILE },
		{ "key-file", required_argument, NULL, OPT_KEY_FILE },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	/* clang-format on */
	const char *sopts = c->helper ? "fnsvo:t:N:hV" : "fdso:hV";
	int opt;

	while ((opt = getopt_long(argc, argv, sopts, longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_PASSPHRASE_FILE:
			c->passphrase_file_arg = optarg;
			break;
		case OPT_KEY_FILE:
			c->key_file_arg = optarg;
			break;
		case 'o':
			if (fuse_opt_add_arg(&c->args, "-o") ||
			    fuse_opt_add_arg(&c->args, optarg))
				goto nomem;
			break;
		case 'f':
			if (c->helper)
				c->fake = true;
			else if (fuse_opt_add_arg(&c->args, "-f"))
				goto nomem;
			break;
		case 'd':
			if (fuse_opt_add_arg(&c->args, "-d"))
				goto nomem;
			break;
		case 's':
			if (!c->helper && fuse_opt_add_arg(&c->args, "-s"))
				goto nomem;
			break;
		case 'n': /* mount -n: we keep no mtab of our own */
		case 'v':
		case 't':
			break;
		case 'N':
			log_err("mount namespaces (-N) are not supported");
			efs_usage_error(c);
		case 'h':
			efs_usage();
			exit(CLI_EX_OK);
		case 'V':
			efs_version(c);
			exit(CLI_EX_OK);
		default:
			efs_usage_error(c);
		}
	}
	if (argc - optind < 2) {
		log_err("%s", optind == argc
				  ? "no store and no mount point given"
				  : "no mount point given");
		efs_usage_error(c);
	}
	if (argc - optind > 2) {
		log_err("unexpected argument '%s'", argv[optind + 2]);
		efs_usage_error(c);
	}
	c->store_arg = argv[optind];
	c->mnt_arg = argv[optind + 1];
	return;
nomem:
	log_err("%s", strerror(ENOMEM));
	exit(c->fail_code);
}

/* Our own -o options; the long options win over them. */
static void efs_parse_opts(struct efs_cmd *c)
{
	struct efs_conf *conf = &c->conf;
	bool nomem = false;

	if (fuse_opt_parse(&c->args, conf, efs_opts, efs_opt_proc) == -1)
		efs_usage_error(c);
	if (c->passphrase_file_arg) {
		free(conf->passphrase_file);
		conf->passphrase_file = strdup(c->passphrase_file_arg);
		nomem |= !conf->passphrase_file;
	}
	if (c->key_file_arg) {
		free(conf->key_file);
		conf->key_file = strdup(c->key_file_arg);
		nomem |= !conf->key_file;
	}
	if (nomem) {
		log_err("%s", strerror(ENOMEM));
		exit(c->fail_code);
	}
	if (conf->passphrase_file && conf->key_file) {
		log_err("passphrase_file and key_file cannot be used together");
		efs_usage_error(c);
	}
}

/* The options we add (they need the store's path), then libfuse's own. */
static void efs_add_opts(struct efs_cmd *c)
{
	const struct efs_conf *conf = &c->conf;
	char *extra = NULL;
	char *fsname;
	int ret = 0;

	/* /proc/mounts then reads "STORE MOUNTPOINT fuse.embassyfs". */
	if (!conf->subtype)
		ret |= fuse_opt_add_opt(&extra, "subtype=embassyfs");
	if (!conf->fsname) {
		fsname = malloc(strlen("fsname=") + strlen(c->store) + 1);
		if (fsname) {
			strcpy(fsname, "fsname=");
			strcat(fsname, c->store);
			ret |= fuse_opt_add_opt_escaped(&extra, fsname);
		} else {
			ret = -1;
		}
		free(fsname);
	}
	/*
	 * As root, the mount serves every user, so let them in and have the
	 * kernel check permissions; otherwise the kernel checks them too.
	 */
	if (geteuid() == 0 && !conf->allow_other)
		ret |= fuse_opt_add_opt(&extra, "allow_other");
	if (!conf->default_permissions)
		ret |= fuse_opt_add_opt(&extra, "default_permissions");
	if (extra)
		ret |= fuse_opt_add_arg(&c->args, "-o") |
		       fuse_opt_add_arg(&c->args, extra);
	free(extra);
	if (ret) {
		log_err("%s", strerror(ENOMEM));
		exit(c->fail_code);
	}

	if (fuse_parse_cmdline(&c->args, &c->opts) != 0)
		efs_usage_error(c);
	if (c->opts.debug)
		log_set_level(LOG_DEBUG);
}

/* Checks that need no volume and no fork: store and mount point. */
static int efs_check_paths(struct efs_cmd *c)
{
	struct stat sb;

	if (cli_volume_probe(c->store_arg))
		return -1;
	c->store = realpath(c->store_arg, NULL);
	if (!c->store) {
		log_err("cannot resolve '%s': %s", c->store_arg,
			strerror(errno));
		return -1;
	}
	if (stat(c->mnt_arg, &sb)) {
		if (errno == ENOENT)
			log_err("mount point '%s' does not exist; create it "
				"with 'mkdir -p %s'",
				c->mnt_arg, c->mnt_arg);
		else
			log_err("cannot use mount point '%s': %s", c->mnt_arg,
				strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		log_err("mount point '%s' is not a directory", c->mnt_arg);
		return -1;
	}
	c->mnt = realpath(c->mnt_arg, NULL);
	if (!c->mnt) {
		log_err("cannot resolve '%s': %s", c->mnt_arg, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * The parent's side of our own daemonising: wait until the child either
 * says that the mount is live (exit 0) or exits (relay its status; it has
 * printed why).
 */
static int efs_wait_for_child(const struct efs_cmd *c, pid_t pid, int fd)
{
	int status;
	ssize_t n;
	char ok;

	do
		n = read(fd, &ok, 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n == 1)
		return CLI_EX_OK;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			log_err("cannot wait for the daemon: %s",
				strerror(errno));
			return c->fail_code;
		}
	}
	if (WIFEXITED(status) && WEXITSTATUS(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		log_err("the daemon was killed by signal %d before the mount "
			"was ready",
			WTERMSIG(status));
	else
		log_err("the daemon exited before the mount was ready");
	return c->fail_code;
}

/* The mount is live: leave the terminal and tell the waiting parent. */
static void efs_detach(int fd)
{
	int null;
	char ok = 1;

	if (setsid() < 0)
		log_warn("cannot start a new session: %s", strerror(errno));
	log_set_sink(LOG_SINK_SYSLOG, NULL, NULL);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
	if (write(fd, &ok, 1) != 1)
		log_warn("cannot tell the parent that the mount is ready: %s",
			 strerror(errno));
	close(fd);
}

static int efs_loop(const struct efs_cmd *c, struct fuse_session *se)
{
	struct fuse_loop_config *cfg;
	int ret;

	if (c->opts.singlethread)
		return fuse_session_loop(se);
	cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(cfg, (unsigned)c->opts.clone_fd);
	fuse_loop_cfg_set_max_threads(cfg, c->opts.max_threads);
	fuse_loop_cfg_set_idle_threads(cfg, c->opts.max_idle_threads == UINT_MAX
						? EFS_IDLE_THREADS
						: c->opts.max_idle_threads);
	ret = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return ret;
}

/*
 * Open the volume, mount and serve until unmounted. ready_fd is the pipe
 * to the waiting parent, or -1 with -f. Returns the exit status.
 */
static int efs_serve(struct efs_cmd *c, struct fuse_session *se,
		     struct efs *efs, int ready_fd)
{
	struct cli_secret secret = {0};
	struct volume *v = NULL;
	struct fs *fs = NULL;
	int ret = c->fail_code;
	int rc;

	rc = cli_secret_get(&secret, c->conf.passphrase_file, c->conf.key_file,
			    c->store, false);
	if (rc)
		goto out_session;
	rc = cli_volume_open(c->store,
			     c->conf.rdonly ? VOLUME_RDONLY | VOLUME_SHARED : 0,
			     &secret, &v);
	cli_secret_release(&secret);
	if (rc)
		goto out_session;
	rc = fs_open(v, c->conf.rdonly ? FS_RDONLY : 0, &fs);
	if (rc) {
		log_err("cannot start serving '%s': %s%s", c->store,
			cli_strerror(rc),
			rc == -EUCLEAN || rc == -EIO
			    ? "; check it with fsck.embassyfs"
			    : "");
		goto out_volume;
	}
	efs->fs = fs;
	if (c->conf.inode_cache)
		fs_set_inode_cache(fs, c->conf.inode_cache);

	if (fuse_set_signal_handlers(se) != 0) {
		log_err("cannot install signal handlers");
		goto out_fs;
	}
	if (fuse_session_mount(se, c->mnt) != 0) {
		log_err("cannot mount '%s' on '%s'", c->store, c->mnt);
		goto out_handlers;
	}
	if (ready_fd >= 0)
		efs_detach(ready_fd);
	else if (chdir("/"))
		log_warn("cannot change directory to '/': %s", strerror(errno));
	ready_fd = -1;
	log_notice("mounted '%s' on '%s'%s", c->store, c->mnt,
		   c->conf.rdonly ? " read-only" : "");

	ret = CLI_EX_OK;
	efs->killpriv = efs_init_handshake(se);
	/* After INIT: its reply caps read_ahead_kb at max_readahead (1 MiB). */
	efs_raise_readahead(c->mnt);
	rc = efs_loop(c, se);
	/* libfuse 3.14 returns the number of the signal that ended the loop. */
	if (rc > 0) {
		log_notice("unmounting '%s' on signal %d", c->mnt, rc);
	} else if (rc < 0) {
		log_err("the request loop of '%s' failed: %s", c->mnt,
			strerror(-rc));
		ret = CLI_EX_FAILURE;
	}
	fuse_session_unmount(se);
out_handlers:
	fuse_remove_signal_handlers(se);
	/* A second signal must not cut short the final flush and sync. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
out_fs:
	/* destroy() syncs through fs, so the session ends before fs_close(). */
	fuse_session_destroy(se);
	se = NULL;
	rc = fs_close(fs);
	if (rc) {
		log_err("cannot close '%s' cleanly: %s; check it with "
			"fsck.embassyfs",
			c->store, cli_strerror(rc));
		ret = CLI_EX_FAILURE;
	}
out_volume:
	volume_close(v);
	if (!ret)
		log_notice("unmounted '%s' from '%s'", c->store, c->mnt);
out_session:
	if (se)
		fuse_session_destroy(se);
	if (ready_fd >= 0)
		close(ready_fd); /* the parent then relays our status */
	return ret;
}

int main(int argc, char **argv)
{
	struct efs_cmd c;
	struct efs efs = {NULL, NULL, false, false, false};
	struct fuse_session *se = NULL;
	int ret, fds[2];
	pid_t pid;

	memset(&c, 0, sizeof(c));
	c.conf.writeback = EFS_WRITEBACK_DEFAULT;
	c.helper = !strcmp(cli_basename(argv[0]), EFS_HELPER_PROG);
	c.prog = c.helper ? EFS_HELPER_PROG : EFS_PROG;
	/* Usage is 1 for both names (CLI_MOUNT_EX_USAGE == CLI_EX_FAILURE). */
	c.usage_code = CLI_MOUNT_EX_USAGE;
	c.fail_code = c.helper ? CLI_MOUNT_EX_FAIL : CLI_EX_FAILURE;
	log_init(c.prog);
	fuse_set_log_func(efs_fuse_log);
	if (fuse_opt_add_arg(&c.args, c.prog)) {
		log_err("%s", strerror(ENOMEM));
		return c.fail_code;
	}
	/* -o and -f/-d/-s are collected into c.args by efs_parse_argv(). */

	efs_parse_argv(&c, argc, argv);
	efs_parse_opts(&c);
	ret = c.fail_code;
	if (efs_check_paths(&c))
		goto out;
	efs_add_opts(&c);
	if (key_lib_init()) {
		log_err("cannot initialise libsodium");
		goto out;
	}
	efs.rdonly = c.conf.rdonly;
	efs.writeback = c.conf.writeback && !c.conf.rdonly;

	se = fuse_session_new(&c.args, &efs_ops, sizeof(efs_ops), &efs);
	if (!se)
		efs_usage_error(&c); /* libfuse named the bad option */
	efs.se = se;
	if (c.fake) {
		ret = CLI_EX_OK;
		goto out;
	}

	if (c.opts.foreground) {
		ret = efs_serve(&c, se, &efs, -1);
		se = NULL;
		goto out;
	}
	if (pipe2(fds, O_CLOEXEC)) {
		log_err("cannot create a pipe: %s", strerror(errno));
		goto out;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		log_err("cannot fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		goto out;
	}
	if (pid == 0) {
		close(fds[0]);
		ret = efs_serve(&c, se, &efs, fds[1]);
		se = NULL;
		goto out;
	}
	close(fds[1]);
	ret = efs_wait_for_child(&c, pid, fds[0]);
out:
	if (se)
		fuse_session_destroy(se);
	free(c.opts.mountpoint);
	fuse_opt_free_args(&c.args);
	free(c.conf.passphrase_file);
	free(c.conf.key_file);
	free(c.store);
	free(c.mnt);
	return ret;
}
