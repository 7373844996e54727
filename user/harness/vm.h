/* A QEMU process run by hatrace: private temp dir, own process group, QMP
 * and agent sockets, the guest console and QEMU's output kept in bounded
 * memory rings (logring.h); everything goes away with vm_destroy()
 * (and, as a last resort, at exit or when hatrace dies: PR_SET_PDEATHSIG). */
#ifndef HATRACE_VM_H
#define HATRACE_VM_H

#include "logring.h"
#include "qemu_bin.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct qmp;
struct agent;

enum accel { ACCEL_AUTO, ACCEL_KVM, ACCEL_TCG };

int parse_accel(const char *s, enum accel *out);
const char *accel_name(enum accel a);
/* Resolves ACCEL_AUTO: KVM only where /dev/kvm is backed by hardware
 * virtualisation (kvm_intel/kvm_amd) that runs a stock guest, TCG where it is
 * PVM or missing. why receives the reason. */
enum accel accel_resolve(enum accel a, char *why, size_t len);

struct vm_config {
	const char *qemu;        /* from qemu_find() */
	const char *kernel, *initrd, *append; /* kernel NULL: no guest (for QMP only) */
	enum accel accel;        /* KVM or TCG */
	unsigned vcpus;
	uint64_t mem;            /* boot memory */
	uint64_t maxmem;         /* 0 = no memory hotplug */
	const char *const *devices; /* extra arguments, NULL-terminated */
	bool agent;              /* add the hatrace-guest virtio-serial port */
	bool paused;             /* -S */
};

enum { VM_LOG_CONSOLE, VM_LOG_QEMU };
/* What is kept of each: the last bytes. */
#define VM_CONSOLE_KEEP (4u << 20)
#define VM_QEMU_LOG_KEEP (1u << 20)
/* Longest line a tail prints; the rest is counted. */
#define VM_TAIL_LINE_MAX 200

struct vm {
	pid_t pid;
	bool exited;
	int status;              /* waitpid status once exited */
	char dir[64];            /* private temp dir */
	struct log_drain logs;   /* VM_LOG_CONSOLE, VM_LOG_QEMU */
	struct qmp *qmp;
	struct agent *agent;
	bool ready;              /* the guest agent said it is up */
	uint64_t start_ns;
	char **argv;             /* QEMU's command line, NULL-terminated */
};

/* Starts QEMU and connects QMP (and the agent socket if configured). */
int vm_start(struct vm **vm, const struct vm_config *cfg);
/* Waits for the guest agent's ready event; on failure prints the console tail. */
int vm_wait_ready(struct vm *vm, uint64_t timeout_ns, char *kernel, size_t len);
bool vm_alive(struct vm *vm);
/* Waits up to timeout_ns for QEMU to exit; true if it did. */
bool vm_wait_exit(struct vm *vm, uint64_t timeout_ns);
/* A one-line description of how QEMU ended, e.g. "killed by signal 9". */
const char *vm_exit_reason(struct vm *vm, char *buf, size_t len);
/* The last lines of the console, made safe for a terminal and cut at
 * VM_TAIL_LINE_MAX bytes. */
void vm_print_console_tail(struct vm *vm, FILE *f, int lines);
/* Writes the kept console output to path (e.g. into the results directory),
 * after a line that says how much older output was dropped, if any. */
int vm_save_console(struct vm *vm, const char *path);
/* True if the kept console holds one of patterns; line gets the first such
 * line, made safe for a terminal. */
bool vm_console_grep(struct vm *vm, const char *const *patterns, char *line, size_t len);
/* QEMU's resident set size (VmRSS) in bytes; 0 if it is gone. */
uint64_t vm_rss(struct vm *vm);
/* Guest RAM mappings (anonymous rw mappings >= min_bytes) as HVA ranges. */
int vm_ram_ranges(struct vm *vm, uint64_t min_bytes, uint64_t *start, uint64_t *end, int max);
/* Poweroff through the agent (else QMP quit), wait, then kill. Returns 0 if
 * QEMU exited on its own. Always releases everything. */
int vm_shutdown(struct vm *vm, uint64_t timeout_ns);
/* Kills the process group, reaps it, removes the temp dir. */
void vm_destroy(struct vm *vm);

#endif
