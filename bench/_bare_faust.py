"""A bare faust-streaming agent that only counts records: the per-record ceiling of Faust itself.

    python bench/_bare_faust.py --bootstrap HOST:PORT --topic T --expect N [--loop uvloop|asyncio]

Prints one JSON line, ``{"records": N, "seconds": S, "records_per_s": R, "cpu_seconds": C}``, timed
from the first record to the N-th, then exits. ``stream_throughput.py`` runs it beside the worker
so that the worker's single-record rate is compared with Faust's own in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    parser.add_argument("--batch", type=int, default=2000, help="take_events batch size, as the worker's")
    parser.add_argument("--fetch-bytes", type=int, default=16 * 1024 * 1024, help="as the worker's max_fetch_bytes")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import mode.loop

        mode.loop.use("uvloop")
    import faust

    app = faust.App(
        f"bare-{uuid.uuid4().hex[:6]}", broker=f"kafka://{args.bootstrap}", store="memory://",
        web_enabled=False, consumer_auto_offset_reset="earliest", broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0, broker_max_poll_records=args.batch, autodiscover=False,
        consumer_max_fetch_size=args.fetch_bytes,
    )  # fmt: skip
    topic = app.topic(args.topic, key_serializer="raw", value_serializer="raw")
    state = {"n": 0, "first": 0.0, "cpu": 0.0}

    @app.agent(topic)
    async def count(stream):  # type: ignore[no-untyped-def]
        async for batch in stream.take_events(args.batch, 0.05):
            if not state["n"]:
                state["first"], state["cpu"] = time.perf_counter(), time.process_time()
            state["n"] += len(batch)
            if state["n"] >= args.expect:
                seconds = time.perf_counter() - state["first"]
                cpu = time.process_time() - state["cpu"]
                print(json.dumps({"records": state["n"], "seconds": seconds, "records_per_s": state["n"] / seconds,
                                  "cpu_seconds": cpu, "loop": args.loop}), flush=True)  # fmt: skip
                os._exit(0)  # the measurement is done; skip Faust's shutdown

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


if __name__ == "__main__":
    main()
