"""Load benchmarks of the chat server against its peers (`make bench`, `make bench-quick`)."""
