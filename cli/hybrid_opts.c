/* cli/hybrid_opts.c: the one parser of the BM25 + dense fusion options that search, run,
 * embed search|run and serve share (--fusion, --dense-weight, --rrf-k, --depth, --ef), so
 * every command accepts the same spellings and ranges and prints the same errors. */
#include "config.h"

#include <string.h>

#include "cli/cli.h"

int cli_hybrid_opt(const char *cmd, unsigned accept, int argc, char **argv, int *i,
                   idx_hybrid_opts *hy, unsigned *given)
{
    /* --w-dense is the older spelling of --dense-weight in search, run and embed. */
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"--fusion", CLI_HY_FUSION},  {"--dense-weight", CLI_HY_WEIGHT},
                 {"--w-dense", CLI_HY_WEIGHT}, {"--rrf-k", CLI_HY_RRF_K},
                 {"--depth", CLI_HY_DEPTH},    {"--ef", CLI_HY_EF}};
    const char *a = argv[*i];
    unsigned which = 0;
    for (size_t k = 0; k < CW_ARRAY_LEN(names) && !which; k++) {
        which = strcmp(a, names[k].name) == 0 ? names[k].bit : 0;
    }
    if (!(which & accept)) {
        return 0;
    }
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "%s needs a value", a);
        return -1;
    }
    const char *v = argv[++*i];
    uint64_t u = 0;
    switch (which) {
    case CLI_HY_FUSION:
        if (strcmp(v, "rrf") == 0) {
            hy->fusion = IDX_FUSION_RRF;
        } else if (strcmp(v, "weighted") == 0) {
            hy->fusion = IDX_FUSION_WEIGHTED;
        } else {
            cli_usage_error(cmd, "--fusion expects rrf|weighted, got '%s'", v);
            return -1;
        }
        break;
    case CLI_HY_WEIGHT:
        if (!cli_parse_double(cmd, a, v, 0, 1, &hy->w_dense)) {
            return -1;
        }
        break;
    case CLI_HY_RRF_K:
        /* k > 0, as the server's config requires (1 / (k + rank) stays finite either way) */
        if (!cli_parse_double(cmd, a, v, 1e-9, 1e6, &hy->rrf_k)) {
            return -1;
        }
        break;
    case CLI_HY_DEPTH:
        if (!cli_parse_u64(cmd, a, v, 1, IDX_MAX_K, &u)) {
            return -1;
        }
        hy->depth = (uint32_t)u;
        break;
    default: /* CLI_HY_EF */
        if (!cli_parse_u64(cmd, a, v, 1, IDX_DENSE_MAX_EF, &u)) {
            return -1;
        }
        hy->ef = (uint32_t)u;
        break;
    }
    if (given) {
        *given |= which;
    }
    return 1;
}
