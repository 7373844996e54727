/* A tiny KVM VMM: one vCPU in real mode, 2 MiB of guest RAM at GPA 0. The guest
 * writes one byte per 4 KiB page from 64 KiB to 640 KiB, then reports with an
 * OUT to port 0x10 and starts over. Driven by lines on stdin:
 *   start: prints "started PID"; the first line creates the VM, runs one round
 *   and prints "ready PID HVA"
 *   each line: discards the data pages (madvise DONTNEED), runs ROUNDS rounds so
 *   the guest faults them back in, prints a JSON line; EOF ends the VM. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define RAM_SIZE (2 << 20)
#define CODE_GPA 0x1000
#define DATA_START 0x10000
#define DATA_END 0xA0000

static const unsigned char guest_code[] = {
	0xb8, 0x00, 0x10,                   /* mov ax, 0x1000 (es = 64 KiB) */
	0x8e, 0xc0,                         /* loop: mov es, ax */
	0x26, 0xc6, 0x06, 0x00, 0x00, 0x01, /* mov byte [es:0], 1 */
	0x05, 0x00, 0x01,                   /* add ax, 0x100 (next 4 KiB) */
	0x3d, 0x00, 0xa0,                   /* cmp ax, 0xa000 (640 KiB) */
	0x75, 0xf0,                         /* jne loop */
	0xe6, 0x10,                         /* out 0x10, al */
	0xeb, 0xe9,                         /* jmp start */
};

static int die(const char *what)
{
	perror(what);
	return 1;
}

/* Runs until the guest has completed `rounds` passes; returns exits taken. */
static long run_rounds(int vcpu, struct kvm_run *run, int rounds)
{
	long exits = 0;

	while (rounds > 0) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0)
			return -1;
		exits++;
		if (run->exit_reason == KVM_EXIT_IO && run->io.port == 0x10)
			rounds--;
		else if (run->exit_reason != KVM_EXIT_INTR) {
			fprintf(stderr, "tinyvmm: unexpected exit %u\n", run->exit_reason);
			return -1;
		}
	}
	return exits;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 3;
	struct kvm_userspace_memory_region region = { .slot = 0, .guest_phys_addr = 0,
						      .memory_size = RAM_SIZE };
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rip = CODE_GPA, .rflags = 2 };
	struct kvm_run *run;
	char line[16];
	int kvm, vm, vcpu, size;
	char *ram;

	printf("started %d\n", getpid());
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return die("/dev/kvm");
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return die("KVM_CREATE_VM");
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED)
		return die("mmap");
	madvise(ram, RAM_SIZE, MADV_NOHUGEPAGE);
	memcpy(ram + CODE_GPA, guest_code, sizeof(guest_code));
	region.userspace_addr = (unsigned long)ram;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region))
		return die("KVM_SET_USER_MEMORY_REGION");
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vcpu < 0 || size <= 0)
		return die("KVM_CREATE_VCPU");
	run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return die("mmap kvm_run");
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs))
		return die("KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) || ioctl(vcpu, KVM_SET_REGS, &regs))
		return die("KVM_SET_REGS");
	if (run_rounds(vcpu, run, 1) < 0)
		return die("KVM_RUN");
	printf("ready %d 0x%lx\n", getpid(), (unsigned long)ram);
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		long exits;

		if (madvise(ram + DATA_START, DATA_END - DATA_START, MADV_DONTNEED))
			return die("madvise");
		exits = run_rounds(vcpu, run, rounds);
		if (exits < 0)
			return die("KVM_RUN");
		printf("{\"rounds\":%d,\"exits\":%ld,\"page0\":%d}\n", rounds, exits,
		       ram[DATA_START]);
		fflush(stdout);
	}
	return 0;
}
