from sseproxy.cli import main

main()
