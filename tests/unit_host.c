/* Unit tests of the host tool that need no root: histogram maths and
 * printing, exit-reason decoders, names, output formats, argument parsing. */
#include "check.h"
#include "common.h"
#include "kvm_exit.h"
#include "log2hist.h"
#include "metric_names.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_log2_maths(void)
{
	unsigned long long slots[48] = { [3] = 10, [4] = 30, [5] = 60 };

	CHECK_EQ_U64(log2_bucket_low(0), 0, "bucket 0 starts at 0");
	CHECK_EQ_U64(log2_bucket_high(0), 1, "bucket 0 holds 0 and 1");
	CHECK_EQ_U64(log2_bucket_low(10), 1024, "bucket 10 starts at 1024");
	CHECK_EQ_U64(log2_bucket_high(10), 2047, "bucket 10 ends at 2047");
	CHECK_EQ_U64(log2_bucket_high(63), ~0ULL, "bucket 63 ends at ~0");
	CHECK_EQ_U64(log2_hist_quantile(slots, 48, 0.5), 63, "median bucket upper bound");
	CHECK_EQ_U64(log2_hist_quantile(slots, 48, 0.1), 15, "p10 bucket upper bound");
}

static void test_print_width(void)
{
	unsigned long long slots[48] = { [0] = 1, [20] = 5, [47] = 1000 };
	char *buf = NULL, *line;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int lines = 0, widest = 0;

	print_log2_hist(f, slots, 48, "nsecs");
	fclose(f);
	for (line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		int w = (int)strlen(line);

		widest = w > widest ? w : widest;
		lines++;
	}
	check(widest <= 80, "histogram fits 80 columns", "widest line %d", widest);
	CHECK_EQ_U64(lines, 49, "header plus every bucket from first to last");
	free(buf);

	unsigned long long one[48] = { [10] = 7 };
	f = open_memstream(&buf, &len);
	print_log2_hist(f, one, 48, "nsecs");
	fclose(f);
	check(strstr(buf, "1024 -> 2047") && strstr(buf, ": 7 ") &&
	      strstr(buf, "|****************************************|"),
	      "histogram line in print_log2_hist style", "got:\n%s", buf);
	free(buf);
}

static void test_hist_json(void)
{
	unsigned long long slots[48] = { [2] = 3, [4] = 1 };
	json_t *arr = log2_hist_json(slots, 48);
	char *s = json_dumps(arr, JSON_COMPACT);

	check(!strcmp(s, "[{\"low\":4,\"high\":7,\"count\":3},{\"low\":8,\"high\":15,\"count\":0},"
			 "{\"low\":16,\"high\":31,\"count\":1}]"),
	      "JSON buckets cover first to last non-empty", "got %s", s);
	free(s);
	json_decref(arr);

	unsigned long long top[64] = { [63] = 1 };
	arr = log2_hist_json(top, 64);
	check(json_integer_value(json_object_get(json_array_get(arr, 0), "high")) == INT64_MAX,
	      "the last bucket's bound is capped to a JSON integer", " ");
	json_decref(arr);
}

static void test_json_escaping(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	json_t *back;

	json_println(f, json_pack("{s:s}", "comm", "qemu \"x\"\\\n\t\x01"));
	fclose(f);
	check(strstr(buf, "\\\"x\\\"\\\\\\n\\t\\u0001") != NULL, "JSON escapes quotes and controls",
	      "got %s", buf);
	back = json_loads(buf, 0, NULL);
	check(back && !strcmp(json_string_value(json_object_get(back, "comm")),
			      "qemu \"x\"\\\n\t\x01"),
	      "JSON line parses back to the same string", "got %s", buf);
	json_decref(back);
	free(buf);
}

