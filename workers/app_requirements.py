"""`python -m sustainml.workers.app_requirements`: one replica of the shipped APP_REQUIREMENTS node."""

from sustainml.workers.shipped import run_shipped

if __name__ == "__main__":
    run_shipped("app_requirements")
