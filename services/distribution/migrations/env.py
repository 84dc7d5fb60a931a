from libs.migrations_env import run_env

run_env()
