"""`python -m sustainml.workers.hw_resources`: one replica of the shipped HW_RESOURCES node."""

from sustainml.workers.shipped import run_shipped

if __name__ == "__main__":
    run_shipped("hw_resources")
