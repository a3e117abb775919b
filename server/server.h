/* server/server.h: the HTTP search server (libmicrohttpd): routes, request and
 * response JSON, metrics, hot reload; logs impressions and events through causal/'s
 * log store on a writer thread. */
#ifndef CAUSEWAY_SERVER_SERVER_H
#define CAUSEWAY_SERVER_SERVER_H

#include "causal/causal.h"
#include "common/cw.h"
#include "index/index.h"
#include "ranker/ranker.h"

#endif /* CAUSEWAY_SERVER_SERVER_H */
