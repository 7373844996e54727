#include "vm.h"
#include "agent.h"
#include "common.h"
#include "hostcaps.h"
#include "qmp.h"
#include "run_prog.h"
#include "safe_text.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_NS (15 * 1000000000ull)
#define CONSOLE_FD 3
#define CONSOLE_FDSET 1

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

enum accel accel_resolve(enum accel a, char *why, size_t len)
{
	enum kvm_kind kind;
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
	close(fd);
	kind = kvm_kind();
	if (kind == KVM_PVM) {
		/* PVM runs only PVM-enabled guests; a stock kernel hangs under it. */
		snprintf(why, len, "/dev/kvm is PVM (kvm_pvm), which cannot run a stock Linux guest");
		return ACCEL_TCG;
	}
	if (kind != KVM_VMX && kind != KVM_SVM) {
		snprintf(why, len, "/dev/kvm is backed by neither kvm_intel nor kvm_amd");
		return ACCEL_TCG;
	}
	snprintf(why, len, "/dev/kvm backed by %s", kind == KVM_VMX ? "kvm_intel" : "kvm_amd");
	return ACCEL_KVM;
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

#define TMP_DIR "/tmp"
#define VM_DIR_PREFIX "hatrace-vm."
#define OWNER_FILE "owner"
#define OWNER_MARKER "hatrace-vm owner "

/* Removes the entries of the VM dir dfd (closed here), then the dir name in
 * parent. Everything is relative to dir fds: no path is followed twice. */
static void remove_vm_dir_at(int parent, const char *name, int dfd)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;

	if (!d) {
		close(dfd);
		return;
	}
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dfd, e->d_name, 0); /* a symlink goes, not its target */
	closedir(d);
	unlinkat(parent, name, AT_REMOVEDIR);
}

