/*
 * Tests of the C API against the built library with the real SmolLM2 model: happy paths and every error path
 * (NULL arguments, bad paths, malformed files, tiny buffers, invalid UTF-8, context overflow, cancellation from
 * another thread, callback stop, state save/load). Run under ASan+UBSan (make test-c) and valgrind.
 * `--quick` skips the slower cases (used for the static-link and valgrind runs).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "picolm.h"
#include "golden.h"

static int failures = 0, passes = 0;
#define CHECK(cond)                                                                                  \
    do {                                                                                             \
        if (cond) passes++;                                                                          \
        else { failures++; fprintf(stderr, "FAIL %s:%d: %s (%s)\n", __FILE__, __LINE__, #cond, picolm_last_error_message()); } \
    } while (0)

static char model_path[4096];

struct collect { char text[65536]; size_t len; int pieces; int stop_after; };

static bool collect_piece(const char *utf8, size_t len, void *user_data) {
    struct collect *c = user_data;
    if (c->len + len < sizeof c->text) { memcpy(c->text + c->len, utf8, len); c->len += len; c->text[c->len] = 0; }
    c->pieces++;
    /* pieces are whole UTF-8 characters: never end on a lead or continuation byte that is incomplete */
    return c->stop_after == 0 || c->pieces < c->stop_after;
}

