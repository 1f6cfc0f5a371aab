/*
 * picolm — command-line front end of libpicolm, compatible with the original PicoLM's flags:
 *
 *   picolm MODEL.gguf [-p PROMPT] [-n N] [-t TEMP] [-k TOP_P] [-s SEED] [-c CTX] [-j THREADS] [--json | --json-value]
 *                     [--cache FILE] [more options, see --help]
 *   picolm perplexity MODEL.gguf -f TEXT_FILE [-c 512] [-b 512] [--chunks N] [-j THREADS] [--json]
 *   picolm bench MODEL.gguf [-p 512] [-n 128] [-j 1,2] [-r 3] [--stream-weights] [--kv q8_0] [--json]
 *   picolm tokenize MODEL.gguf [-p TEXT] [--raw-special] [--no-special]
 *   picolm quantize IN.gguf OUT.gguf TYPE       (TYPE: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K..Q6_K Q4_K_M Q5_K_M F16 ...)
 *
 * Only generated text goes to stdout; statistics, warnings and errors go to stderr. Exit status: 0 success,
 * 1 runtime error, 2 usage error, 130 interrupted by Ctrl-C (after the statistics). `--help` works after any
 * subcommand. Written against the public C API only (include/picolm.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "picolm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_STOPS 16

static picolm_session *g_session = NULL;
static volatile sig_atomic_t g_interrupted = 0;

/* Ctrl-C during a generation: end it after the current token (statistics are still printed), then exit 130. */
static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
    if (g_session) picolm_session_cancel(g_session);
}

/* The library's warnings (a -j above the CPU count, a context beyond the model's training context) go to stderr; its errors are
 * printed by api_error with the failing step. */
static void on_log(int32_t level, const char *message, void *user_data) {
    (void)user_data;
    if (level == PICOLM_LOG_WARN) fprintf(stderr, "picolm: warning: %s\n", message);
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "picolm: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'picolm --help'.\n");
    return 2;
}

static int api_error(picolm_result r, const char *what) {
    const char *detail = picolm_last_error_message();
    if (r == PICOLM_ERR_BUDGET) {
        fprintf(stderr, "picolm: %s: -n is too small for the JSON output%s%s (raise -n)\n", what, detail[0] ? ": " : "",
                detail);
        return 1;
    }
    if (r == PICOLM_ERR_OUT_OF_MEMORY) {
        fprintf(stderr, "picolm: %s: %s (lower the context with -c, or halve the KV cache with --kv q8_0)\n", what, detail[0] ? detail : "out of memory");
        return 1;
    }
    fprintf(stderr, "picolm: %s: %s%s%s\n", what, picolm_strerror(r), detail[0] ? ": " : "", detail);
    return 1;
}

#define STR_(x) #x
#define STR(x) STR_(x)

