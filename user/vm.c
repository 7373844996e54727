#include "vm.h"
#include "agent.h"
#include "common.h"
#include "qmp.h"
#include "run_prog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PVM_VENDOR_SIGNATURE 0x4d5650 /* "PVM": kvm_cpuid_vendor_signature of kvm_pvm */
#define CONNECT_TIMEOUT_NS (15 * 1000000000ull)

static const char *const accel_names[] = { "auto", "kvm", "tcg" };

int parse_accel(const char *s, enum accel *out)
{
	for (unsigned i = 0; i < ARRAY_SIZE(accel_names); i++) {
		if (!strcmp(s, accel_names[i])) {
			*out = i;
			return 0;
		}
	}
	ht_err("--accel: unknown accelerator '%s' (expected auto|kvm|tcg)", s);
	return -EINVAL;
}

const char *accel_name(enum accel a)
{
	return accel_names[a];
}

static bool module_loaded(const char *name)
{
	char path[64];

	snprintf(path, sizeof(path), "/sys/module/%s", name);
	return access(path, F_OK) == 0;
}

/* PVM announces itself in the KVM vendor-features CPUID leaf it offers guests. */
static bool kvm_cpuid_says_pvm(int kvm_fd)
{
	const int nent = 256;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
	bool pvm = false;

	if (!c)
		return false;
	c->nent = nent;
	if (!ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c)) {
		for (unsigned i = 0; i < c->nent; i++) {
			const struct kvm_cpuid_entry2 *e = &c->entries[i];

			if ((e->function & 0xffff0000) == 0x40000000 &&
			    e->ebx == PVM_VENDOR_SIGNATURE)
				pvm = true;
		}
	}
	free(c);
	return pvm;
}

enum accel accel_resolve(enum accel a, char *why, size_t len)
{
	int fd;

	if (a != ACCEL_AUTO) {
		snprintf(why, len, "requested");
		return a;
	}
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, len, "/dev/kvm: %s", strerror(errno));
		return ACCEL_TCG;
	}
	/* kvm_pvm registers as KVM's vendor module in place of kvm_intel/kvm_amd
	 * and runs only PVM-enabled guests; a stock kernel hangs under it. */
	if (module_loaded("kvm_pvm") || kvm_cpuid_says_pvm(fd)) {
		close(fd);
		snprintf(why, len, "/dev/kvm is PVM (kvm_pvm), which cannot run a stock Linux guest");
		return ACCEL_TCG;
	}
	close(fd);
	if (!module_loaded("kvm_intel") && !module_loaded("kvm_amd")) {
		snprintf(why, len, "/dev/kvm is backed by neither kvm_intel nor kvm_amd");
		return ACCEL_TCG;
	}
	snprintf(why, len, "/dev/kvm backed by %s", module_loaded("kvm_intel") ? "kvm_intel" : "kvm_amd");
	return ACCEL_KVM;
}

