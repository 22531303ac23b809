"""Test support code shared by several suites (private brokers, counting helpers)."""