static void print_help(FILE *f) {
    fputs("Usage: picolm MODEL.gguf [options]          generate text\n"
          "       picolm perplexity MODEL.gguf -f FILE   perplexity of a text (llama.cpp's method)\n"
          "       picolm bench MODEL.gguf [options]      prefill/decode speed (llama-bench style)\n"
          "       picolm tokenize MODEL.gguf [-p TEXT]    print token ids\n"
          "       picolm quantize IN.gguf OUT.gguf TYPE  quantize (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K\n"
          "                                              Q4_K_M Q5_K_M F16 BF16 F32)\n"
          "\nGeneration options:\n"
          "  -p PROMPT          prompt (default: read standard input)\n"
          "  -n N               max tokens to generate (default 256)\n"
          "  -t TEMP            temperature >= 0, 0 = greedy (default 0.8)\n"
          "  -k TOP_P           nucleus sampling threshold in [0, 1], 1 = off (default 0.9)\n"
          "  -s SEED            random seed (default 42)\n"
          "  -c CTX             context length (default: the model's training context, at most "
          STR(PICOLM_DEFAULT_N_CTX_CAP) ")\n"
          "  -j THREADS         compute threads (default: min(4, CPUs); 0 = one per CPU; more than the CPUs is\n"
          "                     lowered to the CPU count with a warning)\n"
          "  --json             constrain output to one JSON object (compact, like OpenAI's json_object mode)\n"
          "  --json-value       constrain output to any one JSON value (compact; also bare numbers, strings)\n"
          "  --schema FILE      constrain output to JSON valid against the JSON Schema in FILE\n"
          "  --chat             wrap the prompt as a user message in the model's chat template\n"
          "  --tools FILE       tool-call mode: FILE holds OpenAI tool definitions (JSON array); prints the\n"
          "                     model's {\"tool_calls\":[...]} JSON (PicoClaw's format) or its text answer\n"
          "  --tool-choice C    auto (default), required or none (with --tools)\n"
          "  --cache FILE       load/save the KV cache state (skips prefill of a repeated prompt); FILE must be new,\n"
          "                     empty or a PicoLM state: any other file is refused and left untouched\n"
          "  --top-k K          keep the K most likely tokens (default off)\n"
          "  --min-p P          min-p sampling in [0, 1] (default off)\n"
          "  --repeat-penalty R repetition penalty > 0 (default 1 = off)\n"
          "  --stop STR         stop before STR (repeatable)\n"
          "  --raw-special      do not parse special tokens in the prompt\n"
          "  --stream-weights   read weights into two reused slabs instead of mapping the file (low-RAM boards)\n"
          "  --max-rss MB       keep the whole process within MB MiB of RAM: streams the weights when the model\n"
          "                     does not fit, sizes the slabs to fit, refuses to start (saying what is needed)\n"
          "                     when KV cache and buffers cannot fit\n"
          "  --kv TYPE          KV cache type: f16 (default) or q8_0 (also q8)\n"
          "\nperplexity options: -f FILE (required), -c CTX (512), -b BATCH (512), --chunks N (0 = all), -j THREADS,\n"
          "  --json\n"
          "bench options: -p PROMPT_TOKENS (512), -n GEN_TOKENS (128), -j T1,T2,... (up to 16 thread counts),\n"
          "  -r REPETITIONS (3), -b BATCH (512), --kv f16|q8_0, --stream-weights, --json,\n"
          "  --bandwidth (also measure the memory read bandwidth, 1 and N threads, and report decode as a fraction\n"
          "  of bandwidth / weight bytes per token). The report names the decode kernel each weight format got\n"
          "  (timed at load; PICOLM_KERNEL=auto|tile|avx512vnni-rows8|avx512vnni-gemv|avx2-gemv|avx2-row|avx2-dot\n"
          "  forces one; tile = the prefill kernel)\n"
          "tokenize options: -p TEXT (default: standard input), --raw-special (do not parse special tokens),\n"
          "  --no-special (neither parse special tokens nor add BOS/EOS)\n"
          "\n  --version, --help (also after a subcommand: picolm bench --help)\n"
          "\nStatistics, warnings and errors go to stderr. Exit status: 0 success, 1 error, 2 usage error,\n"
          "130 interrupted (Ctrl-C; statistics are printed first).\n",
          f);
}

static bool is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

static int parse_long(const char *flag, const char *s, long min, long max, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "picolm: %s expects an integer in [%ld, %ld], got '%s'\nTry 'picolm --help'.\n", flag, min, max, s);
        return 0;
    }
    *out = v;
    return 1;
}

static int parse_float(const char *flag, const char *s, float *out) {
    char *end = NULL;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end != '\0' || v != v) {
        fprintf(stderr, "picolm: %s expects a number, got '%s'\nTry 'picolm --help'.\n", flag, s);
        return 0;
    }
    *out = v;
    return 1;
}

/* Reads a whole stream; returns a NUL-terminated malloc'd buffer and its length, or NULL. */
static char *read_all(FILE *f, size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); return NULL; }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) { free(buf); return NULL; }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Default -j: at most 4, and no more than the CPUs this process may use (affinity and cgroup quota respected). */
static long default_threads(void) {
    long n = (long)picolm_cpu_count();
    return n < 4 ? n : 4;
}

