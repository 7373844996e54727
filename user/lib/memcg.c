#include "memcg.h"
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define V1_ROOT "/sys/fs/cgroup/memory"

static int write_file(const char *dir, const char *name, const char *value)
{
	char path[512];
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (write(fd, value, strlen(value)) < 0)
		err = -errno;
	close(fd);
	return err;
}

static bool has_word(const char *path, const char *word)
{
	char buf[512], *tok, *save;
	FILE *f = fopen(path, "r");
	bool found = false;

	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f))
		for (tok = strtok_r(buf, " \n", &save); tok && !found; tok = strtok_r(NULL, " \n", &save))
			found = !strcmp(tok, word);
	fclose(f);
	return found;
}

/* The cgroup v2 root whose controllers include memory, or NULL. */
static const char *v2_root(void)
{
	static const char *const roots[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };

	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		char path[128];

		snprintf(path, sizeof(path), "%s/cgroup.controllers", roots[i]);
		if (has_word(path, "memory"))
			return roots[i];
	}
	return NULL;
}

/* hatrace-PID-* groups whose PID is gone, and that are empty. */
static void remove_stale(const char *root)
{
	struct dirent *d;
	DIR *dir = opendir(root);
	int pid;

	while (dir && (d = readdir(dir))) {
		char path[512];

		if (sscanf(d->d_name, "hatrace-%d-", &pid) != 1 || pid <= 0 ||
		    (kill(pid, 0) == 0 || errno != ESRCH))
			continue;
		snprintf(path, sizeof(path), "%s/%s", root, d->d_name);
		if (rmdir(path) == 0)
			ht_warn("removed the memory cgroup %s of an earlier hatrace", path);
	}
	if (dir)
		closedir(dir);
}

int memcg_create(struct memcg *cg, const char *tag, uint64_t limit)
{
	const char *root = v2_root();
	char value[32];
	int err;

	cg->v2 = root != NULL;
	if (!root) {
		if (access(V1_ROOT "/memory.limit_in_bytes", W_OK)) {
			ht_err("no memory cgroup: neither cgroup v2 with the memory controller nor "
			       "v1's %s is writable (root needed)", V1_ROOT);
			return -ENOENT;
		}
		root = V1_ROOT;
	}
	remove_stale(root);
	snprintf(cg->path, sizeof(cg->path), "%s/hatrace-%d-%s", root, (int)getpid(), tag);
	if (cg->v2 && (err = write_file(root, "cgroup.subtree_control", "+memory"))) {
		ht_err("cannot enable the memory controller below %s: %s", root, strerror(-err));
		return err;
	}
	if (mkdir(cg->path, 0755) && errno != EEXIST) {
		err = -errno;
		ht_err("cannot create the memory cgroup %s: %s", cg->path, strerror(errno));
		return err;
	}
	snprintf(value, sizeof(value), "%llu", (unsigned long long)limit);
	err = write_file(cg->path, cg->v2 ? "memory.max" : "memory.limit_in_bytes", value);
	if (!err && cg->v2)
		write_file(cg->path, "memory.swap.max", "0"); /* absent without swap accounting */
	if (!err && !cg->v2) {
		/* Memory QEMU touched before it joined is charged here too (v1 only). */
		write_file(cg->path, "memory.move_charge_at_immigrate", "3");
		write_file(cg->path, "memory.swappiness", "0");
	}
	if (err) {
		ht_err("cannot set the limit of %s: %s", cg->path, strerror(-err));
		rmdir(cg->path);
	}
	return err;
}

int memcg_add(const struct memcg *cg, pid_t pid)
{
	char value[16];
	int err;

	snprintf(value, sizeof(value), "%d", (int)pid);
	if ((err = write_file(cg->path, "cgroup.procs", value)))
		ht_err("cannot move process %d into %s: %s", (int)pid, cg->path, strerror(-err));
	return err;
}

long memcg_oom_kills(const struct memcg *cg)
{
	char path[512], key[64];
	long long v, kills = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", cg->path, cg->v2 ? "memory.events" : "memory.oom_control");
	if (!(f = fopen(path, "r")))
		return -errno;
	while (fscanf(f, "%63s %lld", key, &v) == 2)
		if (!strcmp(key, "oom_kill"))
			kills = v;
	fclose(f);
	return kills;
}

int memcg_destroy(struct memcg *cg)
{
	int err = 0;

	if (!cg->path[0])
		return 0;
	/* The processes just ended: the kernel may still be releasing them. */
	for (int i = 0; i < 100 && rmdir(cg->path) && errno == EBUSY; i++)
		usleep(50000);
	if (!access(cg->path, F_OK)) {
		err = -EBUSY;
		ht_err("the memory cgroup %s could not be removed (processes left in it?)", cg->path);
	}
	cg->path[0] = 0;
	return err;
}
