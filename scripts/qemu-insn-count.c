/*
 * A QEMU TCG plugin that counts executed guest instructions (all threads), optionally per symbol of the main
 * binary. Used by scripts/bench-arm.sh to measure instructions per token under qemu-user without a board.
 *
 * Arguments (qemu -plugin ./libinsncount.so,out=FILE[,symbols=on]):
 *   out=FILE      where to write the result (required): a line "total N", then with symbols=on one line
 *                 "N SYMBOL" per symbol, largest first ("?" for code outside the main binary's symbol table).
 *   symbols=on    also attribute instructions to the symbol of the first instruction of each translation block
 *                 (QEMU resolves symbols of the main executable only: link the measured program statically).
 *
 * Counts with inline additions where the plugin API has them in this form (version 1: QEMU 4.2 to 8.2) and with a
 * callback per executed block otherwise (the callback API is unchanged from 4.2 on), so it builds against any
 * qemu-plugin.h. Where the distribution ships no qemu-plugin.h (Debian does not), it is
 * compiled with the declarations below (-DINSNCOUNT_OWN_API -DINSNCOUNT_API_VERSION=N, N the plugin API version
 * the installed QEMU accepts; bench-arm.sh finds it from QEMU's answer).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef INSNCOUNT_OWN_API
/* The subset of QEMU's plugin API (qemu-plugin.h) this plugin calls, with the same C signatures. */
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const char *qemu_plugin_insn_symbol(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
#if INSNCOUNT_API_VERSION < 2
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
#endif
#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))
#define QEMU_PLUGIN_VERSION INSNCOUNT_API_VERSION
#else
#include <qemu-plugin.h>
#endif

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

/* One symbol's count (symbols=on). */
struct sym {
    char *name;
    uint64_t count;
    struct sym *next;
};

/* What one translated block adds when it runs. */
struct block {
    uint64_t n_insns;
    struct sym *sym;
};

#define N_BUCKETS 4096
static struct sym *buckets[N_BUCKETS];
static size_t n_syms;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t total;
static int by_symbol;
static char *out_path;

static unsigned hash(const char *s) {
    unsigned h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h % N_BUCKETS;
}

/* The counter of `name`, created on first use (translation time only, under table_lock). */
static struct sym *sym_for(const char *name) {
    unsigned h = hash(name);
    for (struct sym *s = buckets[h]; s; s = s->next)
        if (!strcmp(s->name, name)) return s;
    struct sym *s = calloc(1, sizeof *s);
    if (!s || !(s->name = strdup(name))) { perror("insncount"); abort(); }
    s->next = buckets[h];
    buckets[h] = s;
    n_syms++;
    return s;
}

#if QEMU_PLUGIN_VERSION >= 2
static void block_exec(unsigned int vcpu_index, void *userdata) {
    (void)vcpu_index;
    struct block *b = userdata;
    __atomic_fetch_add(&total, b->n_insns, __ATOMIC_RELAXED);
    if (b->sym) __atomic_fetch_add(&b->sym->count, b->n_insns, __ATOMIC_RELAXED);
}
#endif

static void block_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    struct block *b = calloc(1, sizeof *b);
    if (!b) { perror("insncount"); abort(); }
    b->n_insns = qemu_plugin_tb_n_insns(tb);
    if (by_symbol && b->n_insns > 0) {
        const char *name = qemu_plugin_insn_symbol(qemu_plugin_tb_get_insn(tb, 0));
        pthread_mutex_lock(&table_lock);
        b->sym = sym_for(name ? name : "?");
        pthread_mutex_unlock(&table_lock);
    }
#if QEMU_PLUGIN_VERSION < 2
    /* Plugin API 1 (QEMU 4.2 to 8.2): additions generated inline into the translated block, much faster than a
     * call per block. Not atomic: exact when one guest thread runs at a time (the benchmarks use one thread). */
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &total, b->n_insns);
    if (b->sym) qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->sym->count, b->n_insns);
#else
    qemu_plugin_register_vcpu_tb_exec_cb(tb, block_exec, QEMU_PLUGIN_CB_NO_REGS, b);
#endif
}

static int by_count_desc(const void *a, const void *b) {
    uint64_t x = (*(struct sym *const *)a)->count, y = (*(struct sym *const *)b)->count;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void at_exit(qemu_plugin_id_t id, void *userdata) {
    (void)id;
    (void)userdata;
    FILE *f = fopen(out_path, "w");
    if (!f) { perror(out_path); return; }
    fprintf(f, "total %llu\n", (unsigned long long)__atomic_load_n(&total, __ATOMIC_RELAXED));
    if (by_symbol) {
        struct sym **all = malloc((n_syms ? n_syms : 1) * sizeof *all);
        size_t n = 0;
        for (size_t i = 0; all && i < N_BUCKETS; i++)
            for (struct sym *s = buckets[i]; s; s = s->next) all[n++] = s;
        if (all) {
            qsort(all, n, sizeof *all, by_count_desc);
            for (size_t i = 0; i < n && all[i]->count > 0; i++)
                fprintf(f, "%llu %s\n", (unsigned long long)all[i]->count, all[i]->name);
            free(all);
        }
    }
    fclose(f);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (!strncmp(argv[i], "out=", 4)) out_path = strdup(argv[i] + 4);
        else if (!strcmp(argv[i], "symbols=on")) by_symbol = 1;
        else if (!strcmp(argv[i], "symbols=off")) by_symbol = 0;
        else { fprintf(stderr, "insncount: unknown argument '%s' (expected out=FILE, symbols=on|off)\n", argv[i]); return -1; }
    }
    if (!out_path) { fprintf(stderr, "insncount: the out=FILE argument is required\n"); return -1; }
    qemu_plugin_register_vcpu_tb_trans_cb(id, block_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
