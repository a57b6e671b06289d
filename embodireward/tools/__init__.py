"""Command-line tools: evaluate, judge and plot runs."""
