"""Fidelity tests: the same upstream and client through a real peer (nginx, HAProxy) and
through sseproxy with the equivalent scenario, comparing what the client observes."""
