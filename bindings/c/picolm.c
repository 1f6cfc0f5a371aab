/*
 * picolm — command-line front end of libpicolm, compatible with the original PicoLM's flags:
 *
 *   picolm MODEL.gguf [-p PROMPT] [-n N] [-t TEMP] [-k TOP_P] [-s SEED] [-c CTX] [-j THREADS] [--json | --json-value]
 *                     [--cache FILE] [more options, see --help]
 *   picolm perplexity MODEL.gguf -f TEXT_FILE [-c 512] [-b 512] [--chunks N] [-j THREADS] [--json]
 *   picolm bench MODEL.gguf [-p 512] [-n 128] [-j 1,2] [-r 3] [--stream-weights] [--kv q8_0] [--json]
 *   picolm tokenize MODEL.gguf [-p TEXT] [--no-special]
 *   picolm quantize IN.gguf OUT.gguf TYPE       (TYPE: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K..Q6_K Q4_K_M Q5_K_M F16 ...)
 *
 * Only generated text goes to stdout; statistics and errors go to stderr. Exit status: 0 success, 1 runtime
 * error, 2 usage error. Written against the public C API only (include/picolm.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "picolm.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_STOPS 16

static picolm_session *g_session = NULL;

static void on_sigint(int sig) {
    (void)sig;
    if (g_session) picolm_session_cancel(g_session);
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
    fprintf(stderr, "picolm: %s: %s%s%s\n", what, picolm_strerror(r), detail[0] ? ": " : "", detail);
    return 1;
}

static void print_help(FILE *f) {
    fputs("Usage: picolm MODEL.gguf [options]          generate text\n"
          "       picolm perplexity MODEL.gguf -f FILE   perplexity of a text (llama.cpp's method)\n"
          "       picolm bench MODEL.gguf [options]      prefill/decode speed (llama-bench style)\n"
          "       picolm tokenize MODEL.gguf -p TEXT      print token ids\n"
          "       picolm quantize IN.gguf OUT.gguf TYPE  quantize (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K\n"
          "                                              Q4_K_M Q5_K_M F16 BF16 F32)\n"
          "\nGeneration options:\n"
          "  -p PROMPT          prompt (default: read standard input)\n"
          "  -n N               max tokens to generate (default 256)\n"
          "  -t TEMP            temperature, 0 = greedy (default 0.8)\n"
          "  -k TOP_P           nucleus sampling threshold (default 0.9)\n"
          "  -s SEED            random seed (default 42)\n"
          "  -c CTX             context length (default: model's, at most 2048)\n"
          "  -j THREADS         compute threads (default: min(4, CPUs))\n"
          "  --json             constrain output to one JSON object (compact, like OpenAI's json_object mode)\n"
          "  --json-value       constrain output to any one JSON value (compact; also bare numbers, strings)\n"
          "  --schema FILE      constrain output to JSON valid against the JSON Schema in FILE\n"
          "  --chat             wrap the prompt as a user message in the model's chat template\n"
          "  --tools FILE       tool-call mode: FILE holds OpenAI tool definitions (JSON array); prints the\n"
          "                     model's {\"tool_calls\":[...]} JSON (PicoClaw's format) or its text answer\n"
          "  --tool-choice C    auto (default), required or none (with --tools)\n"
          "  --cache FILE       load/save the KV cache state (skips prefill of a repeated prompt)\n"
          "  --top-k K          keep the K most likely tokens (default off)\n"
          "  --min-p P          min-p sampling (default off)\n"
          "  --repeat-penalty R repetition penalty (default 1 = off)\n"
          "  --stop STR         stop before STR (repeatable)\n"
          "  --raw-special      do not parse special tokens in the prompt\n"
          "  --stream-weights   page weights layer by layer (low-RAM boards)\n"
          "  --kv TYPE          KV cache type: f16 (default) or q8_0\n"
          "  --version, --help\n",
          f);
}

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

static long default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    return n < 4 ? n : 4;
}

static bool print_piece(const char *utf8, size_t len, void *user_data) {
    (void)user_data;
    fwrite(utf8, 1, len, stdout);
    fflush(stdout);
    return true;
}

static const char *stop_name(picolm_stop_reason r) {
    switch (r) {
    case PICOLM_STOP_EOG: return "end of generation";
    case PICOLM_STOP_MAX_TOKENS: return "max tokens";
    case PICOLM_STOP_STRING: return "stop string";
    case PICOLM_STOP_GRAMMAR_COMPLETE: return "JSON complete";
    case PICOLM_STOP_CONTEXT_FULL: return "context full";
    case PICOLM_STOP_CANCELLED: return "cancelled";
    case PICOLM_STOP_CALLBACK: return "stopped";
    }
    return "?";
}

static int load_model(const char *path, long threads, long ctx, bool stream, picolm_kv_type kv, picolm_model **model) {
    picolm_model_params mp;
    picolm_model_params_default(&mp);
    mp.n_threads = (uint32_t)threads;
    mp.n_ctx = (uint32_t)ctx;
    mp.stream_weights = stream;
    mp.kv_type = kv;
    picolm_result r = picolm_model_load(path, &mp, model);
    if (r != PICOLM_OK) return api_error(r, "cannot load model");
    return 0;
}

/* Reads a whole file into a NUL-terminated malloc'd buffer; prints the reason and returns NULL on failure. */
static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "picolm: cannot open %s: %s\n", path, strerror(errno)); return NULL; }
    size_t len = 0;
    char *buf = read_all(f, &len);
    fclose(f);
    if (!buf) fprintf(stderr, "picolm: cannot read %s\n", path);
    return buf;
}

