"""Lightning callbacks that account device energy: weight transitions (write) and activity (read)."""
