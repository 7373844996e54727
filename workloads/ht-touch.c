/* ht-touch: write N bytes in 4 KiB pages (no THP) with T threads, then free
 * them with munmap.
 * usage: ht-touch --bytes N [--threads T]
 * result: {"workload":"ht-touch","bytes","threads","pages","touch_ns","free_ns",
 *          "touch_start_ns","free_start_ns"} (starts: guest CLOCK_MONOTONIC) */
#include "common.h"
#include "wl.h"

#include <string.h>
#include <sys/mman.h>

static void touch_pages(char *base, size_t first, size_t count, void *arg)
{
	memset(base + first * WL_PAGE, 0x5a, count * WL_PAGE);
}

int main(int argc, char **argv)
{
	struct wl_span touch;
	uint64_t bytes, t0;
	unsigned threads;
	char *mem;

	if (wl_parse_bytes_threads("ht-touch", argc, argv, &bytes, &threads))
		return 2;
	mem = wl_map(bytes);
	if (!mem)
		return 1;
	touch = wl_parallel(mem, bytes / WL_PAGE, threads, touch_pages, NULL);
	t0 = now_ns();
	munmap(mem, bytes);
	json_println(stdout, json_pack("{s:s,s:I,s:i,s:I,s:I,s:I,s:I,s:I}", "workload", "ht-touch",
				       "bytes", (json_int_t)bytes, "threads", threads, "pages",
				       (json_int_t)(bytes / WL_PAGE), "touch_ns", (json_int_t)touch.ns,
				       "free_ns", (json_int_t)(now_ns() - t0), "touch_start_ns",
				       (json_int_t)touch.start_ns, "free_start_ns", (json_int_t)t0));
	return 0;
}
