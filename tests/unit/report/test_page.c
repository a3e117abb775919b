/* Tests of server/page.c's embedded search page (it lives in server/ but belongs to the
 * ui work with report/): self-contained, accessible markup and the click beacon, checked
 * without a browser so they run where tests/e2e skips. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>

#include "server/server_int.h"

static const char *page(void)
{
    size_t len = 0;
    const char *p = srv_page_html(&len);
    cr_assert(eq(sz, strlen(p), len), "the page is one NUL-free string");
    return p;
}

Test(srv_page, loads_nothing_from_elsewhere)
{
    const char *p = page();
    cr_expect(strncmp(p, "<!doctype html>", 15) == 0);
    cr_expect(strstr(p, "http://") == NULL);
    cr_expect(strstr(p, "https://") == NULL);
    cr_expect(strstr(p, "<link") == NULL);
    cr_expect(strstr(p, "<script src") == NULL);
    cr_expect(strstr(p, "@import") == NULL);
    cr_expect(strstr(p, "url(") == NULL);
}

Test(srv_page, labels_the_query_box_and_shows_focus)
{
    const char *p = page();
    cr_expect(strstr(p, "<html lang=\"en\">") != NULL);
    cr_expect(strstr(p, "<label for=\"q\">") != NULL);
    cr_expect(strstr(p, "<input id=\"q\" name=\"q\" type=\"search\"") != NULL);
    cr_expect(strstr(p, "role=\"search\"") != NULL);
    cr_expect(strstr(p, "aria-live=\"polite\"") != NULL);
    cr_expect(strstr(p, ":focus-visible{outline") != NULL);
}

Test(srv_page, reports_clicks_with_impression_and_position_by_beacon)
{
    const char *p = page();
    cr_expect(strstr(p, "navigator.sendBeacon('/events'") != NULL);
    cr_expect(strstr(p, "keepalive: true") != NULL);
    cr_expect(strstr(p, "impression_id: imp") != NULL);
    cr_expect(strstr(p, "position: pos") != NULL);
    cr_expect(strstr(p, "type: 'click'") != NULL);
    cr_expect(strstr(p, "cache: 'no-store'") != NULL);
}
