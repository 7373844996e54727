#include "qemu_bin.h"
#include "common.h"
#include "run_prog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *qemu_find(const char *path)
{
	const char *name = path ? path : getenv("HATRACE_QEMU");
	char *dirs, *dir, *save = NULL, *found = NULL;

	if (!name || !*name) {
		char *own = exe_relative(QEMU_OWN_BUILD);

		if (own && access(own, X_OK) == 0)
			return own;
		free(own);
		name = "qemu-system-x86_64";
	}
	if (strchr(name, '/')) {
		if (access(name, X_OK) == 0)
			return realpath(name, NULL);
		ht_err("QEMU not found: %s: %s (use --qemu PATH or HATRACE_QEMU)", name,
		       strerror(errno));
		return NULL;
	}
	dirs = strdup(getenv("PATH") ?: "/usr/local/bin:/usr/bin:/bin");
	for (dir = strtok_r(dirs, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
		char *p;

		if (asprintf(&p, "%s/%s", dir, name) < 0)
			break;
		if (access(p, X_OK) == 0)
			found = p;
		else
			free(p);
	}
	free(dirs);
	if (!found)
		ht_err("QEMU not found: no %s on PATH (install qemu-system-x86 or use --qemu PATH / "
		       "HATRACE_QEMU)", name);
	return found;
}

char *qemu_version(const char *qemu)
{
	const char *argv[] = { qemu, "--version", NULL };
	char out[256];

	if (run_capture(argv, 10000000000ull, out, sizeof(out)) < 0)
		out[0] = 0;
	out[strcspn(out, "\n")] = 0;
	return strdup(*out ? out : "unknown");
}

bool qemu_check(const char *qemu, const char *what)
{
	char *v = qemu_version(qemu);
	bool ok = !strncmp(v, "QEMU emulator version ", 22);

	if (!ok)
		ht_err("%s: %s is not QEMU: '%s --version' did not print 'QEMU emulator version'",
		       what, qemu, qemu);
	free(v);
	return ok;
}

bool qemu_has_property(const char *qemu, const char *device, const char *prop)
{
	char dev[128], out[16384], *line, *save = NULL;
	const char *argv[] = { qemu, "-device", dev, NULL };
	size_t n = strlen(prop);

	snprintf(dev, sizeof(dev), "%s,help", device);
	if (run_capture(argv, 10000000000ull, out, sizeof(out)) != 0)
		return false;
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		line += strspn(line, " ");
		if (!strncmp(line, prop, n) && line[n] == '=')
			return true;
	}
	return false;
}
