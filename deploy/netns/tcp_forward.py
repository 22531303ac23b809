"""A tiny TCP forwarder: accept on one or more LISTEN addresses, relay each connection to TARGET.

The shared RabbitMQ listens on 127.0.0.1 only, and its guest account only works from loopback; a
worker in another network namespace reaches it through this relay on the root end of its veth
link (the broker then sees a loopback client). When a namespace's link is cut, its relayed
connections stall rather than close, exactly like a real host dropping off the network: the broker
notices through missed AMQP heartbeats.

    python tcp_forward.py --to 127.0.0.1:5672 --listen 10.231.7.1:35672 --listen 10.231.7.5:35672

Prints "ready" on stdout once every listener is bound; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys


def _split(hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    return host, int(port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass  # the other direction notices and closes both ends
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


async def _serve(listen: list[str], target: str) -> None:
    to_host, to_port = _split(target)
    writers: set[asyncio.StreamWriter] = set()
    handlers: set[asyncio.Task[None]] = set()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            try:
                up_r, up_w = await asyncio.open_connection(to_host, to_port)
            except OSError as exc:
                print(f"tcp_forward: cannot reach {target}: {exc}", file=sys.stderr, flush=True)
                client_w.close()
                return
            writers.update((client_w, up_w))
            await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))
        finally:
            writers.difference_update((client_w,))
            handlers.discard(task)

    servers = [await asyncio.start_server(handle, *_split(addr), reuse_address=True) for addr in listen]
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()
    # close every relayed connection so each handler ends on its own (no cancelled tasks at exit)
    for writer in list(writers):
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()
    if handlers:
        await asyncio.wait(set(handlers), timeout=5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--to", required=True, help="host:port to relay to")
    parser.add_argument("--listen", action="append", required=True, help="host:port to accept on")
    args = parser.parse_args()
    asyncio.run(_serve(args.listen, args.to))
    return 0


if __name__ == "__main__":
    sys.exit(main())
