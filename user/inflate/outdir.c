/* The results directory: written as DIR.tmp-*, it replaces -o DIR only when
 * everything is written, and only if DIR is empty or an earlier run's (it holds
 * RESULTS_MARKER). Plots are drawn into it by analysis/inflate_plots.py. */
#include "common.h"
#include "inflate.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define RESULTS_MARKER ".hatrace-results"

/* Plots are best-effort: a failure is a warning and the data is kept. Ctrl-C
 * (or SIGHUP, SIGTERM) stops the plotter; the data is kept then too. */
int run_plots(const char *dir)
{
	char *script = getenv("HATRACE_ANALYSIS") ? strdup(getenv("HATRACE_ANALYSIS"))
						    : exe_relative("../analysis/inflate_plots.py");
	const char *py = getenv("HATRACE_PYTHON") ?: "/usr/bin/python3";
	bool stopped = false;
	int status = -1;
	pid_t pid;

	if (exiting) {
		ht_warn("interrupted: no plots");
		free(script);
		return -EINTR;
	}
	if (!script || access(script, R_OK)) {
		ht_warn("no plots: plot script not found: %s", script ? script : "(none)");
		free(script);
		return -ENOENT;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		execl(py, py, script, dir, (char *)NULL);
		fprintf(stderr, "hatrace: cannot run %s: %s\n", py, strerror(errno));
		_exit(127);
	}
	free(script);
	if (pid < 0) {
		ht_warn("no plots: cannot fork: %s", strerror(errno));
		return -EAGAIN;
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			break;
		if (exiting && !stopped)
			stopped = !kill(pid, SIGTERM);
	}
	if (exiting) {
		ht_warn("interrupted while plotting: no plots");
		return -EINTR;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		ht_warn("no plots: %s failed (is python3-matplotlib installed?)", py);
		return -EIO;
	}
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path) ? -errno : 0;
}

void remove_tree(const char *dir)
{
	if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) && errno != ENOENT)
		ht_warn("could not remove %s: %s", dir, strerror(errno));
}

/* -o DIR is replaced only if it does not exist, is empty or is a results
 * directory of an earlier run (it holds RESULTS_MARKER); checked before the
 * run and again before the replacement (!at_start). */
int out_dir_replaceable(const char *dir, bool at_start)
{
	char marker[PATH_MAX];
	struct dirent *e;
	struct stat st;
	int entries = 0, err;
	DIR *d;

	if (lstat(dir, &st)) {
		if (errno == ENOENT)
			return 0;
		err = -errno; /* ht_err may change errno */
		ht_err("--output: cannot use %s: %s", dir, strerror(-err));
		return err;
	}
	if (S_ISLNK(st.st_mode)) {
		ht_err("--output: %s is a symbolic link; name the directory itself", dir);
		return -EINVAL;
	}
	if (!S_ISDIR(st.st_mode)) {
		ht_err("--output: %s exists and is not a directory", dir);
		return -ENOTDIR;
	}
	snprintf(marker, sizeof(marker), "%s/" RESULTS_MARKER, dir);
	if (!lstat(marker, &st) && S_ISREG(st.st_mode))
		return 0;
	d = opendir(dir);
	if (!d) {
		err = -errno;
		ht_err("--output: cannot read %s: %s", dir, strerror(-err));
		return err;
	}
	while ((e = readdir(d)))
		entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	if (!entries)
		return 0;
	ht_err("--output: %s %s files of its own and no " RESULTS_MARKER
	       ": hatrace replaces only empty directories and its own results directories%s",
	       dir, at_start ? "has" : "now has",
	       at_start ? "; remove it or name another one" : ", so it was left alone");
	return -EEXIST;
}

/* Results go to DIR.tmp-* and replace DIR only when everything is written. */
int out_dir_commit(const char *tmp, const char *dir)
{
	char old[PATH_MAX];
	bool had_old;
	int err;

	if ((err = out_dir_replaceable(dir, false)))
		return err;
	snprintf(old, sizeof(old), "%s.old-%d", dir, (int)getpid());
	had_old = !rename(dir, old);
	if (!had_old && errno != ENOENT) {
		err = -errno;
		ht_err("cannot replace %s: %s", dir, strerror(errno));
		return err;
	}
	if (rename(tmp, dir)) {
		err = -errno;
		ht_err("cannot rename %s to %s: %s", tmp, dir, strerror(errno));
		if (had_old)
			rename(old, dir); /* put the previous results back */
		return err;
	}
	if (had_old)
		remove_tree(old);
	return 0;
}

static int write_marker(const char *dir)
{
	char path[PATH_MAX];
	FILE *f;
	int err;

	snprintf(path, sizeof(path), "%s/" RESULTS_MARKER, dir);
	f = fopen(path, "w");
	if (f) {
		fputs("hatrace inflate results: a later run with -o naming this directory "
		      "replaces it\n", f);
		if (!ferror(f) & !fclose(f))
			return 0;
	}
	err = errno ? -errno : -EIO; /* ht_err may change errno */
	ht_err("cannot write %s: %s", path, strerror(-err));
	return err;
}

/* Creates DIR.tmp-XXXXXX (and DIR's parent, e.g. results/) with consoles/ and
 * the marker; tmp receives its path. */
int out_dir_create_tmp(const char *dir, char *tmp, size_t len)
{
	char path[PATH_MAX], *slash;

	snprintf(tmp, len, "%s.tmp-XXXXXX", dir);
	slash = strrchr(tmp, '/');
	if (slash) {
		*slash = 0;
		mkdir(tmp, 0755);
		*slash = '/';
	}
	if (!mkdtemp(tmp)) {
		int err = -errno;

		ht_err("cannot create %s: %s", tmp, strerror(-err));
		return err;
	}
	chmod(tmp, 0755);
	snprintf(path, sizeof(path), "%s/consoles", tmp);
	mkdir(path, 0755);
	if (write_marker(tmp)) {
		remove_tree(tmp);
		return -EIO;
	}
	return 0;
}
