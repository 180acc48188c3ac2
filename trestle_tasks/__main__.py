from trestle_tasks.cli import main

main(prog_name="trestle-etl")