/* Whether the library was built with optional part `name` (picolm_features()). */
static bool has_feature(const char *name) {
    const char *f = picolm_features();
    size_t n = strlen(name);
    for (const char *p = strstr(f, name); p; p = strstr(p + 1, name))
        if ((p == f || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ')) return true;
    return false;
}

static void test_errors_without_model(void) {
    picolm_model *m = (picolm_model *)0x1;
    CHECK(picolm_model_load(NULL, NULL, &m) == PICOLM_ERR_NULL_ARG && m == NULL);
    CHECK(picolm_model_load("/nonexistent/x.gguf", NULL, &m) == PICOLM_ERR_IO && m == NULL);
    CHECK(strstr(picolm_last_error_message(), "/nonexistent/x.gguf") != NULL);
    CHECK(picolm_model_load("/tmp", NULL, &m) == PICOLM_ERR_IO);
    CHECK(picolm_model_load("x", NULL, NULL) == PICOLM_ERR_NULL_ARG);
    char bad[] = "/tmp/picolm-bad-XXXXXX";
    int fd = mkstemp(bad);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK(write(fd, "GGUF\x03\x00\x00\x00garbage", 15) == 15);
        close(fd);
        CHECK(picolm_model_load(bad, NULL, &m) == PICOLM_ERR_BAD_FILE);
        unlink(bad);
    }
    picolm_model_params p;
    CHECK(picolm_model_params_default(NULL) == PICOLM_ERR_NULL_ARG);
    CHECK(picolm_model_params_default(&p) == PICOLM_OK);
    p.struct_size = 3;
    CHECK(picolm_model_load(model_path, &p, &m) == PICOLM_ERR_INVALID_ARG);
    picolm_model_free(NULL);
    picolm_session_free(NULL);
    CHECK(picolm_session_cancel(NULL) == PICOLM_ERR_NULL_ARG);
    CHECK(strlen(picolm_strerror(PICOLM_ERR_BUFFER_TOO_SMALL)) > 0);
    CHECK(strcmp(picolm_version(), "0.1.0") == 0);
}

/* Little-endian GGUF fields, for crafting model files. */
static void put_u32(FILE *f, uint32_t v) { for (int i = 0; i < 4; i++) fputc((int)(v >> (8 * i)) & 0xff, f); }
static void put_u64(FILE *f, uint64_t v) { for (int i = 0; i < 8; i++) fputc((int)(v >> (8 * i)) & 0xff, f); }
static void put_str(FILE *f, const char *s) { put_u64(f, strlen(s)); fputs(s, f); }
static void put_kv_u32(FILE *f, const char *k, uint32_t v) { put_str(f, k); put_u32(f, 4); put_u32(f, v); }
static void put_kv_str(FILE *f, const char *k, const char *v) { put_str(f, k); put_u32(f, 8); put_str(f, v); }

/* A small llama file whose one tensor (the token embedding) is valid but whose block count is 2^28: loading it
 * must be PICOLM_ERR_BAD_FILE naming block_count, not an allocation abort (issue #17.1). */
static void test_huge_block_count(void) {
    char path[] = "/tmp/picolm-blocks-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    FILE *f = fdopen(fd, "wb");
    fputs("GGUF", f);
    put_u32(f, 3);
    put_u64(f, 1); /* tensors */
    put_u64(f, 7); /* metadata pairs */
    put_kv_str(f, "general.architecture", "llama");
    put_kv_u32(f, "llama.embedding_length", 8);
    put_kv_u32(f, "llama.block_count", 1u << 28);
    put_kv_u32(f, "llama.attention.head_count", 2);
    put_kv_u32(f, "llama.feed_forward_length", 16);
    put_kv_str(f, "tokenizer.ggml.model", "gpt2");
    put_str(f, "tokenizer.ggml.tokens");
    put_u32(f, 9); /* array */
    put_u32(f, 8); /* of strings */
    put_u64(f, 4);
    put_str(f, "a"); put_str(f, "b"); put_str(f, "c"); put_str(f, "d");
    put_str(f, "token_embd.weight");
    put_u32(f, 2);
    put_u64(f, 8);
    put_u64(f, 4);
    put_u32(f, 0); /* F32 */
    put_u64(f, 0);
    while (ftell(f) % 32) fputc(0, f);
    for (int i = 0; i < 8 * 4; i++) put_u32(f, 0);
    CHECK(fclose(f) == 0);
    picolm_model *m = (picolm_model *)0x1;
    CHECK(picolm_model_load(path, NULL, &m) == PICOLM_ERR_BAD_FILE && m == NULL);
    CHECK(strstr(picolm_last_error_message(), "block_count") != NULL);
    CHECK(strstr(picolm_last_error_message(), "268435456") != NULL);
    unlink(path);
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* A context whose KV cache (about 22 GB for SmolLM2 at 2^20 positions) cannot be allocated under a 2 GB address
 * space limit: PICOLM_ERR_OUT_OF_MEMORY with the size, not an abort (issue #17.3). Runs in a forked child with
 * RLIMIT_AS; skipped under AddressSanitizer and valgrind, whose own reservations exceed any such limit (the
 * uninstrumented static build runs it). Call before any model is loaded (the process is then single-threaded). */
static void test_out_of_memory(void) {
#ifdef UNDER_ASAN
    fprintf(stderr, "test_out_of_memory: skipped under AddressSanitizer\n");
#else
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload")) { fprintf(stderr, "test_out_of_memory: skipped under valgrind\n"); return; }
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        struct rlimit lim = { 2UL << 30, 2UL << 30 };
        if (setrlimit(RLIMIT_AS, &lim) != 0) _exit(10);
        picolm_model_params mp;
        picolm_model_params_default(&mp);
        mp.n_threads = 1;
        mp.n_ctx = 1u << 20;
        picolm_model *m = NULL;
        if (picolm_model_load(model_path, &mp, &m) != PICOLM_OK) { fprintf(stderr, "%s\n", picolm_last_error_message()); _exit(11); }
        picolm_session *s = (picolm_session *)0x1;
        picolm_result r = picolm_session_new(m, NULL, &s);
        const char *msg = picolm_last_error_message();
        fprintf(stderr, "session at 2^20 positions under RLIMIT_AS 2 GiB: %s: %s\n", picolm_strerror(r), msg);
        int ok = r == PICOLM_ERR_OUT_OF_MEMORY && s == NULL && strstr(msg, "KV cache") && strstr(msg, "bytes");
        /* The library is still usable: a small session works in the same process. */
        picolm_session_params sp;
        picolm_session_params_default(&sp);
        sp.n_ctx = 64;
        picolm_session *small = NULL;
        ok = ok && picolm_session_new(m, &sp, &small) == PICOLM_OK;
        picolm_session_free(small);
        picolm_model_free(m);
        _exit(ok ? 0 : 12);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fprintf(stderr, "out-of-memory child: %s %d\n", WIFEXITED(status) ? "exit" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
#endif
}

static void test_tokens(picolm_model *m) {
    uint32_t ids[64];
    size_t n = 0;
    const char *p = GOLDEN_PROMPT;
    CHECK(picolm_tokenize(m, p, strlen(p), true, true, ids, 64, &n) == PICOLM_OK);
    CHECK(n == sizeof GOLDEN_PROMPT_IDS / sizeof GOLDEN_PROMPT_IDS[0]);
    CHECK(memcmp(ids, GOLDEN_PROMPT_IDS, sizeof GOLDEN_PROMPT_IDS) == 0);
    size_t n2 = 0;
    CHECK(picolm_tokenize(m, p, strlen(p), true, true, ids, 2, &n2) == PICOLM_ERR_BUFFER_TOO_SMALL && n2 == n);
    CHECK(picolm_tokenize(m, "\xff\xfe", 2, true, true, ids, 64, &n2) == PICOLM_ERR_INVALID_UTF8);
    CHECK(picolm_tokenize(NULL, p, 1, true, true, ids, 64, &n2) == PICOLM_ERR_NULL_ARG);
    CHECK(picolm_tokenize(m, NULL, 5, true, true, ids, 64, &n2) == PICOLM_ERR_NULL_ARG);
    char text[256];
    size_t need = 0;
    CHECK(picolm_detokenize(m, ids, n, false, text, sizeof text, &need) == PICOLM_OK);
    CHECK(strcmp(text, p) == 0 && need == strlen(p) + 1);
    CHECK(picolm_detokenize(m, ids, n, false, text, 3, &need) == PICOLM_ERR_BUFFER_TOO_SMALL && need == strlen(p) + 1);
    uint32_t bad_id = 99999999u;
    CHECK(picolm_detokenize(m, &bad_id, 1, false, text, sizeof text, &need) == PICOLM_ERR_INVALID_ARG);
    char meta[128];
    CHECK(picolm_model_meta(m, "general.architecture", meta, sizeof meta, &need) == PICOLM_OK && strcmp(meta, "llama") == 0);
    CHECK(picolm_model_meta(m, "no.such.key", meta, sizeof meta, &need) == PICOLM_ERR_NOT_FOUND);
    CHECK(picolm_model_meta(m, "general.architecture", meta, 2, &need) == PICOLM_ERR_BUFFER_TOO_SMALL && need == 6);
    picolm_model_info info;
    CHECK(picolm_model_get_info(m, &info) == PICOLM_OK && info.n_vocab == 49152 && info.n_layer == 30);
}

static void test_generate(picolm_model *m) {
    picolm_session *s = NULL;
    CHECK(picolm_session_new(m, NULL, &s) == PICOLM_OK && s);
    picolm_generate_params gp;
    picolm_generate_params_default(&gp);
    gp.max_tokens = 8;
    struct collect c = {0};
    picolm_generation_info gi;
    const char *p = GOLDEN_PROMPT;
    CHECK(picolm_session_generate(s, p, strlen(p), &gp, collect_piece, &c, &gi) == PICOLM_OK);
    CHECK(gi.n_generated == 8 && gi.stop_reason == PICOLM_STOP_MAX_TOKENS && gi.n_prompt == 5);
    /* The streamed text equals the golden ids' text. */
    char want[1024];
    size_t need = 0;
    picolm_detokenize(m, GOLDEN_Q4_1_IDS, 8, false, want, sizeof want, &need);
    CHECK(strcmp(c.text, want) == 0);
    if (strcmp(c.text, want) != 0) fprintf(stderr, "  got %s\n  want %s\n", c.text, want);

    /* Second turn reuses the cached prompt. */
    struct collect c2 = {0};
    CHECK(picolm_session_generate(s, p, strlen(p), &gp, collect_piece, &c2, &gi) == PICOLM_OK);
    CHECK(gi.n_reused == 4 && strcmp(c2.text, c.text) == 0);

    /* Callback stop. */
    struct collect c3 = {0};
    c3.stop_after = 2;
    gp.max_tokens = 20;
    CHECK(picolm_session_generate(s, p, strlen(p), &gp, collect_piece, &c3, &gi) == PICOLM_OK);
    CHECK(gi.stop_reason == PICOLM_STOP_CALLBACK && c3.pieces == 2);

    /* Stop strings are not delivered. */
    const char *stops[] = {"France"};
    gp.stop = stops;
    gp.n_stop = 1;
    gp.max_tokens = 30;
    struct collect c4 = {0};
    CHECK(picolm_session_generate(s, p, strlen(p), &gp, collect_piece, &c4, &gi) == PICOLM_OK);
    CHECK(strstr(c4.text, "France") == NULL);
    gp.stop = NULL;
    gp.n_stop = 0;

    /* Errors. */
    CHECK(picolm_session_generate(s, "\xc3", 1, &gp, NULL, NULL, NULL) == PICOLM_ERR_INVALID_UTF8);
    CHECK(picolm_session_generate(NULL, p, 1, &gp, NULL, NULL, NULL) == PICOLM_ERR_NULL_ARG);
    gp.struct_size = 1;
    CHECK(picolm_session_generate(s, p, strlen(p), &gp, NULL, NULL, NULL) == PICOLM_ERR_INVALID_ARG);
    picolm_generate_params_default(&gp);
    gp.sampler.temperature = 0.0f / 0.0f;
    CHECK(picolm_session_generate(s, p, strlen(p), &gp, NULL, NULL, NULL) == PICOLM_ERR_INVALID_ARG);
    picolm_generate_params_default(&gp);

    /* State save/load round trip into a fresh session gives the same continuation. */
    picolm_session *s2 = NULL;
    CHECK(picolm_session_new(m, NULL, &s2) == PICOLM_OK);
    if (has_feature("state")) {
        char path[] = "/tmp/picolm-state-XXXXXX";
        int fd = mkstemp(path);
        close(fd);
        CHECK(picolm_session_save_state(s, path) == PICOLM_OK);
        CHECK(picolm_session_load_state(s2, path) == PICOLM_OK);
        size_t n1 = 0, n2 = 0;
        picolm_session_n_tokens(s, &n1);
        picolm_session_n_tokens(s2, &n2);
        CHECK(n1 == n2 && n1 > 0);
        FILE *f = fopen(path, "r+b");
        if (f) { fseek(f, 0, SEEK_SET); fputc('X', f); fclose(f); }
        CHECK(picolm_session_load_state(s2, path) == PICOLM_ERR_STATE);
        CHECK(picolm_session_load_state(s2, "/nonexistent/state") == PICOLM_ERR_IO);
        unlink(path);
    }
    picolm_memory_report mem;
    CHECK(picolm_session_memory(s, &mem) == PICOLM_OK && mem.peak_rss > 0 && mem.kv_bytes > 0);
    picolm_session_free(s2);
    picolm_session_free(s);
}

static void test_context_overflow(picolm_model *m) {
    picolm_session_params sp;
    picolm_session_params_default(&sp);
    sp.n_ctx = 16;
    picolm_session *s = NULL;
    CHECK(picolm_session_new(m, &sp, &s) == PICOLM_OK);
    const char *longp = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen";
    CHECK(picolm_session_generate(s, longp, strlen(longp), NULL, NULL, NULL, NULL) == PICOLM_ERR_CONTEXT_OVERFLOW);
    CHECK(strstr(picolm_last_error_message(), "16") != NULL);
    sp.n_ctx = 100000000;
    picolm_session *s2 = NULL;
    CHECK(picolm_session_new(m, &sp, &s2) == PICOLM_ERR_INVALID_ARG && s2 == NULL);
    picolm_session_free(s);
}

struct cancel_arg { picolm_session *s; };

static void *cancel_later(void *arg) {
    struct cancel_arg *a = arg;
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    picolm_session_cancel(a->s);
    return NULL;
}

static void test_cancel(picolm_model *m) {
    picolm_session *s = NULL;
    CHECK(picolm_session_new(m, NULL, &s) == PICOLM_OK);
    picolm_generate_params gp;
    picolm_generate_params_default(&gp);
    gp.max_tokens = 100000;
    gp.sampler.temperature = 0.8f;
    gp.ignore_eog = true;
    pthread_t t;
    struct cancel_arg a = {s};
    pthread_create(&t, NULL, cancel_later, &a);
    picolm_generation_info gi;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(picolm_session_generate(s, "Tell me a long story.", 21, &gp, NULL, NULL, &gi) == PICOLM_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(t, NULL);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(gi.stop_reason == PICOLM_STOP_CANCELLED);
    CHECK(secs < 30.0);
    picolm_session_free(s);
}


/* Checks that `text` is one JSON object with the given keys, by a tiny independent scan (no grammar code). */
static bool looks_like_object_with(const char *text, const char *key1, const char *key2) {
    const char *a = text;
    while (*a == ' ' || *a == '\n') a++;
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\n')) n--;
    return *a == '{' && n > 0 && text[n - 1] == '}' && strstr(text, key1) && (!key2 || strstr(text, key2));
}

static void test_json_and_chat(picolm_model *m) {
    picolm_session *s = NULL;
    CHECK(picolm_session_new(m, NULL, &s) == PICOLM_OK);
    picolm_chat_message msg = { .role = "user", .content = "Describe a cat named Tom, aged 3, as JSON." };
    char prompt[1024];
    size_t need = 0;
    CHECK(picolm_chat_apply_template(m, &msg, 1, true, prompt, sizeof prompt, &need) == PICOLM_OK);
    CHECK(strstr(prompt, "<|im_start|>user\nDescribe") != NULL && strstr(prompt, "<|im_start|>assistant\n") != NULL);
    CHECK(picolm_chat_apply_template(m, &msg, 1, true, prompt, 4, &need) == PICOLM_ERR_BUFFER_TOO_SMALL && need > 4);
    picolm_chat_message bad_role = { .role = "robot", .content = "x" };
    CHECK(picolm_chat_apply_template(m, &bad_role, 1, true, prompt, sizeof prompt, &need) == PICOLM_ERR_INVALID_ARG);
    CHECK(strstr(picolm_last_error_message(), "robot") != NULL);
    CHECK(picolm_chat_apply_template(m, NULL, 1, true, prompt, sizeof prompt, &need) == PICOLM_ERR_NULL_ARG);
    CHECK(picolm_chat_apply_template(m, &msg, 1, true, prompt, sizeof prompt, &need) == PICOLM_OK);

    picolm_generate_params gp;
    picolm_generate_params_default(&gp);
    gp.max_tokens = 64;
    gp.json_schema = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\"}},"
                     "\"required\":[\"name\",\"age\"]}";
    struct collect c;
    memset(&c, 0, sizeof c);
    picolm_generation_info gi;
    CHECK(picolm_session_generate(s, prompt, strlen(prompt), &gp, collect_piece, &c, &gi) == PICOLM_OK);
    CHECK(gi.stop_reason == PICOLM_STOP_GRAMMAR_COMPLETE);
    CHECK(looks_like_object_with(c.text, "\"name\"", "\"age\""));
    printf("  schema output: %s\n", c.text);

    /* JSON object mode: a compact object, whatever the sampling. */
    gp.json_schema = NULL;
    gp.json_mode = PICOLM_JSON_OBJECT;
    gp.sampler.temperature = 1.0f;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        gp.sampler.seed = seed;
        struct collect c2;
        memset(&c2, 0, sizeof c2);
        CHECK(picolm_session_generate(s, prompt, strlen(prompt), &gp, collect_piece, &c2, &gi) == PICOLM_OK);
        CHECK(gi.stop_reason == PICOLM_STOP_GRAMMAR_COMPLETE);
        CHECK(gi.n_generated <= 64);
        CHECK(c2.text[0] == '{' && c2.len > 1 && c2.text[c2.len - 1] == '}' && strchr(c2.text, '\n') == NULL);
    }
    /* Any-value mode, and values outside picolm_json_mode. */
    gp.json_mode = PICOLM_JSON_VALUE;
    CHECK(picolm_session_generate(s, prompt, strlen(prompt), &gp, NULL, NULL, &gi) == PICOLM_OK);
    gp.json_mode = 3;
    CHECK(picolm_session_generate(s, prompt, strlen(prompt), &gp, NULL, NULL, NULL) == PICOLM_ERR_INVALID_ARG);
    CHECK(strstr(picolm_last_error_message(), "json_mode is 3") != NULL);
    gp.json_mode = (uint32_t)-1;
    CHECK(picolm_session_generate(s, prompt, strlen(prompt), &gp, NULL, NULL, NULL) == PICOLM_ERR_INVALID_ARG);

    gp.json_mode = PICOLM_JSON_OFF;
    gp.json_schema = "{\"type\":\"string\",\"pattern\":\"^a\"}";
    CHECK(picolm_session_generate(s, prompt, strlen(prompt), &gp, NULL, NULL, NULL) == PICOLM_ERR_GRAMMAR);
    CHECK(strstr(picolm_last_error_message(), "pattern") != NULL);
    /* A schema wins over the JSON mode (the schema's error, not the mode's object), and the mode is still checked. */
    gp.json_mode = PICOLM_JSON_OBJECT;
    CHECK(picolm_session_generate(s, prompt, strlen(prompt), &gp, NULL, NULL, NULL) == PICOLM_ERR_GRAMMAR);
    gp.json_mode = 3;
    CHECK(picolm_session_generate(s, prompt, strlen(prompt), &gp, NULL, NULL, NULL) == PICOLM_ERR_INVALID_ARG);
    gp.json_mode = PICOLM_JSON_OFF;
    gp.json_schema = "{not json";
    CHECK(picolm_session_generate(s, prompt, strlen(prompt), &gp, NULL, NULL, NULL) == PICOLM_ERR_GRAMMAR);
    gp.json_schema = "{\"type\":\"\xff\"}";
    CHECK(picolm_session_generate(s, prompt, strlen(prompt), &gp, NULL, NULL, NULL) == PICOLM_ERR_INVALID_UTF8);
    gp.json_schema = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},\"required\":[\"a\"]}";
    gp.max_tokens = 3;
    CHECK(picolm_session_generate(s, prompt, strlen(prompt), &gp, NULL, NULL, NULL) == PICOLM_ERR_BUDGET);
    CHECK(strstr(picolm_last_error_message(), "too small") != NULL);
    CHECK(strstr(picolm_strerror(PICOLM_ERR_BUDGET), "budget") != NULL);
    /* A schema whose shortest value is astronomically long is refused, not wrapped around to "fits". */
    gp.json_schema = "{\"type\":\"array\",\"minItems\":4294967294,\"items\":{\"type\":\"array\",\"minItems\":4294967294,"
                     "\"items\":{\"type\":\"integer\"}}}";
    gp.max_tokens = 64;
    CHECK(picolm_session_generate(s, prompt, strlen(prompt), &gp, NULL, NULL, NULL) == PICOLM_ERR_BUDGET);
    picolm_session_free(s);
}

struct relay_state { int calls; int last_id; bool last_on; };

/* set_relay handler: a tiny parse of {"id":N,"on":B} written for the test. */
static void set_relay(const char *args, size_t len, picolm_tool_result *result, void *user_data) {
    struct relay_state *st = user_data;
    st->calls++;
    const char *id = strstr(args, "\"id\":");
    st->last_id = id ? atoi(id + 5) : -1;
    st->last_on = strstr(args, "true") != NULL;
    char out[64];
    snprintf(out, sizeof out, "relay %d is now %s", st->last_id, st->last_on ? "on" : "off");
    CHECK(len == strlen(args));
    picolm_tool_result_set(result, out, strlen(out), false);
}

static void failing_sensor(const char *args, size_t len, picolm_tool_result *result, void *user_data) {
    (void)args; (void)len; (void)user_data;
    const char *e = "sensor bus timeout";
    picolm_tool_result_set(result, e, strlen(e), true);
}

/* read_log handler: a 1 MB result. */
static void huge_log(const char *args, size_t len, picolm_tool_result *result, void *user_data) {
    (void)args; (void)len; (void)user_data;
    size_t n = 1 << 20;
    char *text = malloc(n);
    if (!text) return;
    for (size_t i = 0; i < n; i++) text[i] = "kernel: usb 1-1: new device\n"[i % 28];
    CHECK(picolm_tool_result_set(result, text, n, false) == PICOLM_OK);
    free(text);
}

struct event_log { int calls, results, pieces, truncated; bool saw_error; char answer[512]; };

static bool on_agent_event(const picolm_agent_event *ev, void *user_data) {
    struct event_log *log = user_data;
    if (ev->kind == PICOLM_EVENT_TOOL_CALL) { log->calls++; printf("  [call] %s(%s)\n", ev->tool_name, ev->text); }
    if (ev->kind == PICOLM_EVENT_TOOL_RESULT) {
        log->results++;
        log->saw_error |= ev->is_error;
        log->truncated += ev->truncated;
        printf("  [result] %s -> %.200s%s%s\n", ev->tool_name, ev->text, ev->is_error ? " (error)" : "",
               ev->truncated ? " (truncated)" : "");
    }
    if (ev->kind == PICOLM_EVENT_ANSWER_PIECE) {
        log->pieces++;
        strncat(log->answer, ev->text, sizeof log->answer - strlen(log->answer) - 1);
    }
    return true;
}


/* Every function is exported in every feature set; those of a left-out feature return PICOLM_ERR_UNSUPPORTED with
 * a message naming the feature. */
static void test_features(picolm_model *m) {
    const char *f = picolm_features();
    CHECK(f != NULL);
    printf("features: \"%s\"\n", f);
    if (!has_feature("quantize")) {
        CHECK(picolm_model_quantize(model_path, "/tmp/picolm-never-written.gguf", "q8_0", NULL, NULL) == PICOLM_ERR_UNSUPPORTED);
        CHECK(strstr(picolm_last_error_message(), "`quantize` feature") != NULL);
        CHECK(access("/tmp/picolm-never-written.gguf", F_OK) != 0);
    }
    if (!has_feature("agent")) {
        picolm_agent *a = NULL;
        CHECK(picolm_agent_new(m, &a) == PICOLM_ERR_UNSUPPORTED && a == NULL);
        CHECK(strstr(picolm_last_error_message(), "`agent` feature") != NULL);
        picolm_agent_params ap;
        CHECK(picolm_agent_params_default(&ap) == PICOLM_ERR_UNSUPPORTED);
        CHECK(strcmp(picolm_agent_stop_name(PICOLM_AGENT_ANSWERED), "answered") == 0);
    }
    if (!has_feature("bench")) {
        size_t needed = 0;
        CHECK(picolm_bench(model_path, NULL, false, NULL, 0, &needed) == PICOLM_ERR_UNSUPPORTED);
        CHECK(strstr(picolm_last_error_message(), "`bench` feature") != NULL);
        picolm_bench_params bp;
        CHECK(picolm_bench_params_default(&bp) == PICOLM_OK); /* the settings stay */
    }
    if (!has_feature("state")) {
        /* The arguments are checked first; then the state functions refuse without touching the file. */
        const char *never = "/tmp/picolm-never-written.state";
        CHECK(picolm_state_check_path(NULL) == PICOLM_ERR_NULL_ARG);
        CHECK(picolm_state_check_path(never) == PICOLM_ERR_UNSUPPORTED);
        CHECK(strstr(picolm_last_error_message(), "`state` feature") != NULL);
        picolm_session *s = NULL;
        CHECK(picolm_session_new(m, NULL, &s) == PICOLM_OK);
        CHECK(picolm_session_save_state(s, never) == PICOLM_ERR_UNSUPPORTED);
        CHECK(picolm_session_load_state(s, never) == PICOLM_ERR_UNSUPPORTED);
        CHECK(access(never, F_OK) != 0);
        picolm_session_free(s);
    }
    if (!has_feature("json-schema")) {
        picolm_session *s = NULL;
        CHECK(picolm_session_new(m, NULL, &s) == PICOLM_OK);
        picolm_generate_params gp;
        picolm_generate_params_default(&gp);
        gp.max_tokens = 4;
        gp.json_schema = "{\"type\":\"object\"}";
        CHECK(picolm_session_generate(s, "Hi", 2, &gp, NULL, NULL, NULL) == PICOLM_ERR_UNSUPPORTED);
        /* Without `json` there is no JSON grammar at all: the message names that feature. */
        const char *missing = has_feature("json") ? "`json-schema` feature" : "`json` feature";
        CHECK(strstr(picolm_last_error_message(), missing) != NULL);
        gp.json_schema = NULL; /* the JSON modes need only `json` */
        gp.json_mode = PICOLM_JSON_OBJECT;
        if (has_feature("json")) {
            CHECK(picolm_session_generate(s, "Hi", 2, &gp, NULL, NULL, NULL) == PICOLM_OK);
        } else {
            CHECK(picolm_session_generate(s, "Hi", 2, &gp, NULL, NULL, NULL) == PICOLM_ERR_UNSUPPORTED);
            CHECK(strstr(picolm_last_error_message(), "`json` feature") != NULL);
            gp.json_mode = 3; /* the mode is still checked first */
            CHECK(picolm_session_generate(s, "Hi", 2, &gp, NULL, NULL, NULL) == PICOLM_ERR_INVALID_ARG);
        }
        picolm_session_free(s);
    }
    /* The chat template works in every build (without `jinja`: the built-in format of SmolLM2's ChatML template). */
    picolm_chat_message msg = { .role = "user", .content = "Hi" };
    char prompt[1024];
    size_t need = 0;
    CHECK(picolm_chat_apply_template(m, &msg, 1, true, prompt, sizeof prompt, &need) == PICOLM_OK);
    CHECK(strstr(prompt, "<|im_start|>user\nHi<|im_end|>\n") != NULL && strstr(prompt, "<|im_start|>assistant\n") != NULL);
}

static void test_agent(picolm_model *m) {
    picolm_agent *a = NULL;
    CHECK(picolm_agent_new(NULL, &a) == PICOLM_ERR_NULL_ARG);
    CHECK(picolm_agent_new(m, &a) == PICOLM_OK && a);
    struct relay_state st = {0};
    const char *relay_schema = "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"on\":{\"type\":\"boolean\"}},"
                               "\"required\":[\"id\",\"on\"]}";
    CHECK(picolm_agent_add_tool(a, "set relay!", "bad name", relay_schema, set_relay, &st) == PICOLM_ERR_INVALID_ARG);
    CHECK(picolm_agent_add_tool(a, "set_relay", "x", "{\"type\":\"string\"}", set_relay, &st) == PICOLM_ERR_INVALID_ARG);
    CHECK(picolm_agent_add_tool(a, "set_relay", "x", "{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#\"}}}", set_relay, &st) == PICOLM_ERR_GRAMMAR);
    CHECK(picolm_agent_add_tool(a, "set_relay", "Switch a relay on or off", relay_schema, set_relay, &st) == PICOLM_OK);
    CHECK(picolm_agent_add_tool(a, "set_relay", "dup", relay_schema, set_relay, &st) == PICOLM_ERR_INVALID_ARG);
    picolm_session *s = NULL;
    CHECK(picolm_session_new(m, NULL, &s) == PICOLM_OK);
    picolm_agent_params ap;
    CHECK(picolm_agent_params_default(&ap) == PICOLM_OK);
    ap.tool_choice = PICOLM_TOOL_CHOICE_REQUIRED;
    picolm_chat_message msg = { .role = "user", .content = "Turn on relay 2." };
    struct event_log log;
    memset(&log, 0, sizeof log);
    picolm_agent_result res;
    memset(&res, 0, sizeof res);
    CHECK(picolm_agent_run(a, s, &msg, 1, &ap, on_agent_event, &log, &res) == PICOLM_OK);
    CHECK(res.stop == PICOLM_AGENT_ANSWERED && st.calls >= 1 && log.calls == st.calls && log.results == st.calls);
    CHECK(res.n_tool_calls == (uint32_t)st.calls && res.answer && strlen(res.answer) > 0);
    CHECK(res.messages_json && strstr(res.messages_json, "\"role\":\"tool\"") != NULL);
    CHECK(res.iterations >= 2 && res.iterations <= ap.max_iterations);
    CHECK(res.n_generated > 0 && res.n_prompt > res.n_reused && res.decode_seconds > 0);
    printf("  answer: %s\n", res.answer);
    picolm_agent_result_free(&res);
    CHECK(res.answer == NULL && res.messages_json == NULL);
    picolm_agent_result_free(&res); /* twice is harmless */
    picolm_agent_result_free(NULL);

    /* A failing handler becomes a tool message. */
    picolm_agent *b = NULL;
    CHECK(picolm_agent_new(m, &b) == PICOLM_OK);
    CHECK(picolm_agent_add_tool(b, "read_sensor", "Read a sensor",
                                "{\"type\":\"object\",\"properties\":{\"name\":{\"enum\":[\"temperature\"]}},\"required\":[\"name\"]}",
                                failing_sensor, NULL) == PICOLM_OK);
    memset(&log, 0, sizeof log);
    ap.max_iterations = 3;
    picolm_chat_message q = { .role = "user", .content = "What is the temperature?" };
    CHECK(picolm_agent_run(b, s, &q, 1, &ap, on_agent_event, &log, &res) == PICOLM_OK);
    CHECK(log.saw_error && strstr(res.messages_json, "sensor bus timeout") != NULL);
    picolm_agent_result_free(&res);

    /* External tools (PicoClaw): the loop stops with the calls in OpenAI's shape. */
    picolm_agent *c = NULL;
    CHECK(picolm_agent_new(m, &c) == PICOLM_OK);
    CHECK(picolm_agent_add_tools_json(c, "[{\"type\":\"function\",\"function\":{\"name\":\"set_relay\",\"description\":\"Switch a relay\","
                                         "\"parameters\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"on\":{\"type\":\"boolean\"}},"
                                         "\"required\":[\"id\",\"on\"]}}}]") == PICOLM_OK);
    CHECK(picolm_agent_add_tools_json(c, "[{\"function\":{}}]") == PICOLM_ERR_INVALID_ARG);
    CHECK(picolm_agent_run(c, s, &msg, 1, &ap, NULL, NULL, &res) == PICOLM_OK);
    CHECK(res.stop == PICOLM_AGENT_TOOL_CALLS_PENDING && res.tool_calls_json != NULL);
    if (res.tool_calls_json) {
        printf("  pending: %s\n", res.tool_calls_json);
        CHECK(strncmp(res.tool_calls_json, "{\"tool_calls\":[{\"id\":", 21) == 0);
        CHECK(strstr(res.tool_calls_json, "\"arguments\":\"{\\\"id\\\":") != NULL || strstr(res.tool_calls_json, "\"arguments\":\"{\\\"on\\\":") != NULL);
    }
    picolm_agent_result_free(&res);

    /* A 1 MB tool result is cut to what the context holds (with a marker), not a context overflow. */
    picolm_agent *big = NULL;
    CHECK(picolm_agent_new(m, &big) == PICOLM_OK);
    CHECK(picolm_agent_add_tool(big, "read_log", "Read the system log", "{\"type\":\"object\",\"properties\":{}}", huge_log,
                                NULL) == PICOLM_OK);
    memset(&log, 0, sizeof log);
    ap.max_iterations = 2;
    ap.max_tokens = 48;
    picolm_chat_message ql = { .role = "user", .content = "Show me the system log." };
    CHECK(picolm_agent_run(big, s, &ql, 1, &ap, on_agent_event, &log, &res) == PICOLM_OK);
    CHECK(log.results >= 1 && log.truncated == log.results);
    CHECK(res.messages_json && strstr(res.messages_json, "truncated to fit the context") != NULL);
    CHECK(res.messages_json && strlen(res.messages_json) < 16384);
    picolm_agent_result_free(&res);
    picolm_agent_free(big);

    /* auto: a max_tokens too small for any call answers in text; required: the budget error. */
    ap.max_tokens = 8;
    ap.max_iterations = 1;
    ap.tool_choice = PICOLM_TOOL_CHOICE_AUTO;
    CHECK(picolm_agent_run(a, s, &msg, 1, &ap, NULL, NULL, &res) == PICOLM_OK);
    CHECK(res.stop == PICOLM_AGENT_ANSWERED && res.n_tool_calls == 0);
    picolm_agent_result_free(&res);
    ap.tool_choice = PICOLM_TOOL_CHOICE_REQUIRED;
    CHECK(picolm_agent_run(a, s, &msg, 1, &ap, NULL, NULL, &res) == PICOLM_ERR_BUDGET);

    picolm_agent *empty = NULL;
    CHECK(picolm_agent_new(m, &empty) == PICOLM_OK);
    CHECK(picolm_agent_run(empty, s, &msg, 1, &ap, NULL, NULL, NULL) == PICOLM_ERR_INVALID_ARG);
    picolm_agent_free(empty);
    picolm_agent_free(NULL);
    picolm_agent_free(c);
    picolm_agent_free(b);
    picolm_agent_free(a);
    picolm_session_free(s);
}

struct warnings { int count; char last[512]; };

static void capture_warning(int32_t level, const char *message, void *user_data) {
    struct warnings *w = user_data;
    if (level != PICOLM_LOG_WARN) return;
    w->count++;
    snprintf(w->last, sizeof w->last, "%s", message);
}

/* A thread count above the CPUs is clamped to picolm_cpu_count() and reported once at WARN level. */
static void test_thread_clamp(void) {
    uint32_t cpus = picolm_cpu_count();
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK(cpus >= 1 && (online < 1 || cpus <= (uint32_t)online));
    struct warnings w = {0, ""};
    picolm_set_log_callback(capture_warning, &w);
    picolm_model_params mp;
    picolm_model_params_default(&mp);
    mp.n_threads = 100000;
    picolm_model *m = NULL;
    CHECK(picolm_model_load(model_path, &mp, &m) == PICOLM_OK);
    picolm_model_info info;
    if (m) {
        CHECK(picolm_model_get_info(m, &info) == PICOLM_OK && info.n_threads == cpus);
        CHECK(w.count == 1 && strstr(w.last, "100000") && strstr(w.last, "using"));
        picolm_model_free(m);
        m = NULL;
    }
    w.count = 0;
    mp.n_threads = 0; /* one per CPU, no warning */
    CHECK(picolm_model_load(model_path, &mp, &m) == PICOLM_OK);
    if (m) {
        CHECK(picolm_model_get_info(m, &info) == PICOLM_OK && info.n_threads == cpus && w.count == 0);
        picolm_model_free(m);
    }
    picolm_set_log_callback(NULL, NULL);
}

/* State files: only new paths, empty files and states are written; FIFOs are refused without blocking. */
static void test_state_files(picolm_model *m) {
    picolm_session *s = NULL;
    CHECK(picolm_session_new(m, NULL, &s) == PICOLM_OK);
    if (!s) return;
    picolm_generate_params gp;
    picolm_generate_params_default(&gp);
    gp.max_tokens = 2;
    gp.sampler.temperature = 0.0f;
    const char *p = "The capital of France is";
    CHECK(picolm_session_generate(s, p, strlen(p), &gp, NULL, NULL, NULL) == PICOLM_OK);
    char dir[] = "/tmp/picolm-statedir-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char foreign[4200], state[4200], fifo[4200], link[4200];
    snprintf(foreign, sizeof foreign, "%s/model.gguf", dir);
    snprintf(state, sizeof state, "%s/cache.state", dir);
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    snprintf(link, sizeof link, "%s/link", dir);
    FILE *f = fopen(foreign, "wb");
    if (f) { fputs("GGUF\x03 not a state, must survive", f); fclose(f); }
    CHECK(picolm_state_check_path(foreign) == PICOLM_ERR_IO);
    CHECK(strstr(picolm_last_error_message(), "47 47 55 46 03") != NULL);
    CHECK(picolm_session_save_state(s, foreign) == PICOLM_ERR_IO);
    char back[64] = {0};
    f = fopen(foreign, "rb");
    if (f) { CHECK(fread(back, 1, sizeof back - 1, f) > 0); fclose(f); }
    CHECK(strcmp(back, "GGUF\x03 not a state, must survive") == 0);
    CHECK(picolm_session_load_state(s, foreign) == PICOLM_ERR_STATE);

    CHECK(picolm_state_check_path(state) == PICOLM_OK);
    CHECK(picolm_session_save_state(s, state) == PICOLM_OK);
    CHECK(picolm_state_check_path(state) == PICOLM_OK);
    CHECK(symlink("cache.state", link) == 0);
    CHECK(picolm_session_save_state(s, link) == PICOLM_OK);
    struct stat st;
    CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(picolm_session_load_state(s, link) == PICOLM_OK);

    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(picolm_session_load_state(s, fifo) == PICOLM_ERR_IO);
    CHECK(strstr(picolm_last_error_message(), "FIFO") != NULL);
    CHECK(picolm_session_save_state(s, fifo) == PICOLM_ERR_IO);
    CHECK(picolm_state_check_path(fifo) == PICOLM_ERR_IO);
    picolm_model *fm = (picolm_model *)0x1;
    CHECK(picolm_model_load(fifo, NULL, &fm) == PICOLM_ERR_IO && fm == NULL);
    CHECK(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode));
    CHECK(picolm_state_check_path(NULL) == PICOLM_ERR_NULL_ARG);
    unlink(foreign);
    unlink(state);
    unlink(fifo);
    unlink(link);
    CHECK(rmdir(dir) == 0); /* no temporary file left behind */
    picolm_session_free(s);
}

/* Counts what reaches the log callback. */
struct log_count { int errors, warnings; char last_warning[512]; };

static void count_log(int32_t level, const char *message, void *user_data) {
    struct log_count *lc = user_data;
    if (level == PICOLM_LOG_ERROR) lc->errors++;
    if (level == PICOLM_LOG_WARN) { lc->warnings++; snprintf(lc->last_warning, sizeof lc->last_warning, "%s", message); }
}

/* The value of `key` in the flat JSON object of picolm_defaults_json() (a number, or true/false as 1/0); the test
 * fails (and 0 is returned) when the key is missing. */
static double default_num(const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = strstr(picolm_defaults_json(), pat);
    CHECK(at != NULL);
    if (!at) { fprintf(stderr, "  missing default %s\n", key); return 0; }
    at += strlen(pat);
    if (!strncmp(at, "true", 4)) return 1;
    if (!strncmp(at, "false", 5)) return 0;
    return strtod(at, NULL);
}

/* Whether the string value of `key` in picolm_defaults_json() is `want`. */
static bool default_is(const char *key, const char *want) {
    char pat[160];
    snprintf(pat, sizeof pat, "\"%s\":\"%s\"", key, want);
    return strstr(picolm_defaults_json(), pat) != NULL;
}

/* A sampler struct equals picolm-core's sampler defaults under `prefix` ("sampler", "generate.sampler", ...). */
static void check_sampler_defaults(const picolm_sampler_params *sp, const char *prefix) {
    char k[96];
/* floats compared as float (the dump prints the core's f32 in its shortest form), counts as integers */
#define SAMPLER_FLOAT(f) (snprintf(k, sizeof k, "%s.%s", prefix, #f), sp->f == (float)default_num(k))
#define SAMPLER_COUNT(f) (snprintf(k, sizeof k, "%s.%s", prefix, #f), (double)sp->f == default_num(k))
    CHECK(SAMPLER_FLOAT(temperature));
    CHECK(SAMPLER_COUNT(top_k));
    CHECK(SAMPLER_FLOAT(top_p));
    CHECK(SAMPLER_FLOAT(min_p));
    CHECK(SAMPLER_FLOAT(repeat_penalty));
    CHECK(SAMPLER_COUNT(repeat_last_n));
    CHECK(SAMPLER_COUNT(seed));
#undef SAMPLER_FLOAT
#undef SAMPLER_COUNT
}

/* Every picolm_*_params_default writes picolm-core's defaults (the core's own dump, picolm_defaults_json): a
 * default changed in the core and not in the C layer, or hard-coded in the C layer, fails here. */
static void test_defaults_match_the_core(void) {
    const char *dump = picolm_defaults_json();
    CHECK(dump != NULL && dump[0] == '{');
    picolm_model_params mp;
    CHECK(picolm_model_params_default(&mp) == PICOLM_OK && mp.struct_size == sizeof mp);
    CHECK(mp.n_threads == default_num("model.n_threads") && mp.n_ctx == default_num("model.n_ctx"));
    CHECK(mp.stream_weights == (default_num("model.stream_weights") != 0));
    CHECK(mp.stream_slab_bytes == default_num("model.stream_slab_bytes"));
    CHECK(mp.max_rss_bytes == default_num("model.max_rss_bytes"));

    picolm_session_params sp;
    CHECK(picolm_session_params_default(&sp) == PICOLM_OK && sp.struct_size == sizeof sp);
    CHECK(sp.n_ctx == default_num("session.n_ctx") && sp.n_batch == default_num("session.n_batch"));
    CHECK(default_is("session.kv_type", picolm_kv_type_name(sp.kv_type)));

    picolm_sampler_params sd;
    CHECK(picolm_sampler_params_default(NULL) == PICOLM_ERR_NULL_ARG);
    CHECK(picolm_sampler_params_default(&sd) == PICOLM_OK);
    check_sampler_defaults(&sd, "sampler");

    picolm_generate_params gp;
    CHECK(picolm_generate_params_default(&gp) == PICOLM_OK && gp.struct_size == sizeof gp);
    CHECK(gp.max_tokens == default_num("generate.max_tokens"));
    CHECK(gp.ignore_eog == (default_num("generate.stop_at_eog") == 0));
    check_sampler_defaults(&gp.sampler, "generate.sampler");

    if (has_feature("agent")) {
        picolm_agent_params ap;
        CHECK(picolm_agent_params_default(&ap) == PICOLM_OK && ap.struct_size == sizeof ap);
        CHECK(ap.max_iterations == default_num("agent.max_iterations") && ap.max_tokens == default_num("agent.max_tokens"));
        CHECK(default_is("agent.tool_choice", picolm_tool_choice_name(ap.tool_choice)));
        check_sampler_defaults(&ap.sampler, "agent.sampler");
    } else {
        CHECK(strstr(dump, "\"agent.") == NULL);
    }

    picolm_bench_params bp;
    CHECK(picolm_bench_params_default(NULL) == PICOLM_ERR_NULL_ARG);
    CHECK(picolm_bench_params_default(&bp) == PICOLM_OK && bp.struct_size == sizeof bp);
    CHECK(bp.n_prompt == default_num("bench.n_prompt") && bp.n_gen == default_num("bench.n_gen"));
    CHECK(bp.repetitions == default_num("bench.repetitions") && bp.n_batch == default_num("bench.n_batch"));
    CHECK(bp.stream_weights == (default_num("bench.stream_weights") != 0));
    CHECK(bp.bandwidth == (default_num("bench.bandwidth") != 0));
    CHECK(default_is("bench.kv_type", picolm_kv_type_name(bp.kv_type)));
    /* "bench.threads":[1,2]: the same list, in order. */
    const char *t = strstr(dump, "\"bench.threads\":[");
    CHECK(t != NULL && bp.threads != NULL);
    if (t && bp.threads) {
        t += strlen("\"bench.threads\":[");
        size_t n = 0;
        for (char *end; *t != ']'; t = *end == ',' ? end + 1 : end, n++) {
            unsigned long v = strtoul(t, &end, 10);
            CHECK(end != t && n < bp.n_threads_list && bp.threads[n] == v);
            if (end == t || n >= bp.n_threads_list) break;
        }
        CHECK(n == bp.n_threads_list);
    }
}

/* picolm_bench_params: struct_size, defaults with params NULL, and its settings checked before any work. */
static void test_bench_params(void) {
    picolm_bench_params bp;
    picolm_bench_params_default(&bp);
    char buf[64];
    size_t need = 0;
    bp.struct_size = 3;
    CHECK(picolm_bench(model_path, &bp, false, buf, sizeof buf, &need) == PICOLM_ERR_INVALID_ARG);
    CHECK(strstr(picolm_last_error_message(), "picolm_bench_params.struct_size is 3") != NULL);
    picolm_bench_params_default(&bp);
    bp.kv_type = 5;
    CHECK(picolm_bench(model_path, &bp, false, buf, sizeof buf, &need) == PICOLM_ERR_INVALID_ARG);
    CHECK(strstr(picolm_last_error_message(), "kv_type is 5") != NULL);
    picolm_bench_params_default(&bp);
    bp.n_batch = 0;
    CHECK(picolm_bench(model_path, &bp, false, buf, sizeof buf, &need) == PICOLM_ERR_INVALID_ARG);
    picolm_bench_params_default(&bp);
    bp.n_threads_list = 2;
    bp.threads = NULL;
    CHECK(picolm_bench(model_path, &bp, false, buf, sizeof buf, &need) == PICOLM_ERR_NULL_ARG);
    CHECK(picolm_bench(NULL, NULL, false, buf, sizeof buf, &need) == PICOLM_ERR_NULL_ARG);
    /* A tiny run with the defaults but one thread and a few tokens, with a Q8_0 KV cache. */
    uint32_t one = 1;
    picolm_bench_params_default(&bp);
    bp.n_prompt = 8;
    bp.n_gen = 2;
    bp.repetitions = 1;
    bp.n_batch = 8;
    bp.threads = &one;
    bp.n_threads_list = 1;
    bp.kv_type = PICOLM_KV_Q8_0;
    char report[8192];
    if (!has_feature("bench")) return; /* test_features checks PICOLM_ERR_UNSUPPORTED */
    CHECK(picolm_bench(model_path, &bp, true, report, sizeof report, &need) == PICOLM_OK);
    CHECK(strstr(report, "\"results\":[{\"test\":") != NULL);
}

/* The one sampler struct: the same picolm_sampler_params in generate and agent params, checked by the same rules,
 * and a whole sub-struct assigned at once gives the same output as its fields set one by one. */
static void test_sampler_substruct(picolm_model *m) {
    picolm_sampler_params sd;
    picolm_sampler_params_default(&sd);
    picolm_generate_params gp;
    picolm_generate_params_default(&gp);
    sd.temperature = 0.9f;
    sd.top_k = 20;
    sd.seed = 7;
    gp.sampler = sd;
    gp.max_tokens = 6;
    CHECK(picolm_generate_params_check(&gp) == PICOLM_OK);
    picolm_session *s = NULL;
    CHECK(picolm_session_new(m, NULL, &s) == PICOLM_OK);
    struct collect a = {0}, b = {0};
    CHECK(picolm_session_generate(s, GOLDEN_PROMPT, strlen(GOLDEN_PROMPT), &gp, collect_piece, &a, NULL) == PICOLM_OK);
    picolm_generate_params g2;
    picolm_generate_params_default(&g2);
    g2.max_tokens = 6;
    g2.sampler.temperature = 0.9f;
    g2.sampler.top_k = 20;
    g2.sampler.seed = 7;
    picolm_session_reset(s);
    CHECK(picolm_session_generate(s, GOLDEN_PROMPT, strlen(GOLDEN_PROMPT), &g2, collect_piece, &b, NULL) == PICOLM_OK);
    CHECK(a.len > 0 && strcmp(a.text, b.text) == 0);
    picolm_session_free(s);
    sd.repeat_penalty = 0.0f;
    gp.sampler = sd;
    CHECK(picolm_generate_params_check(&gp) == PICOLM_ERR_INVALID_ARG);
    CHECK(strstr(picolm_last_error_message(), "repeat_penalty") != NULL);
    if (has_feature("agent")) {
        picolm_agent_params ap;
        picolm_agent_params_default(&ap);
        ap.sampler = sd; /* the same struct type: one assignment */
        picolm_agent *ag = NULL;
        CHECK(picolm_agent_new(m, &ag) == PICOLM_OK);
        CHECK(picolm_agent_add_tools_json(ag, "[{\"type\":\"function\",\"function\":{\"name\":\"ping\",\"parameters\":"
                                              "{\"type\":\"object\",\"properties\":{}}}}]") == PICOLM_OK);
        picolm_session *s2 = NULL;
        CHECK(picolm_session_new(m, NULL, &s2) == PICOLM_OK);
        picolm_chat_message msg = { .role = "user", .content = "Hi" };
        CHECK(picolm_agent_run(ag, s2, &msg, 1, &ap, NULL, NULL, NULL) == PICOLM_ERR_INVALID_ARG);
        CHECK(strstr(picolm_last_error_message(), "repeat_penalty") != NULL);
        picolm_session_free(s2);
        picolm_agent_free(ag);
    }
}

/* Integer codes at the boundary: any int is safe to pass to picolm_strerror and the name functions; out-of-range
 * enum fields in params structs are refused. */
static void test_integer_codes(void) {
    const int codes[] = {-1, 1000, 14, 15, 16, 100, 65536, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *e = picolm_strerror(codes[i]);
        CHECK(e != NULL && strlen(e) > 0);
        bool known = codes[i] >= PICOLM_OK && codes[i] <= PICOLM_ERR_BUDGET;
        CHECK(known == (strcmp(e, "unknown result code") != 0));
    }
    CHECK(strcmp(picolm_strerror(PICOLM_ERR_OUT_OF_MEMORY), "out of memory") == 0);
    CHECK(PICOLM_ERR_OUT_OF_MEMORY == 14 && PICOLM_ERR_BUDGET == 15);
    CHECK(strcmp(picolm_stop_reason_name(PICOLM_STOP_GRAMMAR_COMPLETE), "grammar_complete") == 0);
    CHECK(strcmp(picolm_stop_reason_name(PICOLM_STOP_MAX_TOKENS), "max_tokens") == 0);
    CHECK(strcmp(picolm_stop_reason_name(PICOLM_STOP_FAILED), "failed") == 0);
    CHECK(strcmp(picolm_stop_reason_name(-1), "unknown") == 0 && strcmp(picolm_stop_reason_name(99), "unknown") == 0);
    CHECK(strcmp(picolm_agent_stop_name(PICOLM_AGENT_TOOL_CALLS_PENDING), "tool_calls_pending") == 0);
    CHECK(strcmp(picolm_agent_stop_name(7), "unknown") == 0);

    /* kv_type is a session setting (as llama.h's context params): out-of-range values are refused there. */
    picolm_model_params mp;
    picolm_model_params_default(&mp);
    mp.n_threads = 1;
    mp.n_ctx = 64;
    picolm_model *m = NULL;
    CHECK(picolm_model_load(model_path, &mp, &m) == PICOLM_OK && m);
    picolm_session_params sp;
    picolm_session_params_default(&sp);
    sp.kv_type = 7;
    picolm_session *s = (picolm_session *)0x1;
    CHECK(picolm_session_new(m, &sp, &s) == PICOLM_ERR_INVALID_ARG && s == NULL);
    CHECK(strstr(picolm_last_error_message(), "kv_type is 7") != NULL);
    sp.kv_type = -1;
    CHECK(picolm_session_new(m, &sp, &s) == PICOLM_ERR_INVALID_ARG && s == NULL);
    sp.kv_type = PICOLM_KV_F16;
    sp.n_batch = 0;
    CHECK(picolm_session_new(m, &sp, &s) == PICOLM_ERR_INVALID_ARG && s == NULL);
    CHECK(strstr(picolm_last_error_message(), "n_batch") != NULL);
    picolm_model_free(m);

    /* Names of the integer codes, parsed and named by picolm-core. */
    int32_t code = -1;
    CHECK(picolm_kv_type_parse("q8_0", &code) == PICOLM_OK && code == PICOLM_KV_Q8_0);
    CHECK(picolm_kv_type_parse("Q8", &code) == PICOLM_OK && code == PICOLM_KV_Q8_0);
    CHECK(picolm_kv_type_parse("f16", &code) == PICOLM_OK && code == PICOLM_KV_F16);
    CHECK(picolm_kv_type_parse("q4_0", &code) == PICOLM_ERR_INVALID_ARG && code == PICOLM_KV_F16);
    CHECK(strstr(picolm_last_error_message(), "\"q4_0\"") != NULL);
    CHECK(picolm_kv_type_parse(NULL, &code) == PICOLM_ERR_NULL_ARG && picolm_kv_type_parse("f16", NULL) == PICOLM_ERR_NULL_ARG);
    CHECK(strcmp(picolm_kv_type_name(PICOLM_KV_Q8_0), "q8_0") == 0 && strcmp(picolm_kv_type_name(2), "unknown") == 0);
    CHECK(strcmp(picolm_tool_choice_name(PICOLM_TOOL_CHOICE_REQUIRED), "required") == 0);
    CHECK(strcmp(picolm_tool_choice_name(-1), "unknown") == 0);
    if (has_feature("agent")) {
        CHECK(picolm_tool_choice_parse("none", &code) == PICOLM_OK && code == PICOLM_TOOL_CHOICE_NONE);
        CHECK(picolm_tool_choice_parse("always", &code) == PICOLM_ERR_INVALID_ARG);
        CHECK(strstr(picolm_last_error_message(), "auto, required, none") != NULL);
    } else {
        CHECK(picolm_tool_choice_parse("none", &code) == PICOLM_ERR_UNSUPPORTED);
    }
}

/* Sampler ranges, the generation info after a failure, size queries, special token ids, metadata keys,
 * warnings, and history tool calls in chat templates. */
static void test_contracts(picolm_model *m) {
    struct log_count lc;
    memset(&lc, 0, sizeof lc);
    picolm_set_log_callback(count_log, &lc);

    /* A size query (buf = NULL, cap = 0) is not an error worth logging; a real failure is. */
    size_t need = 0;
    CHECK(picolm_model_meta(m, "general.architecture", NULL, 0, &need) == PICOLM_ERR_BUFFER_TOO_SMALL && need == 6);
    const char *p = GOLDEN_PROMPT;
    size_t n_ids = 0;
    CHECK(picolm_tokenize(m, p, strlen(p), true, true, NULL, 0, &n_ids) == PICOLM_ERR_BUFFER_TOO_SMALL && n_ids == 5);
    picolm_chat_message msg = { .role = "user", .content = "Hi" };
    CHECK(picolm_chat_apply_template(m, &msg, 1, true, NULL, 0, &need) == PICOLM_ERR_BUFFER_TOO_SMALL && need > 1);
    CHECK(lc.errors == 0);
    CHECK(picolm_model_meta(m, "no.such.key", NULL, 0, &need) == PICOLM_ERR_NOT_FOUND);
    CHECK(lc.errors == 1);

    /* Sampler ranges (checked by picolm-core) and the generation info of a failed call. */
    picolm_session *s = NULL;
    CHECK(picolm_session_new(m, NULL, &s) == PICOLM_OK);
    picolm_generate_params gp;
    picolm_generate_params_default(&gp);
    CHECK(picolm_generate_params_check(&gp) == PICOLM_OK);
    gp.max_tokens = 4;
    picolm_generation_info gi;
    CHECK(picolm_session_generate(s, p, strlen(p), &gp, NULL, NULL, &gi) == PICOLM_OK);
    CHECK(gi.n_generated == 4 && gi.stop_reason == PICOLM_STOP_MAX_TOKENS);
    const float bad_top_p[] = {5.0f, 1.5f, -0.1f};
    for (size_t i = 0; i < 3; i++) {
        gp.sampler.top_p = bad_top_p[i];
        CHECK(picolm_generate_params_check(&gp) == PICOLM_ERR_INVALID_ARG);
        CHECK(strstr(picolm_last_error_message(), "top_p") != NULL);
        CHECK(picolm_session_generate(s, p, strlen(p), &gp, NULL, NULL, &gi) == PICOLM_ERR_INVALID_ARG);
        CHECK(gi.stop_reason == PICOLM_STOP_FAILED && gi.n_generated == 0 && gi.n_prompt == 0 && gi.decode_seconds == 0);
    }
    picolm_generate_params_default(&gp);
    gp.sampler.temperature = -3.0f;
    CHECK(picolm_session_generate(s, p, strlen(p), &gp, NULL, NULL, &gi) == PICOLM_ERR_INVALID_ARG);
    CHECK(strstr(picolm_last_error_message(), "temperature = -3") != NULL);
    picolm_generate_params_default(&gp);
    gp.sampler.top_p = 1.0f;
    gp.sampler.temperature = 0.7f;
    gp.max_tokens = 2;
    CHECK(picolm_session_generate(s, p, strlen(p), &gp, NULL, NULL, &gi) == PICOLM_OK && gi.n_generated == 2);
    CHECK(picolm_session_generate(NULL, p, strlen(p), &gp, NULL, NULL, &gi) == PICOLM_ERR_NULL_ARG);
    CHECK(gi.stop_reason == PICOLM_STOP_FAILED && gi.n_generated == 0);

    /* Special token ids agree with the metadata; EOS is an end-of-generation token. */
    uint32_t bos = 0, eos = 0;
    char meta[64];
    CHECK(picolm_model_bos(m, &bos) == PICOLM_OK);
    CHECK(picolm_model_meta(m, "tokenizer.ggml.bos_token_id", meta, sizeof meta, &need) == PICOLM_OK && (uint32_t)atoi(meta) == bos);
    CHECK(picolm_model_eos(m, &eos) == PICOLM_OK);
    CHECK(picolm_model_meta(m, "tokenizer.ggml.eos_token_id", meta, sizeof meta, &need) == PICOLM_OK && (uint32_t)atoi(meta) == eos);
    CHECK(picolm_model_bos(m, NULL) == PICOLM_ERR_NULL_ARG && picolm_model_eos(NULL, &eos) == PICOLM_ERR_NULL_ARG);
    size_t n_eog = 0;
    CHECK(picolm_model_eog_ids(m, NULL, 0, &n_eog) == PICOLM_ERR_BUFFER_TOO_SMALL && n_eog >= 1);
    uint32_t eog[16];
    CHECK(n_eog <= 16 && picolm_model_eog_ids(m, eog, 16, &n_eog) == PICOLM_OK);
    bool eos_is_eog = false;
    for (size_t i = 0; i < n_eog && i < 16; i++) eos_is_eog |= eog[i] == eos;
    CHECK(eos_is_eog);

    /* Metadata keys enumerate in file order; each one has a value. */
    size_t n_keys = 0;
    CHECK(picolm_model_meta_count(m, &n_keys) == PICOLM_OK && n_keys > 10);
    bool saw_arch = false;
    for (size_t i = 0; i < n_keys; i++) {
        char key[256], value[256];
        size_t key_need = 0;
        CHECK(picolm_model_meta_key(m, i, NULL, 0, &key_need) == PICOLM_ERR_BUFFER_TOO_SMALL && key_need > 1);
        CHECK(picolm_model_meta_key(m, i, key, sizeof key, &need) == PICOLM_OK && need == key_need);
        picolm_result r = picolm_model_meta(m, key, value, sizeof value, &need);
        CHECK(r == PICOLM_OK || r == PICOLM_ERR_BUFFER_TOO_SMALL);
        saw_arch |= strcmp(key, "general.architecture") == 0;
    }
    CHECK(saw_arch);
    CHECK(picolm_model_meta_key(m, n_keys, NULL, 0, &need) == PICOLM_ERR_NOT_FOUND);
    CHECK(lc.errors > 1); /* a real failure is still logged */

    /* An assistant message's tool calls (OpenAI's shape) are rendered, not dropped. */
    picolm_chat_message history[3] = {
        { .role = "user", .content = "Turn on relay 2." },
        { .role = "assistant", .content = NULL, .tool_calls_json =
              "[{\"id\":\"call_5\",\"type\":\"function\",\"function\":{\"name\":\"set_relay\",\"arguments\":\"{\\\"id\\\":2}\"}}]" },
        { .role = "tool", .content = "relay 2 is on", .tool_call_id = "call_5", .name = "set_relay" },
    };
    char prompt[2048];
    CHECK(picolm_chat_apply_template(m, history, 3, true, prompt, sizeof prompt, &need) == PICOLM_OK);
    CHECK(strstr(prompt, "\"name\":\"set_relay\",\"arguments\":{\"id\":2}") != NULL);
    CHECK(strstr(prompt, "call_5") != NULL && strstr(prompt, "relay 2 is on") != NULL);
    history[1].tool_calls_json = "[{\"function\":{\"name\":\"x\",\"arguments\":\"{broken\"}}]";
    CHECK(picolm_chat_apply_template(m, history, 3, true, prompt, sizeof prompt, &need) == PICOLM_ERR_INVALID_ARG);
    CHECK(strstr(picolm_last_error_message(), "arguments") != NULL);
    history[0].tool_calls_json = "[]";
    history[1].tool_calls_json = NULL;
    history[1].content = "ok";
    CHECK(picolm_chat_apply_template(m, history, 3, true, prompt, sizeof prompt, &need) == PICOLM_OK);

    /* The agent: an out-of-range tool_choice is refused, and a failed run leaves a cleared result. */
    picolm_agent_result res;
    memset(&res, 0xab, sizeof res); /* garbage from an earlier use: must be overwritten, not read */
    if (has_feature("agent")) {
        picolm_agent *a = NULL;
        CHECK(picolm_agent_new(m, &a) == PICOLM_OK);
        CHECK(picolm_agent_add_tools_json(a, "[{\"type\":\"function\",\"function\":{\"name\":\"ping\",\"parameters\":"
                                             "{\"type\":\"object\",\"properties\":{}}}}]") == PICOLM_OK);
        picolm_agent_params ap;
        picolm_agent_params_default(&ap);
        ap.tool_choice = 9;
        CHECK(picolm_agent_run(a, s, &msg, 1, &ap, NULL, NULL, &res) == PICOLM_ERR_INVALID_ARG);
        CHECK(strstr(picolm_last_error_message(), "tool_choice is 9") != NULL);
        CHECK(res.stop == PICOLM_AGENT_FAILED && res.answer == NULL && res.messages_json == NULL && res.iterations == 0);
        picolm_agent_result_free(&res);
        ap.tool_choice = PICOLM_TOOL_CHOICE_AUTO;
        ap.sampler.top_p = 5.0f;
        CHECK(picolm_agent_run(a, s, &msg, 1, &ap, NULL, NULL, &res) == PICOLM_ERR_INVALID_ARG);
        CHECK(strstr(picolm_last_error_message(), "top_p") != NULL);
        picolm_agent_free(a);
    } else {
        /* Without the feature the result is still written (failed) before PICOLM_ERR_UNSUPPORTED. */
        CHECK(picolm_agent_run(NULL, s, &msg, 1, NULL, NULL, NULL, &res) == PICOLM_ERR_UNSUPPORTED);
        CHECK(res.stop == PICOLM_AGENT_FAILED && res.answer == NULL && res.messages_json == NULL);
    }
    picolm_session_free(s);

    /* A context beyond the training context loads with a WARN message that names both numbers. */
    picolm_model_info info;
    CHECK(picolm_model_get_info(m, &info) == PICOLM_OK && info.n_ctx_train > 0);
    CHECK(lc.warnings == 0);
    picolm_model_params mp;
    picolm_model_params_default(&mp);
    mp.n_threads = 1;
    mp.n_ctx = info.n_ctx_train + 8;
    picolm_model *big = NULL;
    CHECK(picolm_model_load(model_path, &mp, &big) == PICOLM_OK);
    CHECK(lc.warnings == 1 && strstr(lc.last_warning, "training context") != NULL);
    char want[32];
    snprintf(want, sizeof want, "%u", info.n_ctx_train + 8);
    CHECK(strstr(lc.last_warning, want) != NULL);
    picolm_model_free(big);
    mp.n_ctx = 0; /* the default: the training context capped at PICOLM_DEFAULT_N_CTX_CAP, no warning */
    CHECK(picolm_model_load(model_path, &mp, &big) == PICOLM_OK);
    CHECK(lc.warnings == 1);
    picolm_model_info big_info;
    CHECK(picolm_model_get_info(big, &big_info) == PICOLM_OK);
    CHECK(big_info.n_ctx == (info.n_ctx_train < PICOLM_DEFAULT_N_CTX_CAP ? info.n_ctx_train : PICOLM_DEFAULT_N_CTX_CAP));
    picolm_model_free(big);
    picolm_set_log_callback(NULL, NULL);
}

/* Streaming mode gives the golden greedy text; a memory budget too small is refused with the MiB needed; one that
 * holds the model and one session but not the whole file streams it. */
static void test_memory_budget(void) {
    picolm_model_params mp;
    picolm_model_params_default(&mp);
    CHECK(mp.max_rss_bytes == 0);
    mp.n_threads = 2;
    mp.n_ctx = 512;
    mp.max_rss_bytes = 1u << 20;
    picolm_model *m = (picolm_model *)1;
    CHECK(picolm_model_load(model_path, &mp, &m) == PICOLM_ERR_OUT_OF_MEMORY && m == NULL);
    CHECK(strstr(picolm_last_error_message(), "MiB needed") != NULL);
    CHECK(strstr(picolm_last_error_message(), "KV cache") != NULL);

    mp.max_rss_bytes = 0;
    mp.stream_weights = true;
    mp.stream_slab_bytes = 300u << 10;
    CHECK(picolm_model_load(model_path, &mp, &m) == PICOLM_OK && m);
    if (!m) return;
    picolm_session *s = NULL;
    CHECK(picolm_session_new(m, NULL, &s) == PICOLM_OK && s);
    picolm_generate_params gp;
    picolm_generate_params_default(&gp);
    gp.max_tokens = 8;
    struct collect c = {0};
    picolm_generation_info gi;
    CHECK(picolm_session_generate(s, GOLDEN_PROMPT, strlen(GOLDEN_PROMPT), &gp, collect_piece, &c, &gi) == PICOLM_OK);
    char want[1024];
    size_t need = 0;
    picolm_detokenize(m, GOLDEN_Q4_1_IDS, 8, false, want, sizeof want, &need);
    CHECK(strcmp(c.text, want) == 0);
    picolm_memory_report mem;
    memset(&mem, 0, sizeof mem);
    CHECK(picolm_session_memory(s, &mem) == PICOLM_OK);
    /* Nothing of the file is mapped in streaming mode. */
    CHECK(mem.rss_file < (8u << 20));
    picolm_session_free(s);
    picolm_model_free(m);
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    const char *dir = getenv("PICOLM_MODELS");
    snprintf(model_path, sizeof model_path, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", dir ? dir : "models");
    if (access(model_path, R_OK) != 0) {
        fprintf(stderr, "model %s is missing: run scripts/fetch-models.sh\n", model_path);
        return 1;
    }
    test_errors_without_model();
    test_defaults_match_the_core();
    test_integer_codes();
    test_bench_params();
    test_huge_block_count();
    test_out_of_memory();
    test_memory_budget();
    picolm_model_params mp;
    picolm_model_params_default(&mp);
    mp.n_threads = 2;
    mp.n_ctx = 512;
    picolm_model *m = NULL;
    CHECK(picolm_model_load(model_path, &mp, &m) == PICOLM_OK && m);
    if (!m) return 1;
    test_tokens(m);
    test_generate(m);
    test_context_overflow(m);
    if (has_feature("state")) test_state_files(m);
    if (!quick) test_thread_clamp();
    test_contracts(m);
    test_sampler_substruct(m);
    test_features(m);
    if (!quick && has_feature("json-schema") && has_feature("jinja")) test_json_and_chat(m);
    if (!quick && has_feature("agent")) test_agent(m);
    if (!quick) test_cancel(m);
    picolm_model_free(m);
    printf("%d passed, %d failed\n", passes, failures);
    return failures ? 1 : 0;
}