/* Renders one user message with the model's chat template; returns a malloc'd prompt or NULL (error printed). */
static char *chat_prompt(picolm_model *model, const char *user) {
    picolm_chat_message m = { "user", user, NULL, NULL };
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

/* Tool-call mode: one model step over external tools; prints the tool calls JSON or the streamed answer. */
static int run_tools(picolm_model *model, picolm_session *session, const char *tools_json, const char *user,
                     picolm_tool_choice choice, long n, float temp, long seed) {
    picolm_agent *agent = NULL;
    picolm_result r = picolm_agent_new(model, &agent);
    if (r != PICOLM_OK) return api_error(r, "cannot create the tool loop");
    r = picolm_agent_add_tools_json(agent, tools_json);
    if (r != PICOLM_OK) { picolm_agent_free(agent); return api_error(r, "bad --tools file"); }
    picolm_agent_params ap;
    picolm_agent_params_default(&ap);
    ap.max_iterations = 1;
    ap.max_tokens = (uint32_t)n;
    ap.temperature = temp;
    ap.seed = (uint64_t)seed;
    ap.tool_choice = choice;
    picolm_chat_message m = { "user", user, NULL, NULL };
    picolm_agent_result res;
    memset(&res, 0, sizeof res);
    g_session = session;
    signal(SIGINT, on_sigint);
    r = picolm_agent_run(agent, session, &m, 1, &ap, print_answer_event, NULL, &res);
    signal(SIGINT, SIG_DFL);
    g_session = NULL;
    int rc = 0;
    if (r != PICOLM_OK) rc = api_error(r, "tool-call step failed");
    else if (res.stop == PICOLM_AGENT_TOOL_CALLS_PENDING) printf("%s\n", res.tool_calls_json);
    else fputc('\n', stdout);
    picolm_agent_result_free(&res);
    picolm_agent_free(agent);
    return rc;
}

static int cmd_generate(int argc, char **argv) {
    const char *model_path = argv[1];
    const char *prompt = NULL, *cache = NULL, *stops[MAX_STOPS];
    size_t n_stops = 0;
    long n = 256, seed = 42, ctx = 0, threads = default_threads(), top_k = 0;
    float temp = 0.8f, top_p = 0.9f, min_p = 0.0f, rep = 1.0f;
    bool raw_special = false, stream = false, chat = false;
    picolm_json_mode json_mode = PICOLM_JSON_OFF;
    const char *schema_path = NULL, *tools_path = NULL;
    picolm_tool_choice choice = PICOLM_TOOL_CHOICE_AUTO;
    picolm_kv_type kv = PICOLM_KV_F16;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE() do { if (!v) return usage_error("option %s needs a value", a); i++; } while (0)
        if (!strcmp(a, "-p")) { NEED_VALUE(); prompt = v; }
        else if (!strcmp(a, "-n")) { NEED_VALUE(); if (!parse_long(a, v, 0, 1000000, &n)) return 2; }
        else if (!strcmp(a, "-t")) { NEED_VALUE(); if (!parse_float(a, v, &temp)) return 2; }
        else if (!strcmp(a, "-k")) { NEED_VALUE(); if (!parse_float(a, v, &top_p)) return 2; }
        else if (!strcmp(a, "-s")) { NEED_VALUE(); if (!parse_long(a, v, 0, 2147483647L, &seed)) return 2; }
        else if (!strcmp(a, "-c")) { NEED_VALUE(); if (!parse_long(a, v, 1, 1048576, &ctx)) return 2; }
        else if (!strcmp(a, "-j")) { NEED_VALUE(); if (!parse_long(a, v, 1, 1024, &threads)) return 2; }
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
            if (!strcmp(v, "f16")) kv = PICOLM_KV_F16;
            else if (!strcmp(v, "q8_0")) kv = PICOLM_KV_Q8_0;
            else return usage_error("--kv expects f16 or q8_0, got '%s'", v);
        }
        else if (!strcmp(a, "--json")) json_mode = PICOLM_JSON_OBJECT;
        else if (!strcmp(a, "--json-value")) json_mode = PICOLM_JSON_VALUE;
        else if (!strcmp(a, "--schema")) { NEED_VALUE(); schema_path = v; }
        else if (!strcmp(a, "--tools")) { NEED_VALUE(); tools_path = v; }
        else if (!strcmp(a, "--chat")) chat = true;
        else if (!strcmp(a, "--tool-choice")) {
            NEED_VALUE();
            if (!strcmp(v, "auto")) choice = PICOLM_TOOL_CHOICE_AUTO;
            else if (!strcmp(v, "required")) choice = PICOLM_TOOL_CHOICE_REQUIRED;
            else if (!strcmp(v, "none")) choice = PICOLM_TOOL_CHOICE_NONE;
            else return usage_error("--tool-choice expects auto, required or none, got '%s'", v);
        }
        else if (!strcmp(a, "--raw-special")) raw_special = true;
        else if (!strcmp(a, "--stream-weights")) stream = true;
        else return usage_error("unknown option '%s'", a);
#undef NEED_VALUE
    }
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
    if (schema_path && !(schema = read_file(schema_path))) { free(stdin_prompt); return 1; }
    if (tools_path && !(tools = read_file(tools_path))) { free(schema); free(stdin_prompt); return 1; }
    picolm_model *model = NULL;
    int rc = load_model(model_path, threads, ctx ? ctx : 0, stream, kv, &model);
    if (rc) { free(schema); free(tools); free(stdin_prompt); return rc; }
    picolm_model_info info;
    picolm_model_get_info(model, &info);
    picolm_session_params sp;
    picolm_session_params_default(&sp);
    sp.n_ctx = ctx ? (uint32_t)ctx : (info.n_ctx < 2048 ? info.n_ctx : 2048);
    picolm_session *session = NULL;
    picolm_result r = picolm_session_new(model, &sp, &session);
    if (r != PICOLM_OK) { rc = api_error(r, "cannot create a session"); goto done; }

    if (cache && access(cache, R_OK) == 0) {
        r = picolm_session_load_state(session, cache);
        if (r != PICOLM_OK) fprintf(stderr, "picolm: ignoring cache %s: %s\n", cache, picolm_last_error_message());
    }

    if (tools) {
        rc = run_tools(model, session, tools, prompt, choice, n, temp, seed);
        goto done;
    }
    if (chat) {
        if (!(templated = chat_prompt(model, prompt))) { rc = 1; goto done; }
        prompt = templated;
        prompt_len = strlen(templated);
    }

    picolm_generate_params gp;
    picolm_generate_params_default(&gp);
    gp.max_tokens = (uint32_t)n;
    gp.temperature = temp;
    gp.top_p = top_p;
    gp.top_k = (uint32_t)top_k;
    gp.min_p = min_p;
    gp.repeat_penalty = rep;
    gp.seed = (uint64_t)seed;
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
    if (gi.n_reused > 0) fprintf(stderr, "Skipping %u cached prompt tokens\n", gi.n_reused);
    picolm_memory_report mem;
    picolm_session_memory(session, &mem);
    fprintf(stderr,
            "prompt: %u tokens (%u cached), %.1f tok/s | generated: %u tokens, %.1f tok/s | stop: %s\n"
            "memory: peak RSS %.1f MiB (now: anonymous %.1f MiB, mapped model %.1f MiB), KV cache %.1f MiB, buffers %.1f MiB\n",
            gi.n_prompt, gi.n_reused,
            gi.prefill_seconds > 0 ? (gi.n_prompt - gi.n_reused) / gi.prefill_seconds : 0.0,
            gi.n_generated, gi.decode_seconds > 0 ? gi.n_generated / gi.decode_seconds : 0.0, stop_name(gi.stop_reason),
            mem.peak_rss / 1048576.0, mem.rss_anon / 1048576.0, mem.rss_file / 1048576.0, mem.kv_bytes / 1048576.0,
            mem.scratch_bytes / 1048576.0);
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
        else if (!strcmp(a, "-j")) { if (!parse_long(a, v, 1, 1024, &threads)) return 2; }
        else return usage_error("unknown option '%s'", a);
    }
    if (!file) return usage_error("%s", "perplexity needs -f FILE");
    FILE *f = fopen(file, "rb");
    if (!f) { fprintf(stderr, "picolm: cannot open %s: %s\n", file, strerror(errno)); return 1; }
    size_t len = 0;
    char *text = read_all(f, &len);
    fclose(f);
    if (!text) { fprintf(stderr, "picolm: cannot read %s\n", file); return 1; }
    picolm_model *model = NULL;
    int rc = load_model(model_path, threads, ctx, false, PICOLM_KV_F16, &model);
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
    if (argc < 3) return usage_error("%s", "bench needs MODEL.gguf");
    const char *model_path = argv[2];
    long pp = 512, tg = 128, reps = 3, batch = 512;
    uint32_t threads[16];
    size_t n_threads = 0;
    bool json = false, stream = false, kv_q8 = false;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) { json = true; continue; }
        if (!strcmp(a, "--stream-weights")) { stream = true; continue; }
        if (!v) return usage_error("option %s needs a value", a);
        i++;
        if (!strcmp(a, "-p")) { if (!parse_long(a, v, 0, 1048576, &pp)) return 2; }
        else if (!strcmp(a, "-n")) { if (!parse_long(a, v, 0, 1048576, &tg)) return 2; }
        else if (!strcmp(a, "-r")) { if (!parse_long(a, v, 1, 1000, &reps)) return 2; }
        else if (!strcmp(a, "-b")) { if (!parse_long(a, v, 1, 1048576, &batch)) return 2; }
        else if (!strcmp(a, "--kv")) {
            if (!strcmp(v, "q8_0")) kv_q8 = true;
            else if (strcmp(v, "f16")) return usage_error("--kv expects f16 or q8_0, got '%s'", v);
        }
        else if (!strcmp(a, "-j")) {
            char *copy = strdup(v), *save = NULL;
            if (!copy) return 1;
            for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                long t;
                if (n_threads == 16 || !parse_long("-j", tok, 1, 1024, &t)) { free(copy); return 2; }
                threads[n_threads++] = (uint32_t)t;
            }
            free(copy);
        }
        else return usage_error("unknown option '%s'", a);
    }
    if (n_threads == 0) threads[n_threads++] = (uint32_t)default_threads();
    picolm_bench_params bp = { (uint32_t)pp, (uint32_t)tg, threads, n_threads, (uint32_t)reps, (uint32_t)batch, stream, kv_q8 };
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
    if (argc < 3) return usage_error("%s", "tokenize needs MODEL.gguf");
    const char *model_path = argv[2], *text = NULL;
    bool special = true;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--no-special")) special = false;
        else if (!strcmp(argv[i], "-p") && i + 1 < argc) text = argv[++i];
        else return usage_error("unknown option '%s'", argv[i]);
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
    int rc = load_model(model_path, 1, 0, false, PICOLM_KV_F16, &model);
    if (!rc) {
        size_t n = 0;
        picolm_result r = picolm_tokenize(model, text, len, special, special, NULL, 0, &n);
        uint32_t *ids = malloc((n ? n : 1) * sizeof *ids);
        if (r == PICOLM_ERR_BUFFER_TOO_SMALL || r == PICOLM_OK) r = picolm_tokenize(model, text, len, special, special, ids, n, &n);
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
    if (argc < 2) { print_help(stderr); return 2; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { print_help(stdout); return 0; }
    if (!strcmp(argv[1], "--version")) { printf("picolm %s\n", picolm_version()); return 0; }
    if (!strcmp(argv[1], "perplexity")) return cmd_perplexity(argc, argv);
    if (!strcmp(argv[1], "bench")) return cmd_bench(argc, argv);
    if (!strcmp(argv[1], "quantize")) {
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
