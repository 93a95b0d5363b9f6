from cleaner.cli.main import main

main(prog_name="cxclean")
