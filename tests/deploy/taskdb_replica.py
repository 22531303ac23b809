"""One 'orchestrator replica' for tests/deploy/test_taskdb_concurrency.py, run as its own process:

    python taskdb_replica.py DB_URL PROBLEM_ID START_AT THREADS PER_THREAD

At wall-clock START_AT (so two replicas start together) it allocates THREADS x PER_THREAD new
problems, then as many iterations of PROBLEM_ID, from THREADS threads of one TaskDB, and prints the
allocated keys as JSON {"problems": [[p, i], ...], "iterations": [[p, i], ...]}.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sustainml.orchestrator.taskdb import TaskDB


def allocate(db: TaskDB, n_threads: int, per_thread: int, problem: int | None) -> list[tuple[int, int]]:
    start = threading.Barrier(n_threads)

    def work(_: int) -> list[tuple[int, int]]:
        start.wait()  # every thread hits the counter row at once
        keys = []
        for _i in range(per_thread):
            key = (
                db.create_problem(b"\x80")
                if problem is None
                else db.submit_iteration(problem, b"\x80", 1).key
            )
            keys.append((key.problem_id, key.iteration_id))
        return keys

    with ThreadPoolExecutor(n_threads) as pool:
        return [k for keys in pool.map(work, range(n_threads)) for k in keys]


def main(argv: list[str]) -> int:
    url, problem, start_at, n_threads, per_thread = (
        argv[1],
        int(argv[2]),
        float(argv[3]),
        int(argv[4]),
        int(argv[5]),
    )
    db = TaskDB(url)
    try:
        time.sleep(max(0.0, start_at - time.time()))  # a start line shared with the other replica
        problems = allocate(db, n_threads, per_thread, None)
        iterations = allocate(db, n_threads, per_thread, problem)
    finally:
        db.close()
    print(json.dumps({"problems": problems, "iterations": iterations}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