static void remove_vm_dir(const char *dir)
{
	const char *name = strrchr(dir, '/') + 1;
	int tmp = open(TMP_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int dfd = tmp < 0 ? -1 : openat(tmp, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (dfd >= 0)
		remove_vm_dir_at(tmp, name, dfd);
	if (tmp >= 0)
		close(tmp);
}

/* The owner PID of a VM dir that hatrace made: a real directory, owned by us
 * (root) and private, holding our marker file; 0 for anything else. */
static int vm_dir_owner(int dfd)
{
	char marker[64] = "";
	struct stat st;
	int fd, owner = 0;
	ssize_t n;

	if (fstat(dfd, &st) || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077))
		return 0;
	fd = openat(dfd, OWNER_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (!fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
	    (n = read(fd, marker, sizeof(marker) - 1)) > 0) {
		marker[n] = 0;
		if (strncmp(marker, OWNER_MARKER, strlen(OWNER_MARKER)) ||
		    sscanf(marker + strlen(OWNER_MARKER), "%d", &owner) != 1 || owner <= 0)
			owner = 0;
	}
	close(fd);
	return owner;
}

/* Temp dirs of a hatrace that was SIGKILLed (its QEMU died with it through
 * PR_SET_PDEATHSIG) are removed by the next one: only ours, only once their
 * owner is gone, never through a symlink. */
static void remove_stale_dirs(void)
{
	int tmp = open(TMP_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = tmp < 0 ? NULL : fdopendir(dup(tmp));
	struct dirent *e;

	while (d && (e = readdir(d))) {
		int dfd, owner;

		if (strncmp(e->d_name, VM_DIR_PREFIX, strlen(VM_DIR_PREFIX)))
			continue;
		dfd = openat(tmp, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			continue;
		owner = vm_dir_owner(dfd);
		if (owner > 0 && !pid_alive(owner))
			remove_vm_dir_at(tmp, e->d_name, dfd);
		else
			close(dfd);
	}
	if (d)
		closedir(d);
	if (tmp >= 0)
		close(tmp);
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

static void free_argv(char **argv)
{
	for (char **p = argv; p && *p; p++)
		free(*p);
	free(argv);
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
	/* The console goes to a pipe that hatrace drains (fd CONSOLE_FD in QEMU);
	 * append=on, since QEMU would truncate it otherwise, which a pipe refuses. */
	add(a, "-add-fd");
	add(a, "fd=%d,set=%d", CONSOLE_FD, CONSOLE_FDSET);
	add(a, "-chardev");
	add(a, "file,id=console,path=/dev/fdset/%d,append=on", CONSOLE_FDSET);
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

static void print_log_tail(struct vm *vm, int stream, const char *what, FILE *f, int lines)
{
	size_t len, start, end;
	char *text = log_drain_copy(&vm->logs, stream, &len, NULL);
	int n = 0;

	if (!text)
		return;
	end = len;
	if (end && text[end - 1] == '\n')
		end--;
	if (!end || lines <= 0) {
		free(text);
		return;
	}
	for (start = end, n = 1; start > 0; start--) {
		if (text[start - 1] == '\n') {
			if (n == lines)
				break;
			n++;
		}
	}
	fprintf(f, "hatrace: last %d lines of %s:\n", n, what);
	while (start <= end) {
		char *nl = memchr(text + start, '\n', end - start);
		size_t line_len = (nl ? (size_t)(nl - text) : end) - start, shown_len = line_len;
		char shown[VM_TAIL_LINE_MAX + 1];

		if (shown_len && text[start + shown_len - 1] == '\r')
			shown_len--;
		term_safe(shown, sizeof(shown), text + start, shown_len);
		if (shown_len > VM_TAIL_LINE_MAX)
			fprintf(f, "  | %s [... %zu more bytes]\n", shown, shown_len - VM_TAIL_LINE_MAX);
		else
			fprintf(f, "  | %s\n", shown);
		start += line_len + 1;
	}
	free(text);
}

void vm_print_console_tail(struct vm *vm, FILE *f, int lines)
{
	print_log_tail(vm, VM_LOG_CONSOLE, "the guest console", f, lines);
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
	int console[2], output[2], fd, err;
	char owner[128];

	*out = NULL;
	if (!vm)
		return -ENOMEM;
	remove_stale_dirs();
	strcpy(vm->dir, TMP_DIR "/" VM_DIR_PREFIX "XXXXXX");
	if (!mkdtemp(vm->dir)) {
		err = -errno;
		ht_err("cannot create a temp dir: %s", strerror(errno));
		free(vm);
		return err;
	}
	snprintf(owner, sizeof(owner), "%s/" OWNER_FILE, vm->dir);
	fd = open(owner, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dprintf(fd, OWNER_MARKER "%d\n", (int)parent);
		close(fd);
	}
	if (pipe2(console, O_CLOEXEC) || pipe2(output, O_CLOEXEC)) {
		err = -errno;
		ht_err("pipe: %s", strerror(errno));
		remove_vm_dir(vm->dir);
		free(vm);
		return err;
	}
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
		int null = open("/dev/null", O_RDONLY);
		int console_w = fcntl(console[1], F_DUPFD, CONSOLE_FD + 1);

		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		dup2(null, 0);
		dup2(output[1], 1);
		dup2(output[1], 2);
		dup2(console_w, CONSOLE_FD); /* dup2 clears close-on-exec */
		execv(a.v[0], a.v);
		dprintf(2, "exec %s: %s\n", a.v[0], strerror(errno));
		_exit(127);
	}
	err = vm->pid < 0 ? -errno : 0;
	/* kept for the record (inflate's meta.json) */
	vm->argv = calloc(a.n + 1, sizeof(*vm->argv));
	for (int i = 0; i < a.n; i++) {
		if (vm->argv)
			vm->argv[i] = a.v[i];
		else
			free(a.v[i]);
	}
	close(console[1]);
	close(output[1]);
	if (!err) {
		const int fds[] = { [VM_LOG_CONSOLE] = console[0], [VM_LOG_QEMU] = output[0] };
		const size_t keep[] = { [VM_LOG_CONSOLE] = VM_CONSOLE_KEEP,
					[VM_LOG_QEMU] = VM_QEMU_LOG_KEEP };

		err = log_drain_start(&vm->logs, 2, fds, keep);
	} else {
		close(console[0]);
		close(output[0]);
	}
	if (err) {
		ht_err("cannot start QEMU: %s", strerror(-err));
		if (vm->pid > 0) {
			kill(vm->pid, SIGKILL);
			waitpid(vm->pid, NULL, 0);
		}
		log_drain_free(&vm->logs);
		remove_vm_dir(vm->dir);
		free_argv(vm->argv);
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
			if (!vm_alive(vm))
				log_drain_stop(&vm->logs); /* take all it wrote */
			print_log_tail(vm, VM_LOG_QEMU, "QEMU's output", stderr, 15);
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
	if (!vm_alive(vm))
		log_drain_stop(&vm->logs); /* take all it wrote */
	vm_print_console_tail(vm, stderr, 20);
	print_log_tail(vm, VM_LOG_QEMU, "QEMU's output", stderr, 5);
	return err;
}

int vm_save_console(struct vm *vm, const char *path)
{
	struct out_file of;
	uint64_t dropped;
	size_t len;
	char *text = log_drain_copy(&vm->logs, VM_LOG_CONSOLE, &len, &dropped);
	int err;

	if (!text)
		return -ENOMEM;
	err = out_file_open(&of, path);
	if (!err) {
		fchmod(fileno(of.f), 0644);
		if (dropped)
			fprintf(of.f, "[hatrace: the first %llu bytes of the console were dropped; "
				"the last %u MiB are kept]\n", (unsigned long long)dropped,
				VM_CONSOLE_KEEP >> 20);
		fwrite(text, 1, len, of.f);
		err = out_file_commit(&of);
	}
	free(text);
	return err;
}

uint64_t vm_rss(struct vm *vm)
{
	static const char *const key[] = { "VmRSS" };
	char path[64];
	uint64_t rss;

	snprintf(path, sizeof(path), "/proc/%d/status", vm->pid);
	return proc_fields(path, key, &rss, 1) == 1 ? rss : 0;
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
	log_drain_free(&vm->logs);
	agent_close(vm->agent);
	qmp_close(vm->qmp);
	remove_vm_dir(vm->dir);
	track(vm, false);
	free_argv(vm->argv);
	free(vm);
}

bool vm_console_grep(struct vm *vm, const char *const *patterns, char *line, size_t len)
{
	size_t n;
	uint64_t dropped;
	char *text = log_drain_copy(&vm->logs, VM_LOG_CONSOLE, &n, &dropped), *hit = NULL;

	if (!text)
		return false;
	for (const char *const *p = patterns; *p && !hit; p++)
		hit = memmem(text, n, *p, strlen(*p));
	if (hit && len) {
		char *start = hit, *end = memchr(hit, '\n', text + n - hit);

		while (start > text && start[-1] != '\n')
			start--;
		term_safe(line, len, start, (end ? end : text + n) - start);
	}
	free(text);
	return hit != NULL;
}