char *qemu_find(const char *path)
{
	const char *name = path ? path : getenv("HATRACE_QEMU");
	char *dirs, *dir, *save = NULL, *found = NULL;

	if (!name || !*name)
		name = "qemu-system-x86_64";
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

/* VMs alive in this process, killed at exit whatever the path out. */
static struct vm *live[16];

static void kill_live_vms(void)
{
	for (unsigned i = 0; i < ARRAY_SIZE(live); i++)
		if (live[i])
			vm_destroy(live[i]);
}

static void track(struct vm *vm, bool add)
{
	static bool registered;

	if (!registered) {
		atexit(kill_live_vms);
		registered = true;
	}
	for (unsigned i = 0; i < ARRAY_SIZE(live); i++) {
		if (add && !live[i]) {
			live[i] = vm;
			return;
		}
		if (!add && live[i] == vm)
			live[i] = NULL;
	}
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char p[512];

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

/* Temp dirs of a hatrace that was SIGKILLed (its QEMU died with it through
 * PR_SET_PDEATHSIG) are removed by the next one. */
static void remove_stale_dirs(void)
{
	DIR *d = opendir("/tmp");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char p[512];
		FILE *f;
		int owner = 0;

		if (strncmp(e->d_name, "hatrace-vm.", 11))
			continue;
		snprintf(p, sizeof(p), "/tmp/%s/owner", e->d_name);
		f = fopen(p, "r");
		if (!f)
			continue;
		if (fscanf(f, "%d", &owner) != 1)
			owner = 0;
		fclose(f);
		if (owner > 0 && !pid_alive(owner)) {
			snprintf(p, sizeof(p), "/tmp/%s", e->d_name);
			remove_dir(p);
		}
	}
	closedir(d);
}

struct argv_buf {
	char *v[128];
	int n;
};

static void add(struct argv_buf *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct argv_buf *a, const char *fmt, ...)
{
	va_list ap;

	if (a->n >= (int)ARRAY_SIZE(a->v) - 1)
		return;
	va_start(ap, fmt);
	if (vasprintf(&a->v[a->n], fmt, ap) >= 0)
		a->n++;
	va_end(ap);
}

static void build_argv(struct argv_buf *a, const struct vm *vm, const struct vm_config *cfg)
{
	unsigned maxcpus = cfg->vcpus < 2 ? 2 : cfg->vcpus;

	add(a, "%s", cfg->qemu);
	add(a, "-nodefaults");
	add(a, "-no-user-config");
	add(a, "-display");
	add(a, "none");
	add(a, "-no-reboot");
	add(a, "-name");
	add(a, "hatrace,debug-threads=on");
	add(a, "-accel");
	/* Single-threaded TCG emulates atomics as plain loads and stores. */
	add(a, cfg->accel == ACCEL_KVM ? "kvm" : "tcg,thread=multi");
	if (cfg->accel == ACCEL_KVM) {
		add(a, "-cpu");
		add(a, "host");
	}
	add(a, "-smp");
	add(a, "%u,maxcpus=%u", cfg->vcpus, maxcpus);
	add(a, "-m");
	if (cfg->maxmem)
		add(a, "%lluM,maxmem=%lluM", (unsigned long long)(cfg->mem >> 20),
		    (unsigned long long)(cfg->maxmem >> 20));
	else
		add(a, "%lluM", (unsigned long long)(cfg->mem >> 20));
	add(a, "-chardev");
	add(a, "file,id=console,path=%s", vm->console_path);
	add(a, "-serial");
	add(a, "chardev:console");
	add(a, "-chardev");
	add(a, "socket,id=qmp,path=%s/qmp.sock,server=on,wait=off", vm->dir);
	add(a, "-mon");
	add(a, "chardev=qmp,mode=control");
	if (cfg->agent) {
		add(a, "-device");
		add(a, "virtio-serial-pci,id=vser0");
		add(a, "-chardev");
		add(a, "socket,id=agent,path=%s/agent.sock,server=on,wait=off", vm->dir);
		add(a, "-device");
		add(a, "virtserialport,chardev=agent,name=org.hatrace.agent");
	}
	if (cfg->kernel) {
		add(a, "-kernel");
		add(a, "%s", cfg->kernel);
		if (cfg->initrd) {
			add(a, "-initrd");
			add(a, "%s", cfg->initrd);
		}
		if (cfg->append) {
			add(a, "-append");
			add(a, "%s", cfg->append);
		}
	}
	for (int i = 0; cfg->devices && cfg->devices[i]; i++)
		add(a, "%s", cfg->devices[i]);
	if (cfg->paused)
		add(a, "-S");
	a->v[a->n] = NULL;
}

static void print_file_tail(const char *path, const char *what, FILE *f, int lines)
{
	FILE *in = fopen(path, "r");
	char *ring[64] = { 0 }, *line = NULL;
	size_t cap = 0;
	int n = 0;

	if (!in)
		return;
	if (lines > 64)
		lines = 64;
	while (getline(&line, &cap, in) > 0) {
		free(ring[n % lines]);
		ring[n % lines] = strdup(line);
		n++;
	}
	fclose(in);
	free(line);
	if (n)
		fprintf(f, "hatrace: last %d lines of %s:\n", n < lines ? n : lines, what);
	for (int i = n < lines ? 0 : n - lines; i < n; i++) {
		char *s = ring[i % lines];

		s[strcspn(s, "\r\n")] = 0;
		fprintf(f, "  | %s\n", s);
	}
	for (int i = 0; i < lines; i++)
		free(ring[i]);
}

void vm_print_console_tail(struct vm *vm, FILE *f, int lines)
{
	print_file_tail(vm->console_path, "the guest console", f, lines);
}

bool vm_alive(struct vm *vm)
{
	if (!vm->exited && waitpid(vm->pid, &vm->status, WNOHANG) == vm->pid)
		vm->exited = true;
	return !vm->exited;
}

const char *vm_exit_reason(struct vm *vm, char *buf, size_t len)
{
	if (vm_alive(vm))
		snprintf(buf, len, "still running");
	else if (WIFSIGNALED(vm->status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(vm->status),
			 strsignal(WTERMSIG(vm->status)));
	else
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(vm->status));
	return buf;
}

bool vm_wait_exit(struct vm *vm, uint64_t timeout_ns)
{
	uint64_t deadline = now_ns() + timeout_ns;

	while (vm_alive(vm)) {
		if (now_ns() > deadline)
			return false;
		usleep(20000);
	}
	return true;
}

int vm_start(struct vm **out, const struct vm_config *cfg)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct argv_buf a = { .n = 0 };
	pid_t parent = getpid();
	char owner[128];
	FILE *f;
	int err;

	*out = NULL;
	if (!vm)
		return -ENOMEM;
	remove_stale_dirs();
	strcpy(vm->dir, "/tmp/hatrace-vm.XXXXXX");
	if (!mkdtemp(vm->dir)) {
		err = -errno;
		ht_err("cannot create a temp dir: %s", strerror(errno));
		free(vm);
		return err;
	}
	snprintf(owner, sizeof(owner), "%s/owner", vm->dir);
	f = fopen(owner, "w");
	if (f) {
		fprintf(f, "%d\n", (int)parent);
		fclose(f);
	}
	snprintf(vm->console_path, sizeof(vm->console_path), "%s/console.log", vm->dir);
	snprintf(vm->qemu_log_path, sizeof(vm->qemu_log_path), "%s/qemu.log", vm->dir);
	build_argv(&a, vm, cfg);
	if (verbose) {
		fprintf(stderr, "hatrace: starting");
		for (int i = 0; i < a.n; i++)
			fprintf(stderr, " %s", a.v[i]);
		fputc('\n', stderr);
	}
	fflush(NULL);
	vm->pid = fork();
	if (vm->pid == 0) {
		int log = open(vm->qemu_log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int null = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		dup2(null, 0);
		dup2(log, 1);
		dup2(log, 2);
		execv(a.v[0], a.v);
		dprintf(2, "exec %s: %s\n", a.v[0], strerror(errno));
		_exit(127);
	}
	err = vm->pid < 0 ? -errno : 0;
	for (int i = 0; i < a.n; i++)
		free(a.v[i]);
	if (err) {
		ht_err("fork: %s", strerror(-err));
		remove_dir(vm->dir);
		free(vm);
		return err;
	}
	setpgid(vm->pid, vm->pid);
	vm->start_ns = now_ns();
	track(vm, true);

	char sock[160];

	snprintf(sock, sizeof(sock), "%s/qmp.sock", vm->dir);
	err = qmp_open(&vm->qmp, sock, vm->pid, CONNECT_TIMEOUT_NS);
	if (!err && cfg->agent) {
		snprintf(sock, sizeof(sock), "%s/agent.sock", vm->dir);
		err = agent_open(&vm->agent, sock, vm->pid, CONNECT_TIMEOUT_NS);
	}
	if (err) {
		char why[96];

		if (err != -EINTR) {
			if (err == -EPIPE || err == -ESRCH)
				vm_wait_exit(vm, 1000000000ull);
			ht_err("QEMU did not come up (%s)",
			       vm_alive(vm) ? strerror(-err) : vm_exit_reason(vm, why, sizeof(why)));
			print_file_tail(vm->qemu_log_path, "QEMU's output", stderr, 15);
		}
		vm_destroy(vm);
		return err;
	}
	*out = vm;
	return 0;
}

int vm_wait_ready(struct vm *vm, uint64_t timeout_ns, char *kernel, size_t len)
{
	int err = agent_wait_ready(vm->agent, timeout_ns, kernel, len);
	char why[96];

	vm->ready = !err;
	if (!err || err == -EINTR)
		return err;
	if (err != -ETIMEDOUT)
		vm_wait_exit(vm, 2000000000ull); /* a closed socket runs ahead of the exit */
	if (err == -ETIMEDOUT)
		ht_err("the guest did not boot: no agent within %.0f s", timeout_ns / 1e9);
	else if (!vm_alive(vm))
		ht_err("QEMU died while the guest booted: %s", vm_exit_reason(vm, why, sizeof(why)));
	else
		ht_err("the guest agent failed while booting: %s", strerror(-err));
	vm_print_console_tail(vm, stderr, 20);
	print_file_tail(vm->qemu_log_path, "QEMU's output", stderr, 5);
	return err;
}

int vm_save_console(struct vm *vm, const char *path)
{
	struct out_file of;
	FILE *in = fopen(vm->console_path, "r");
	char buf[65536];
	size_t n;
	int err;

	if (!in)
		return -errno;
	err = out_file_open(&of, path);
	if (err) {
		fclose(in);
		return err;
	}
	fchmod(fileno(of.f), 0644);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, of.f);
	fclose(in);
	return out_file_commit(&of);
}

