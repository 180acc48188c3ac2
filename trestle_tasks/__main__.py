from trestle_tasks.cli.commands import main

main(prog_name="trestle-etl")
