"""`python -m sustainml.workers.ml_model`: one replica of the shipped ML_MODEL node."""

from sustainml.workers.shipped import run_shipped

if __name__ == "__main__":
    run_shipped("ml_model")
