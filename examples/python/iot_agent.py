"""IoT demo: the tool-call loop with two device tools driven by the model.

Usage: python examples/python/iot_agent.py [MODEL.gguf] ["request"]
"""

import sys

import picolm

devices = {"temperature": 21.5, "humidity": 40.0, "relays": [False] * 4}


def read_sensor(args):
    """Reads a sensor; the arguments were validated against the schema by the grammar."""
    return f"{devices[args['name']]}"


def set_relay(args):
    """Switches a relay; an exception here becomes an error message for the model."""
    if not 0 <= args["id"] < len(devices["relays"]):
        raise ValueError(f"no relay {args['id']} (ids 0-3)")
    devices["relays"][args["id"]] = args["on"]
    return f"relay {args['id']} is {'on' if args['on'] else 'off'}"


tools = [
    picolm.Tool("read_sensor", "Read a sensor value",
                {"type": "object", "properties": {"name": {"enum": ["temperature", "humidity"]}}, "required": ["name"]},
                read_sensor),
    picolm.Tool("set_relay", "Switch a relay on or off",
                {"type": "object", "properties": {"id": {"type": "integer"}, "on": {"type": "boolean"}},
                 "required": ["id", "on"]},
                set_relay),
]


def show(kind, data):
    """Prints the loop's events as they happen."""
    if kind == "tool_call":
        print(f"[tool call] {data['name']} {data['arguments']}")
    elif kind == "tool_result":
        print(f"[tool result] {data['content']}{' (error)' if data['is_error'] else ''}")
    else:
        print(data["text"], end="", flush=True)


path = sys.argv[1] if len(sys.argv) > 1 else "models/SmolLM2-135M-Instruct.Q4_1.gguf"
request = sys.argv[2] if len(sys.argv) > 2 else "What is the temperature in the greenhouse?"
with picolm.Model(path, n_ctx=1024) as model:
    print(f"[user] {request}")
    result = model.run_tools([{"role": "user", "content": request}], tools, tool_choice="required", on_event=show)
    print(f"\n[done] {result.stop} after {result.iterations} steps, {len(result.calls)} tool calls")
