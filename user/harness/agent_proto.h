/* The host <-> guest agent protocol (hatrace-guest), shared by both sides.
 *
 * Transport: a virtio-serial port named AGENT_PORT_NAME (QEMU:
 *   -device virtio-serial-pci -chardev socket,id=agent,path=S,server=on,wait=off
 *   -device virtserialport,chardev=agent,name=org.hatrace.agent).
 * The guest finds it through /sys/class/virtio-ports/<vportNpM>/name.
 *
 * Framing: one compact JSON object per line, each direction. Every request
 * carries an integer "id" that the reply echoes. Replies carry "ok": true, or
 * "ok": false with "error": "<text>". The guest sends one unsolicited
 * {"event":"ready","mono_ns":N,"kernel":"<uname -r>"} line when it is up.
 *
 * Requests:
 *   {"id":1,"cmd":"ping"}
 *       -> {"id":1,"ok":true,"mono_ns":<guest CLOCK_MONOTONIC>}
 *       The host brackets it with its own clock to estimate the offset.
 *   {"id":2,"cmd":"run","argv":["ht-touch","--bytes","1073741824"],"timeout_s":600}
 *       -> {"id":2,"ok":true,"exit":0,"start_ns":N,"elapsed_ns":N,"result":{...}}
 *       "result" is the JSON object the workload printed as its last stdout
 *       line (absent if it printed none); "stderr" holds its tail on failure.
 *   {"id":3,"cmd":"meminfo"}
 *       -> {"id":3,"ok":true,"MemTotal":bytes,"MemFree":bytes,"MemAvailable":bytes}
 *   {"id":4,"cmd":"trace_start"[,"functions":[{"name":"balloon_leak",
 *        "func":"leak_balloon"[,"within":"balloon_size_work"]}, ...]]
 *        [,"tracepoints":["mm_page_alloc","mm_page_free"]][,"kprobes":true]
 *        [,"vmstat":["balloon_inflate", ...]]}
 *       -> {"id":4,"ok":true,"probes":[{"name":..,"target":..,"attached":bool,
 *            "mode":..,"reason":..}]}
 *       The host names the kernel functions to time (the agent knows no
 *       technique): at most GT_NR_FUNCS (bpf/guest/guest_trace.h), names and
 *       symbols of 1-63 [A-Za-z0-9_], names unique. A function "within" P is
 *       timed inside probe P (another of the list, or "any" caller): sum only
 *       those without it. "tracepoints" selects the page-allocator tracepoints
 *       (default mm_page_alloc and mm_page_free); HyperAlloc's (hyperalloc_get,
 *       _put, _reclaimed_seen, _install_start, _install_end, _drain,
 *       _reconcile; tp_btf) come only when named, and are listed as not
 *       attached where the kernel's BTF lacks them. "kprobes": time functions
 *       with kprobes even where fentry would work. "vmstat": up to 16
 *       /proc/vmstat counters that trace_read reports as count-only events
 *       "vmstat_NAME" (mode "vmstat"): per-page work counted with no probe. A new
 *       trace_start replaces the previous one.
 *   {"id":5,"cmd":"trace_read"}
 *       -> {"id":5,"ok":true,"mono_ns":N,"events":[{"name":"mm_page_alloc",
 *            "count":N,"sum_ns":N,"first_ns":N,"last_ns":N}, ...]}
 *       Counters are cumulative since trace_start; times are guest monotonic.
 *       Tracepoint events add "pages", function events "drops" (and "within").
 *       HyperAlloc events add "errors" (failed gets and installs, not in
 *       "count"); hyperalloc_get/_put add "orders" (counts for orders 0-10),
 *       hyperalloc_install_end's "sum_ns" sums the install times.
 *   {"id":6,"cmd":"trace_stop"}  -> {"id":6,"ok":true}
 *   {"id":7,"cmd":"poweroff"}    -> {"id":7,"ok":true}, then the guest powers off.
 */
#ifndef HATRACE_AGENT_PROTO_H
#define HATRACE_AGENT_PROTO_H

#define AGENT_PORT_NAME "org.hatrace.agent"
#define AGENT_MAX_LINE (1 << 20)

#endif
