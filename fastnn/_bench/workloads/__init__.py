"""The workloads, one module per family; ``fastnn._bench.registry`` names and builds them."""
