#include "safe_text.h"

#include <stdbool.h>

enum esc_state { TEXT, ESC, CSI, STRING, STRING_ESC };

char *term_safe(char *dst, size_t len, const char *src, size_t srclen)
{
	enum esc_state st = TEXT;
	size_t o = 0;

	if (!len)
		return dst;
	for (size_t i = 0; i < srclen && o + 1 < len; i++) {
		unsigned char ch = src[i];

		switch (st) {
		case ESC:
			if (ch == '[')
				st = CSI;
			else if (ch == ']' || ch == 'P' || ch == 'X' || ch == '^' || ch == '_')
				st = STRING; /* OSC, DCS, SOS, PM, APC: up to BEL or ESC \ */
			else if (ch < 0x20 || ch > 0x2f)
				st = TEXT; /* a final byte; 0x20-0x2f are intermediates */
			continue;
		case CSI:
			if (ch >= 0x40 && ch <= 0x7e)
				st = TEXT;
			continue;
		case STRING:
			if (ch == 0x07)
				st = TEXT;
			else if (ch == 0x1b)
				st = STRING_ESC;
			continue;
		case STRING_ESC:
			st = ch == '\\' ? TEXT : STRING;
			continue;
		case TEXT:
			break;
		}
		if (ch == 0x1b) {
			st = ESC;
		} else if (ch == '\t' || ch == '\n') {
			dst[o++] = ' ';
		} else if (ch < 0x20 || ch == 0x7f) {
			dst[o++] = '?';
		} else if (ch == 0xc2 && i + 1 < srclen && (unsigned char)src[i + 1] >= 0x80 &&
			   (unsigned char)src[i + 1] <= 0x9f) {
			dst[o++] = '?'; /* a C1 control (U+0080-U+009F), e.g. the 8-bit CSI */
			i++;
		} else {
			dst[o++] = ch;
		}
	}
	dst[o] = 0;
	return dst;
}
