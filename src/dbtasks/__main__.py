from dbtasks.cli import main

main()
