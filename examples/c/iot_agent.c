/* IoT demo: the tool-call loop with two device tools, read_sensor(name) and set_relay(id, on), driven by the
 * model. The handlers are plain C functions with a user_data pointer to the device state.
 *   cc iot_agent.c $(pkg-config --cflags --libs picolm) -o iot_agent
 * Usage: ./iot_agent MODEL.gguf ["user request"] */
#include <picolm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct devices { double temperature, humidity; bool relay[4]; };

static void read_sensor(const char *args, size_t len, picolm_tool_result *result, void *user_data) {
    (void)len;
    struct devices *d = user_data;
    char out[64];
    if (strstr(args, "\"temperature\"")) snprintf(out, sizeof out, "%.1f C", d->temperature);
    else if (strstr(args, "\"humidity\"")) snprintf(out, sizeof out, "%.0f %%", d->humidity);
    else { picolm_tool_result_set(result, "unknown sensor", 14, true); return; }
    picolm_tool_result_set(result, out, strlen(out), false);
}

static void set_relay(const char *args, size_t len, picolm_tool_result *result, void *user_data) {
    (void)len;
    struct devices *d = user_data;
    const char *p = strstr(args, "\"id\":");
    long id = p ? strtol(p + 5, NULL, 10) : -1;
    if (id < 0 || id > 3) { picolm_tool_result_set(result, "no such relay (ids 0-3)", 23, true); return; }
    d->relay[id] = strstr(args, "\"on\":true") != NULL;
    char out[64];
    snprintf(out, sizeof out, "relay %ld is %s", id, d->relay[id] ? "on" : "off");
    picolm_tool_result_set(result, out, strlen(out), false);
}

static bool on_event(const picolm_agent_event *ev, void *user_data) {
    (void)user_data;
    switch (ev->kind) {
    case PICOLM_EVENT_TOOL_CALL: printf("[tool call] %s %s\n", ev->tool_name, ev->text); break;
    case PICOLM_EVENT_TOOL_RESULT: printf("[tool result] %s%s\n", ev->text, ev->is_error ? " (error)" : ""); break;
    case PICOLM_EVENT_ANSWER_PIECE: fwrite(ev->text, 1, ev->text_len, stdout); break;
    }
    fflush(stdout);
    return true;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [\"request\"]\n", argv[0]);
        return 2;
    }
    const char *request = argc > 2 ? argv[2] : "What is the temperature in the greenhouse?";
    struct devices dev = { 21.5, 40.0, { false, false, false, false } };
    picolm_model *model = NULL;
    picolm_session *session = NULL;
    picolm_agent *agent = NULL;
    picolm_agent_result res;
    memset(&res, 0, sizeof res);
    int rc = 1;
    if (picolm_model_load(argv[1], NULL, &model) != PICOLM_OK) goto out;
    if (picolm_session_new(model, NULL, &session) != PICOLM_OK) goto out;
    if (picolm_agent_new(model, &agent) != PICOLM_OK) goto out;
    if (picolm_agent_add_tool(agent, "read_sensor", "Read a sensor value",
                              "{\"type\":\"object\",\"properties\":{\"name\":{\"enum\":[\"temperature\",\"humidity\"]}},"
                              "\"required\":[\"name\"]}",
                              read_sensor, &dev) != PICOLM_OK) goto out;
    if (picolm_agent_add_tool(agent, "set_relay", "Switch a relay on or off",
                              "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"on\":{\"type\":\"boolean\"}},"
                              "\"required\":[\"id\",\"on\"]}",
                              set_relay, &dev) != PICOLM_OK) goto out;
    picolm_agent_params ap;
    picolm_agent_params_default(&ap);
    ap.tool_choice = PICOLM_TOOL_CHOICE_REQUIRED; /* a 135M model needs the nudge to use a tool first */
    picolm_chat_message msg = { .role = "user", .content = request };
    printf("[user] %s\n", request);
    if (picolm_agent_run(agent, session, &msg, 1, &ap, on_event, NULL, &res) != PICOLM_OK) goto out;
    printf("\n[done] %s after %u steps, %u tool calls\n", res.stop == PICOLM_AGENT_ANSWERED ? "answered" : "stopped",
           res.iterations, res.n_tool_calls);
    rc = res.stop == PICOLM_AGENT_ANSWERED && res.n_tool_calls > 0 ? 0 : 1;
out:
    if (rc) fprintf(stderr, "error: %s\n", picolm_last_error_message());
    picolm_agent_result_free(&res);
    picolm_agent_free(agent);
    picolm_session_free(session);
    picolm_model_free(model);
    return rc;
}
