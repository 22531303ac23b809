"""`python -m sustainml.workers.carbon_footprint`: one replica of the shipped CARBON_FOOTPRINT node."""

from sustainml.workers.shipped import run_shipped

if __name__ == "__main__":
    run_shipped("carbon_footprint")
