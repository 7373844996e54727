/* ht-alloc-install: allocate N bytes of 4 KiB pages and write every page with
 * T threads twice: the first pass ("install") takes the faults and whatever the
 * memory technique does to bring memory back, the second ("touch2") is the
 * warm reference. Then frees the memory.
 * usage: ht-alloc-install --bytes N [--threads T]
 * result: {"workload":"ht-alloc-install","bytes","threads","pages","install_ns",
 *          "touch2_ns","free_ns","install_start_ns","touch2_start_ns","free_start_ns"}
 *          (starts: guest CLOCK_MONOTONIC) */
#include "common.h"
#include "wl.h"

#include <string.h>
#include <sys/mman.h>

static void write_pages(char *base, size_t first, size_t count, void *arg)
{
	uint8_t v = (uintptr_t)arg;

	for (size_t i = first; i < first + count; i++)
		memset(base + i * WL_PAGE, v, WL_PAGE);
}

int main(int argc, char **argv)
{
	struct wl_span install, touch2;
	uint64_t bytes, t0;
	size_t pages;
	unsigned threads;
	char *mem;

	if (wl_parse_bytes_threads("ht-alloc-install", argc, argv, &bytes, &threads))
		return 2;
	mem = wl_map(bytes);
	if (!mem)
		return 1;
	pages = bytes / WL_PAGE;
	install = wl_parallel(mem, pages, threads, write_pages, (void *)1);
	touch2 = wl_parallel(mem, pages, threads, write_pages, (void *)2);
	t0 = now_ns();
	munmap(mem, bytes);
	json_println(stdout,
		     json_pack("{s:s,s:I,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "workload",
			       "ht-alloc-install", "bytes", (json_int_t)bytes, "threads", threads,
			       "pages", (json_int_t)pages, "install_ns", (json_int_t)install.ns,
			       "touch2_ns", (json_int_t)touch2.ns, "free_ns",
			       (json_int_t)(now_ns() - t0), "install_start_ns",
			       (json_int_t)install.start_ns, "touch2_start_ns",
			       (json_int_t)touch2.start_ns, "free_start_ns", (json_int_t)t0));
	return 0;
}
