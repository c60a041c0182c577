"""CPU time per asyncio task switch, without and with Causeway's thread-context writer, in one
process, in alternating rounds (the writer's hooks swapped in and out between rounds): TASKS
tasks, each in a span of its own made current (as a request's server span is), each yielding to
the loop, so that every step the loop runs is another task's and changes the span to publish
(the writer's worst case). Prints {"without": [ns per switch per round], "with": [...]}.

usage: python_task_switch.py ROUNDS SWITCHES_PER_ROUND [TASKS]
"""
import asyncio
import asyncio.base_events
import asyncio.events
import json
import os
import sys
import time

from opentelemetry import context as context_api
from opentelemetry.sdk.trace import TracerProvider

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "otlp", "python"))
from causeway_thread_ctx import ThreadContextSpanProcessor  # noqa: E402
from causeway_thread_tid import ThreadTidSpanProcessor  # noqa: E402

runtime = context_api._RUNTIME_CONTEXT


def hooks():
    """What the writer replaces: the runtime context's attach/detach and the loop's handle runs."""
    return (runtime.attach, runtime.detach, asyncio.base_events.BaseEventLoop._run_once, asyncio.events.Handle._run)


def use(installed):
    runtime.attach, runtime.detach, asyncio.base_events.BaseEventLoop._run_once, asyncio.events.Handle._run = installed


async def task(tracer, steps):
    with tracer.start_as_current_span("request"):
        for _ in range(steps):
            await asyncio.sleep(0)


async def round_ns_per_switch(tracer, switches, tasks):
    steps = switches // tasks
    began = time.thread_time_ns()
    await asyncio.gather(*(task(tracer, steps) for _ in range(tasks)))
    return (time.thread_time_ns() - began) / (steps * tasks)


def main():
    rounds, switches = int(sys.argv[1]), int(sys.argv[2])
    tasks = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    without = hooks()
    provider = TracerProvider()
    provider.add_span_processor(ThreadTidSpanProcessor())
    provider.add_span_processor(ThreadContextSpanProcessor())
    written = hooks()
    if written == without:
        raise SystemExit("the writer did not load: nothing to measure")
    tracer = provider.get_tracer("task-switch")
    measured = {"without": [], "with": []}

    async def run():
        for i in range(rounds):
            # Alternate which goes first, so that neither always follows the other.
            for name in ("without", "with") if i % 2 == 0 else ("with", "without"):
                use(written if name == "with" else without)
                measured[name].append(await round_ns_per_switch(tracer, switches, tasks))
        use(without)

    asyncio.run(run())
    print(json.dumps(measured))


if __name__ == "__main__":
    main()
