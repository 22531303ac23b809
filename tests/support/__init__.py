"""Test support code shared by several suites: polling for a condition (``waiting``), private
brokers, a TCP proxy, CLI runs in a child process, batch counting, container helpers."""