uint64_t vm_rss(struct vm *vm)
{
	char path[64], line[256];
	unsigned long long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", vm->pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb << 10;
}

int vm_ram_ranges(struct vm *vm, uint64_t min_bytes, uint64_t *start, uint64_t *end, int max)
{
	char path[64], line[512];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", vm->pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (n < max && fgets(line, sizeof(line), f)) {
		unsigned long long s, e, inode;
		char perms[8];
		int name_at = 0;

		if (sscanf(line, "%llx-%llx %7s %*s %*s %llu %n", &s, &e, perms, &inode,
			   &name_at) < 4)
			continue;
		if (strcmp(perms, "rw-p") || inode || (name_at && line[name_at] != '\n' &&
						       line[name_at] != 0))
			continue;
		if (e - s >= min_bytes) {
			start[n] = s;
			end[n] = e;
			n++;
		}
	}
	fclose(f);
	return n;
}

int vm_shutdown(struct vm *vm, uint64_t timeout_ns)
{
	bool clean = false;

	if (vm_alive(vm)) {
		if (vm->ready && !agent_poweroff(vm->agent))
			clean = vm_wait_exit(vm, timeout_ns);
		if (!clean && vm_alive(vm) && vm->qmp &&
		    !qmp_call(vm->qmp, "quit", NULL, NULL, 5000000000ull))
			clean = vm_wait_exit(vm, 5000000000ull);
	}
	vm_destroy(vm);
	return clean ? 0 : -ETIMEDOUT;
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	if (!vm->exited) {
		kill(-vm->pid, SIGKILL);
		kill(vm->pid, SIGKILL);
		while (waitpid(vm->pid, &vm->status, 0) < 0 && errno == EINTR)
			;
		vm->exited = true;
	}
	agent_close(vm->agent);
	qmp_close(vm->qmp);
	remove_dir(vm->dir);
	track(vm, false);
	free(vm);
}
