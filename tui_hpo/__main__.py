from tui_hpo.cli import main

main()