static bool print_piece(const char *utf8, size_t len, void *user_data) {
    (void)user_data;
    fwrite(utf8, 1, len, stdout);
    fflush(stdout);
    return true;
}

/* The statistics lines on stderr: tokens and speeds, why generation stopped, and memory. */
static void print_stats(picolm_session *session, uint32_t n_prompt, uint32_t n_reused, double prefill_seconds,
                        uint32_t n_generated, double decode_seconds, const char *stop) {
    if (n_reused > 0) fprintf(stderr, "Skipping %u cached prompt tokens\n", n_reused);
    picolm_memory_report mem;
    memset(&mem, 0, sizeof mem);
    picolm_session_memory(session, &mem);
    fprintf(stderr,
            "prompt: %u tokens (%u cached), %.1f tok/s | generated: %u tokens, %.1f tok/s | stop: %s\n"
            "memory: peak RSS %.1f MiB (now: anonymous %.1f MiB, mapped model %.1f MiB), KV cache %.1f MiB, buffers %.1f MiB\n",
            n_prompt, n_reused, prefill_seconds > 0 ? (n_prompt - n_reused) / prefill_seconds : 0.0,
            n_generated, decode_seconds > 0 ? n_generated / decode_seconds : 0.0, stop,
            mem.peak_rss / 1048576.0, mem.rss_anon / 1048576.0, mem.rss_file / 1048576.0, mem.kv_bytes / 1048576.0,
            mem.scratch_bytes / 1048576.0);
}

static int load_model(const char *path, long threads, long ctx, bool stream, long max_rss_mb, picolm_model **model) {
    picolm_model_params mp;
    picolm_model_params_default(&mp);
    mp.n_threads = (uint32_t)threads;
    mp.n_ctx = (uint32_t)ctx;
    mp.stream_weights = stream;
    mp.max_rss_bytes = (uint64_t)max_rss_mb * 1048576u;
    picolm_result r = picolm_model_load(path, &mp, model);
    if (r != PICOLM_OK) return api_error(r, "cannot load model");
    return 0;
}

static const char *file_kind(mode_t m) {
    if (S_ISDIR(m)) return "directory";
    if (S_ISFIFO(m)) return "FIFO (named pipe)";
    if (S_ISSOCK(m)) return "socket";
    if (S_ISCHR(m)) return "character device";
    if (S_ISBLK(m)) return "block device";
    return "special file";
}

/* Opens a regular file for reading without ever blocking: a FIFO, socket, device or directory is refused (checked
 * with stat before opening, so devices are never opened; opened O_NONBLOCK so a FIFO swapped in meanwhile cannot
 * block; checked again with fstat). Prints the reason and returns NULL on failure. */
static FILE *open_regular(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) { fprintf(stderr, "picolm: cannot open %s: %s\n", path, strerror(errno)); return NULL; }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "picolm: cannot read %s: it is a %s, not a regular file\n", path, file_kind(st.st_mode));
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) { fprintf(stderr, "picolm: cannot open %s: %s\n", path, strerror(errno)); return NULL; }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "picolm: cannot read %s: it is a %s, not a regular file\n", path, file_kind(st.st_mode));
        close(fd);
        return NULL;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) { fprintf(stderr, "picolm: cannot open %s: %s\n", path, strerror(errno)); close(fd); }
    return f;
}

/* Reads a whole regular file into a NUL-terminated malloc'd buffer; prints the reason and returns NULL on failure. */
static char *read_file(const char *path, size_t *len_out) {
    FILE *f = open_regular(path);
    if (!f) return NULL;
    size_t len = 0;
    char *buf = read_all(f, &len);
    fclose(f);
    if (!buf) fprintf(stderr, "picolm: cannot read %s\n", path);
    else if (len_out) *len_out = len;
    return buf;
}

