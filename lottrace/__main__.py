from lottrace.cli import main

main()