/* Names cut in the middle of a character, and other invalid UTF-8. */
static void test_json_lossy(void)
{
	static const struct {
		const char *in, *out, *what;
	} cases[] = {
		{ "qemu-\xc3\xa9", "qemu-\xc3\xa9", "valid UTF-8 kept" },
		{ "hatrace-utf8-x\xc3", "hatrace-utf8-x\xef\xbf\xbd", "character cut after its first byte" },
		{ "a\xe2\x82", "a\xef\xbf\xbd\xef\xbf\xbd", "3-byte character cut: one U+FFFD per byte" },
		{ "\xa9x", "\xef\xbf\xbdx", "lone continuation byte" },
		{ "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd", "overlong form" },
		{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", "UTF-16 surrogate" },
		{ "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
		  "past U+10FFFF" },
		{ "\xf0\x9f\x98\x80!", "\xf0\x9f\x98\x80!", "4-byte character kept" },
		{ "\xff", "\xef\xbf\xbd", "0xff" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		json_t *s = json_string_lossy(cases[i].in);

		check(s && !strcmp(json_string_value(s), cases[i].out), cases[i].what, "got %s",
		      s ? json_string_value(s) : "NULL");
		json_decref(s);
	}
	check(json_is_null(json_string_lossy(NULL)), "NULL becomes null", " ");
}

static void test_decoders(void)
{
	char b[64];

	check(!strcmp(kvm_exit_name(KVM_ISA_VMX, 30, b, sizeof(b)), "IO_INSTRUCTION"), "VMX 30", "%s", b);
	check(!strcmp(kvm_exit_name(KVM_ISA_VMX, 0x80000021, b, sizeof(b)),
		      "INVALID_STATE(ENTRY_FAIL)"), "VMX failed entry flag", "%s", b);
	check(!strcmp(kvm_exit_name(KVM_ISA_VMX, 49 | 0x10000, b, sizeof(b)), "EPT_MISCONFIG"),
	      "VMX reason uses the low 16 bits", "%s", b);
	check(!strcmp(kvm_exit_name(KVM_ISA_VMX, 200, b, sizeof(b)), "VMX_200"), "VMX unknown", "%s", b);
	check(!strcmp(kvm_exit_name(KVM_ISA_SVM, 0x10, b, sizeof(b)), "CR0_WRITE"), "SVM CR0 write", "%s", b);
	check(!strcmp(kvm_exit_name(KVM_ISA_SVM, 0x2f, b, sizeof(b)), "DR15_READ"), "SVM DR15 read", "%s", b);
	check(!strcmp(kvm_exit_name(KVM_ISA_SVM, 0x4e, b, sizeof(b)), "EXCP_14"), "SVM #PF", "%s", b);
	check(!strcmp(kvm_exit_name(KVM_ISA_SVM, 0x78, b, sizeof(b)), "HLT"), "SVM HLT", "%s", b);
	check(!strcmp(kvm_exit_name(KVM_ISA_SVM, 0x7b, b, sizeof(b)), "IOIO"), "SVM IOIO", "%s", b);
	check(!strcmp(kvm_exit_name(KVM_ISA_SVM, 0x403, b, sizeof(b)), "VMGEXIT"), "SVM VMGEXIT", "%s", b);
	check(!strcmp(kvm_exit_name(KVM_ISA_SVM, 0xffffffff, b, sizeof(b)), "ERR"), "SVM error", "%s", b);
	check(!strcmp(kvm_exit_name(KVM_ISA_SVM, 0x300, b, sizeof(b)), "SVM_0x300"), "SVM unknown", "%s", b);
	check(!strcmp(madvise_advice_name(23, b, sizeof(b)), "POPULATE_WRITE"), "advice 23", "%s", b);
	check(!strcmp(madvise_advice_name(7, b, sizeof(b)), "ADVICE_7"), "unknown advice", "%s", b);
	check(!strcmp(fallocate_mode_name(0, b, sizeof(b)), "ALLOCATE"), "mode 0", "%s", b);
	check(!strcmp(fallocate_mode_name(0x10 | 0x1000, b, sizeof(b)), "ZERO_RANGE|0x1000"),
	      "mode with unknown bit", "%s", b);
}

static void test_parsing(void)
{
	uint64_t v = 0;
	enum out_fmt fmt;

	check(parse_u64("interval", "-1", 1, 100, &v) < 0, "negative interval refused", " ");
	check(parse_u64("interval", "99999999999999999999999", 1, ~0ULL, &v) < 0,
	      "overflowing interval refused", " ");
	check(parse_u64("interval", "5x", 1, 100, &v) < 0, "trailing junk refused", " ");
	check(parse_u64("interval", "", 1, 100, &v) < 0, "empty refused", " ");
	check(parse_u64("interval", "0", 1, 100, &v) < 0, "below minimum refused", " ");
	check(!parse_u64("interval", "42", 1, 100, &v) && v == 42, "42 parsed", "v=%llu",
	      (unsigned long long)v);
	check(!parse_size("--mem", "2G", &v) && v == 2ULL << 30, "2G", "v=%llu", (unsigned long long)v);
	check(!parse_size("--mem", "512M", &v) && v == 512ULL << 20, "512M", " ");
	check(!parse_size("--mem", "64KB", &v) && v == 64ULL << 10, "64KB", " ");
	check(parse_size("--mem", "20000000000T", &v) < 0, "size overflow refused", " ");
	check(parse_size("--mem", "G", &v) < 0, "bare unit refused", " ");
	check(parse_size("--mem", "1.5G", &v) < 0, "fractional size refused", " ");
	check(!parse_seconds_ns("-d", "1.5", 0, ~0ULL, &v) && v == 1500000000ULL, "1.5 s", " ");
	check(parse_seconds_ns("-d", "-3", 0, ~0ULL, &v) < 0, "negative duration refused", " ");
	check(parse_seconds_ns("-d", "nan", 0, ~0ULL, &v) < 0, "nan duration refused", " ");
	check(parse_seconds_ns("-d", "0x1p3", 0, ~0ULL, &v) < 0, "hex float duration refused", " ");
	check(parse_seconds_ns("-d", "1e2", 0, ~0ULL, &v) < 0, "exponent duration refused", " ");
	check(parse_seconds_ns("-d", "inf", 0, ~0ULL, &v) < 0, "inf duration refused", " ");
	check(parse_seconds_ns("-d", ".", 0, ~0ULL, &v) < 0, "lone dot refused", " ");
	check(!parse_seconds_ns("-d", ".25", 0, ~0ULL, &v) && v == 250000000ULL, ".25 s", " ");
	check(!parse_seconds_ns("-d", "2.", 0, ~0ULL, &v) && v == 2000000000ULL, "2. s", " ");
	check(parse_size("--mem", "0x10M", &v) < 0, "hex size refused", " ");
	check(parse_out_fmt("yaml", 1 << OUT_TEXT | 1 << OUT_JSON, &fmt) < 0, "bad -o refused", " ");
	check(parse_out_fmt("csv", 1 << OUT_TEXT | 1 << OUT_JSON, &fmt) < 0,
	      "-o not offered by this command refused", " ");
	check(!parse_out_fmt("json", 1 << OUT_TEXT | 1 << OUT_JSON, &fmt) && fmt == OUT_JSON, "-o json", " ");
}

static void test_out_file(void)
{
	char dir[] = "/tmp/ht-unit-XXXXXX", path[64];
	struct out_file of;
	struct stat st;

	if (!check(mkdtemp(dir) != NULL, "temporary directory", "mkdtemp failed"))
		return;
	snprintf(path, sizeof(path), "%s/out.csv", dir);
	out_file_open(&of, path);
	fprintf(of.f, "partial");
	out_file_abort(&of);
	check(access(path, F_OK) != 0, "aborted output leaves no file", " ");
	check(rmdir(dir) == 0 && mkdir(dir, 0700) == 0, "aborted output leaves no temporary file",
	      " ");
	out_file_open(&of, path);
	fprintf(of.f, "done\n");
	check(!out_file_commit(&of) && access(path, F_OK) == 0, "committed output exists", " ");
	check(!stat(path, &st) && (st.st_mode & 0777) == (0666 & ~umask(022)),
	      "committed output has the usual mode", "mode %o", st.st_mode & 0777);
	check(out_file_open(&of, dir) == -EISDIR, "a directory is refused up front", " ");
	unlink(path);
	check(rmdir(dir) == 0, "commit leaves no temporary file", " ");
}

int main(void)
{
	plan(72); /* every check below runs unconditionally */
	test_log2_maths();
	test_print_width();
	test_hist_json();
	test_json_escaping();
	test_json_lossy();
	test_decoders();
	test_parsing();
	test_out_file();
	return check_exit();
}