/* Renders one user message with the model's chat template; returns a malloc'd prompt or NULL (error printed). */
static char *chat_prompt(picolm_model *model, const char *user) {
    picolm_chat_message m = { .role = "user", .content = user };
    size_t need = 0;
    picolm_result r = picolm_chat_apply_template(model, &m, 1, true, NULL, 0, &need);
    if (r != PICOLM_ERR_BUFFER_TOO_SMALL && r != PICOLM_OK) { api_error(r, "cannot apply the chat template"); return NULL; }
    char *buf = malloc(need);
    if (!buf) return NULL;
    r = picolm_chat_apply_template(model, &m, 1, true, buf, need, &need);
    if (r != PICOLM_OK) { free(buf); api_error(r, "cannot apply the chat template"); return NULL; }
    return buf;
}

static bool print_answer_event(const picolm_agent_event *ev, void *user_data) {
    (void)user_data;
    if (ev->kind == PICOLM_EVENT_ANSWER_PIECE) { fwrite(ev->text, 1, ev->text_len, stdout); fflush(stdout); }
    return true;
}

/* Tool-call mode: one model step over external tools; prints the tool calls JSON or the streamed answer, then
 * the statistics. The sampler settings are those of `gp` (already checked). */
static int run_tools(picolm_model *model, picolm_session *session, const char *tools_json, const char *user,
                     int32_t choice, const picolm_generate_params *gp) {
    picolm_agent *agent = NULL;
    picolm_result r = picolm_agent_new(model, &agent);
    if (r != PICOLM_OK) return api_error(r, "cannot create the tool loop");
    r = picolm_agent_add_tools_json(agent, tools_json);
    if (r != PICOLM_OK) { picolm_agent_free(agent); return api_error(r, "bad --tools file"); }
    picolm_agent_params ap;
    picolm_agent_params_default(&ap);
    ap.max_iterations = 1;
    ap.max_tokens = gp->max_tokens;
    ap.sampler = gp->sampler;
    ap.tool_choice = choice;
    picolm_chat_message m = { .role = "user", .content = user };
    picolm_agent_result res;
    memset(&res, 0, sizeof res);
    g_session = session;
    signal(SIGINT, on_sigint);
    r = picolm_agent_run(agent, session, &m, 1, &ap, print_answer_event, NULL, &res);
    signal(SIGINT, SIG_DFL);
    g_session = NULL;
    int rc = 0;
    if (r != PICOLM_OK) rc = api_error(r, "tool-call step failed");
    else {
        if (res.stop == PICOLM_AGENT_TOOL_CALLS_PENDING) printf("%s\n", res.tool_calls_json);
        else fputc('\n', stdout);
        fflush(stdout);
        print_stats(session, res.n_prompt, res.n_reused, res.prefill_seconds, res.n_generated, res.decode_seconds,
                    picolm_agent_stop_name(res.stop));
    }
    picolm_agent_result_free(&res);
    picolm_agent_free(agent);
    return rc;
}

