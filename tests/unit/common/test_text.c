/* Tests of common/text.c and common/hash.c: UTF-8 validation cases, buffers, CRC-32C. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <string.h>

#include "common/cw.h"

/* Parameters are copied into each test's process, so they hold arrays, not pointers. */
typedef struct utf8_case {
    char bytes[24];
    size_t len;
    bool valid;
    size_t bad_at;
} utf8_case;

ParameterizedTestParameters(cw_utf8, cases)
{
    static utf8_case cases[] = {
        {"plain ascii text", 16, true, 0},
        {"caf\xc3\xa9", 5, true, 0},
        {"\xe6\x97\xa5\xe6\x9c\xac", 6, true, 0},
        {"\xf0\x9f\x98\x80", 4, true, 0},
        {"ab\xc3", 3, false, 2},           /* truncated 2-byte sequence */
        {"\xc0\xaf", 2, false, 0},         /* overlong '/' */
        {"x\xed\xa0\x80", 4, false, 1},    /* UTF-16 surrogate */
        {"\xf4\x90\x80\x80", 4, false, 0}, /* above U+10FFFF */
        {"abcdefgh\xff", 9, false, 8},     /* invalid byte after the ASCII fast path */
        {"\xe2\x82", 2, false, 0},         /* truncated 3-byte sequence */
    };
    return cr_make_param_array(utf8_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(utf8_case *c, cw_utf8, cases)
{
    size_t bad = 999;
    bool ok = cw_utf8_valid(c->bytes, c->len, &bad);
    cr_assert(eq(int, ok, c->valid), "case '%s'", c->bytes);
    if (!c->valid) {
        cr_expect(eq(sz, bad, c->bad_at));
    }
}

Test(cw_crc32c, matches_the_standard_check_value)
{
    /* RFC 3720 check value of CRC-32C over "123456789". */
    cr_assert(eq(u32, cw_crc32c(0, "123456789", 9), 0xE3069283u));
    uint32_t part = cw_crc32c(0, "1234", 4);
    cr_expect(eq(u32, cw_crc32c(part, "56789", 5), 0xE3069283u));
}

Test(cw_buf, printf_grows_past_the_stack_buffer)
{
    cw_buf b = {0};
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert(eq(int, cw_buf_printf(&b, "%s-%d", big, 42), CW_OK));
    cr_expect(eq(sz, b.len, sizeof big - 1 + 3));
    cr_expect(eq(str, b.data + b.len - 3, "-42"));
    cw_buf_fini(&b);
}

Test(cw_fmt_double_exact, shortest_form_that_reads_back)
{
    char b[CW_DOUBLE_BUF];
    cr_expect(eq(str, (char *)cw_fmt_double_exact(0.5, b), "0.5"));
    cr_expect(eq(str, (char *)cw_fmt_double_exact(60, b), "60"));
    cr_expect(eq(str, (char *)cw_fmt_double_exact(1.5e-5, b), "1.5e-05"));
    /* %g rounds to 6 digits: 0.30000001 would print as 0.3, another policy's name */
    cr_expect(eq(str, (char *)cw_fmt_double_exact(0.30000001, b), "0.30000000999999998"));
    double v[] = {0.1 + 0.2, 1.0 / 3, 6.02214076e23, -0.0, 5e-324, 1.7976931348623157e308};
    for (size_t i = 0; i < CW_ARRAY_LEN(v); i++) {
        cr_expect(eq(dbl, strtod(cw_fmt_double_exact(v[i], b), NULL), v[i]), "%.17g -> %s", v[i],
                  b);
    }
}

Test(cw_err, set_and_prefix_keep_code_and_compose_message)
{
    cw_err e;
    cw_err_clear(&e);
    int rc = cw_err_set(&e, CW_EPARSE, "%s:%d: expected string", "a.jsonl", 3);
    cr_assert(eq(int, rc, CW_EPARSE));
    cw_err_prefix(&e, "index build: ");
    cr_expect(eq(str, e.msg, "index build: a.jsonl:3: expected string"));
    cr_expect(eq(str, (char *)cw_strerror(CW_ENOTFOUND), "ENOTFOUND"));
}

Test(cw_stats, quantiles_interpolate)
{
    double x[] = {5, 1, 3, 2, 4};
    cr_expect(epsilon_eq(dbl, cw_median(x, 5), 3.0, 1e-12));
    cr_expect(epsilon_eq(dbl, cw_quantile(x, 5, 0.9), 4.6, 1e-12));
    cr_expect(epsilon_eq(dbl, cw_median(x, 0), 0.0, 1e-12));
}
