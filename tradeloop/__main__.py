from tradeloop.cli import main

main()