static int cmd_generate(int argc, char **argv) {
    const char *model_path = argv[1];
    const char *prompt = NULL, *cache = NULL, *stops[MAX_STOPS];
    size_t n_stops = 0;
    long n = 256, seed = 42, ctx = 0, threads = default_threads(), top_k = 0, max_rss_mb = 0;
    float temp = 0.8f, top_p = 0.9f, min_p = 0.0f, rep = 1.0f;
    bool raw_special = false, stream = false, chat = false;
    picolm_json_mode json_mode = PICOLM_JSON_OFF;
    const char *schema_path = NULL, *tools_path = NULL;
    int32_t choice = PICOLM_TOOL_CHOICE_AUTO, kv = PICOLM_KV_F16;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE() do { if (!v) return usage_error("option %s needs a value", a); i++; } while (0)
        if (is_help(a)) { print_help(stdout); return 0; }
        else if (!strcmp(a, "-p")) { NEED_VALUE(); prompt = v; }
        else if (!strcmp(a, "-n")) { NEED_VALUE(); if (!parse_long(a, v, 0, 1000000, &n)) return 2; }
        else if (!strcmp(a, "-t")) { NEED_VALUE(); if (!parse_float(a, v, &temp)) return 2; }
        else if (!strcmp(a, "-k")) { NEED_VALUE(); if (!parse_float(a, v, &top_p)) return 2; }
        else if (!strcmp(a, "-s")) { NEED_VALUE(); if (!parse_long(a, v, 0, 2147483647L, &seed)) return 2; }
        else if (!strcmp(a, "-c")) { NEED_VALUE(); if (!parse_long(a, v, 1, 1048576, &ctx)) return 2; }
        else if (!strcmp(a, "-j")) { NEED_VALUE(); if (!parse_long(a, v, 0, 1000000, &threads)) return 2; }
        else if (!strcmp(a, "--cache")) { NEED_VALUE(); cache = v; }
        else if (!strcmp(a, "--top-k")) { NEED_VALUE(); if (!parse_long(a, v, 0, 1000000, &top_k)) return 2; }
        else if (!strcmp(a, "--min-p")) { NEED_VALUE(); if (!parse_float(a, v, &min_p)) return 2; }
        else if (!strcmp(a, "--repeat-penalty")) { NEED_VALUE(); if (!parse_float(a, v, &rep)) return 2; }
        else if (!strcmp(a, "--stop")) {
            NEED_VALUE();
            if (n_stops == MAX_STOPS) return usage_error("at most 16 --stop strings (%s)", v);
            stops[n_stops++] = v;
        }
        else if (!strcmp(a, "--kv")) {
            NEED_VALUE();
            if (picolm_kv_type_parse(v, &kv) != PICOLM_OK) return usage_error("--kv: %s", picolm_last_error_message());
        }
        else if (!strcmp(a, "--json")) json_mode = PICOLM_JSON_OBJECT;
        else if (!strcmp(a, "--json-value")) json_mode = PICOLM_JSON_VALUE;
        else if (!strcmp(a, "--schema")) { NEED_VALUE(); schema_path = v; }
        else if (!strcmp(a, "--tools")) { NEED_VALUE(); tools_path = v; }
        else if (!strcmp(a, "--chat")) chat = true;
        else if (!strcmp(a, "--tool-choice")) {
            NEED_VALUE();
            picolm_result pr = picolm_tool_choice_parse(v, &choice);
            if (pr == PICOLM_ERR_INVALID_ARG) return usage_error("--tool-choice: %s", picolm_last_error_message());
            if (pr != PICOLM_OK) return api_error(pr, "--tool-choice");
        }
        else if (!strcmp(a, "--raw-special")) raw_special = true;
        else if (!strcmp(a, "--stream-weights")) stream = true;
        else if (!strcmp(a, "--max-rss")) { NEED_VALUE(); if (!parse_long(a, v, 1, 16777216L, &max_rss_mb)) return 2; }
        else return usage_error("unknown option '%s'", a);
#undef NEED_VALUE
    }
    /* Sampler ranges are checked by the library (the same rules as C and Python) before any work. */
    picolm_generate_params gp;
    picolm_generate_params_default(&gp);
    gp.max_tokens = (uint32_t)n;
    gp.sampler.temperature = temp;
    gp.sampler.top_p = top_p;
    gp.sampler.top_k = (uint32_t)top_k;
    gp.sampler.min_p = min_p;
    gp.sampler.repeat_penalty = rep;
    gp.sampler.seed = (uint64_t)seed;
    if (picolm_generate_params_check(&gp) != PICOLM_OK)
        return usage_error("%s (-t is the temperature, -k top_p)", picolm_last_error_message());
    char *stdin_prompt = NULL;
    size_t prompt_len = 0;
    if (prompt) {
        prompt_len = strlen(prompt);
    } else {
        stdin_prompt = read_all(stdin, &prompt_len);
        if (!stdin_prompt) { fprintf(stderr, "picolm: cannot read the prompt from standard input\n"); return 1; }
        prompt = stdin_prompt;
    }
    if (prompt_len == 0) { free(stdin_prompt); return usage_error("%s", "empty prompt (give -p PROMPT or pipe text in)"); }

    char *schema = NULL, *tools = NULL, *templated = NULL;
    picolm_result r;
    if (schema_path && !(schema = read_file(schema_path, NULL))) { free(stdin_prompt); return 1; }
    if (tools_path && !(tools = read_file(tools_path, NULL))) { free(schema); free(stdin_prompt); return 1; }
    /* Refuse a --cache path that must not be replaced (a model, a text, a FIFO...) before any work. */
    if (cache && (r = picolm_state_check_path(cache)) != PICOLM_OK) {
        free(schema); free(tools); free(stdin_prompt);
        return api_error(r, "cannot use --cache");
    }
    picolm_model *model = NULL;
    int rc = load_model(model_path, threads, ctx ? ctx : 0, stream, max_rss_mb, &model);
    if (rc) { free(schema); free(tools); free(stdin_prompt); return rc; }
    picolm_session *session = NULL; /* the model's context: -c, or the library's default */
    picolm_session_params sp;
    picolm_session_params_default(&sp);
    sp.kv_type = kv;
    r = picolm_session_new(model, &sp, &session);
    if (r != PICOLM_OK) { rc = api_error(r, "cannot create a session"); goto done; }

    /* An existing, non-empty cache passed the check above: it is a state (maybe of another model, or damaged). */
    struct stat cache_st;
    if (cache && stat(cache, &cache_st) == 0 && cache_st.st_size > 0) {
        r = picolm_session_load_state(session, cache);
        if (r != PICOLM_OK) fprintf(stderr, "picolm: ignoring cache %s: %s\n", cache, picolm_last_error_message());
    }

    if (tools) {
        rc = run_tools(model, session, tools, prompt, choice, &gp);
        if (!rc && g_interrupted) rc = 130;
        goto done;
    }
    if (chat) {
        if (!(templated = chat_prompt(model, prompt))) { rc = 1; goto done; }
        prompt = templated;
        prompt_len = strlen(templated);
    }

    gp.stop = stops;
    gp.n_stop = n_stops;
    gp.json_mode = (uint32_t)json_mode;
    gp.json_schema = schema;
    gp.parse_special = !raw_special;

    g_session = session;
    signal(SIGINT, on_sigint);
    picolm_generation_info gi;
    r = picolm_session_generate(session, prompt, prompt_len, &gp, print_piece, NULL, &gi);
    signal(SIGINT, SIG_DFL);
    g_session = NULL;
    if (r != PICOLM_OK) { rc = api_error(r, "generation failed"); goto done; }
    fputc('\n', stdout);
    fflush(stdout);
    print_stats(session, gi.n_prompt, gi.n_reused, gi.prefill_seconds, gi.n_generated, gi.decode_seconds,
                picolm_stop_reason_name(gi.stop_reason));
    if (g_interrupted) rc = 130;
    if (cache) {
        r = picolm_session_save_state(session, cache);
        if (r != PICOLM_OK) { rc = api_error(r, "cannot save the cache"); goto done; }
    }
