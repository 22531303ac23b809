"""`python -m sustainml.workers.hw_constraints`: one replica of the shipped HW_CONSTRAINTS node."""

from sustainml.workers.shipped import run_shipped

if __name__ == "__main__":
    run_shipped("hw_constraints")
