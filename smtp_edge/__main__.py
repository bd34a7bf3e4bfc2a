"""`python -m smtp_edge`: the Procfile's smtp process (MX and submission listeners)."""

from smtp_edge.server import main

if __name__ == "__main__":
    main()