done:
    picolm_session_free(session);
    picolm_model_free(model);
    free(templated);
    free(schema);
    free(tools);
    free(stdin_prompt);
    return rc;
}

static int cmd_perplexity(int argc, char **argv) {
    for (int i = 2; i < argc; i++) if (is_help(argv[i]) && (i == 2 || strcmp(argv[i - 1], "-f"))) { print_help(stdout); return 0; }
    if (argc < 3) return usage_error("%s", "perplexity needs MODEL.gguf -f FILE");
    const char *model_path = argv[2], *file = NULL;
    long ctx = 512, batch = 512, chunks = 0, threads = default_threads();
    bool json = false;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) { json = true; continue; }
        if (!v) return usage_error("option %s needs a value", a);
        i++;
        if (!strcmp(a, "-f")) file = v;
        else if (!strcmp(a, "-c")) { if (!parse_long(a, v, 8, 1048576, &ctx)) return 2; }
        else if (!strcmp(a, "-b")) { if (!parse_long(a, v, 1, 1048576, &batch)) return 2; }
        else if (!strcmp(a, "--chunks")) { if (!parse_long(a, v, 0, 1000000, &chunks)) return 2; }
        else if (!strcmp(a, "-j")) { if (!parse_long(a, v, 0, 1000000, &threads)) return 2; }
        else return usage_error("unknown option '%s'", a);
    }
    if (!file) return usage_error("%s", "perplexity needs -f FILE");
    size_t len = 0;
    char *text = read_file(file, &len);
    if (!text) return 1;
    picolm_model *model = NULL;
    int rc = load_model(model_path, threads, ctx, false, 0, &model);
    if (!rc) {
        double ppl = 0, pm = 0;
        picolm_result r = picolm_perplexity(model, text, len, (uint32_t)ctx, (uint32_t)batch, (uint32_t)chunks, &ppl, &pm);
        if (r != PICOLM_OK) rc = api_error(r, "perplexity failed");
        else if (json) printf("{\"ppl\":%.4f,\"uncertainty\":%.5f,\"n_ctx\":%ld}\n", ppl, pm, ctx);
        else printf("PPL = %.4f +/- %.5f\n", ppl, pm);
    }
    picolm_model_free(model);
    free(text);
    return rc;
}

static int cmd_bench(int argc, char **argv) {
    for (int i = 2; i < argc; i++) if (is_help(argv[i])) { print_help(stdout); return 0; }
    if (argc < 3) return usage_error("%s", "bench needs MODEL.gguf");
    const char *model_path = argv[2];
    picolm_bench_params bp; /* picolm-core's defaults, changed by the options */
    picolm_bench_params_default(&bp);
    long pp = bp.n_prompt, tg = bp.n_gen, reps = bp.repetitions, batch = bp.n_batch;
    uint32_t threads[16];
    size_t n_threads = 0;
    bool json = false;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) { json = true; continue; }
        if (!strcmp(a, "--bandwidth")) { bp.bandwidth = true; continue; }
        if (!strcmp(a, "--stream-weights")) { bp.stream_weights = true; continue; }
        if (!v) return usage_error("option %s needs a value", a);
        i++;
        if (!strcmp(a, "-p")) { if (!parse_long(a, v, 0, 1048576, &pp)) return 2; }
        else if (!strcmp(a, "-n")) { if (!parse_long(a, v, 0, 1048576, &tg)) return 2; }
        else if (!strcmp(a, "-r")) { if (!parse_long(a, v, 1, 1000, &reps)) return 2; }
        else if (!strcmp(a, "-b")) { if (!parse_long(a, v, 1, 1048576, &batch)) return 2; }
        else if (!strcmp(a, "--kv")) {
            if (picolm_kv_type_parse(v, &bp.kv_type) != PICOLM_OK) return usage_error("--kv: %s", picolm_last_error_message());
        }
        else if (!strcmp(a, "-j")) {
            char *copy = strdup(v), *save = NULL;
            if (!copy) return 1;
            for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                long t;
                if (n_threads == sizeof threads / sizeof threads[0]) {
                    free(copy);
                    return usage_error("-j takes at most 16 thread counts, got more in '%s'", v);
                }
                if (!parse_long("-j", tok, 0, 1000000, &t)) { free(copy); return 2; }
                threads[n_threads++] = (uint32_t)t;
            }
            free(copy);
        }
        else return usage_error("unknown option '%s'", a);
    }
    if (n_threads == 0) threads[n_threads++] = (uint32_t)default_threads();
    bp.n_prompt = (uint32_t)pp;
    bp.n_gen = (uint32_t)tg;
    bp.threads = threads;
    bp.n_threads_list = n_threads;
    bp.repetitions = (uint32_t)reps;
    bp.n_batch = (uint32_t)batch;
    size_t need = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    if (!buf) return 1;
    picolm_result r = picolm_bench(model_path, &bp, json, buf, cap, &need);
    if (r == PICOLM_ERR_BUFFER_TOO_SMALL) { /* a report larger than 64 KiB: run again with room for it */
        char *nb = realloc(buf, need);
        if (!nb) { free(buf); return 1; }
        buf = nb;
        r = picolm_bench(model_path, &bp, json, buf, need, &need);
    }
    if (r != PICOLM_OK) { free(buf); return api_error(r, "benchmark failed"); }
    fputs(buf, stdout);
    if (json) fputc('\n', stdout);
    free(buf);
    return 0;
}

static int cmd_tokenize(int argc, char **argv) {
    if (argc >= 3 && is_help(argv[2])) { print_help(stdout); return 0; }
    if (argc < 3) return usage_error("%s", "tokenize needs MODEL.gguf");
    const char *model_path = argv[2], *text = NULL;
    bool add_special = true, parse_special = true;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) { print_help(stdout); return 0; }
        else if (!strcmp(a, "--no-special")) add_special = parse_special = false;
        else if (!strcmp(a, "--raw-special")) parse_special = false;
        else if (!strcmp(a, "-p")) {
            if (i + 1 >= argc) return usage_error("option %s needs a value", a);
            text = argv[++i];
        }
        else return usage_error("unknown option '%s'", a);
    }
    char *stdin_text = NULL;
    size_t len = 0;
    if (!text) {
        stdin_text = read_all(stdin, &len);
        if (!stdin_text) return 1;
        text = stdin_text;
    } else {
        len = strlen(text);
    }
    picolm_model *model = NULL;
    int rc = load_model(model_path, 1, 0, false, 0, &model);
    if (!rc) {
        size_t n = 0;
        picolm_result r = picolm_tokenize(model, text, len, add_special, parse_special, NULL, 0, &n);
        uint32_t *ids = malloc((n ? n : 1) * sizeof *ids);
        if (r == PICOLM_ERR_BUFFER_TOO_SMALL || r == PICOLM_OK)
            r = picolm_tokenize(model, text, len, add_special, parse_special, ids, n, &n);
        if (r != PICOLM_OK) rc = api_error(r, "tokenize failed");
        else {
            for (size_t i = 0; i < n; i++) printf("%s%u", i ? " " : "", ids[i]);
            printf("\n");
        }
        free(ids);
    }
    picolm_model_free(model);
    free(stdin_text);
    return rc;
}

int main(int argc, char **argv) {
    picolm_set_log_callback(on_log, NULL);
    if (argc < 2) { print_help(stderr); return 2; }
    if (is_help(argv[1])) { print_help(stdout); return 0; }
    if (!strcmp(argv[1], "--version")) {
        /* Second line: the library's optional parts (picolm_features(); README "Size"). */
        printf("picolm %s\nfeatures: %s\n", picolm_version(), picolm_features());
        return 0;
    }
    if (!strcmp(argv[1], "perplexity")) return cmd_perplexity(argc, argv);
    if (!strcmp(argv[1], "bench")) return cmd_bench(argc, argv);
    if (!strcmp(argv[1], "quantize")) {
        for (int i = 2; i < argc; i++) if (is_help(argv[i])) { print_help(stdout); return 0; }
        if (argc != 5) return usage_error("%s", "quantize needs IN.gguf OUT.gguf TYPE");
        uint64_t in = 0, out = 0;
        picolm_result r = picolm_model_quantize(argv[2], argv[3], argv[4], &in, &out);
        if (r != PICOLM_OK) return api_error(r, "quantization failed");
        fprintf(stderr, "quantized %s -> %s (%s): %.1f MiB -> %.1f MiB of tensor data\n", argv[2], argv[3], argv[4],
                in / 1048576.0, out / 1048576.0);
        return 0;
    }
    if (!strcmp(argv[1], "tokenize")) return cmd_tokenize(argc, argv);
    if (argv[1][0] == '-') return usage_error("the first argument must be the model file, got '%s'", argv[1]);
    return cmd_generate(argc, argv);
}
