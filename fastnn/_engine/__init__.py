"""fastnn's private engine: what ``fastnn.ops`` and ``fastnn.nn`` both run on.

Tiers, each importing only the ones before it::

    src_c  <-  fastnn._kernels  <-  fastnn._engine  <-  fastnn.ops, fastnn.nn  <-  ...

The engine holds the thread policy (``config``), the batch split across threads
(``parallel``), work buffers (``buffers``), the kernel codes by name (``codes``)
and the dense and conv engines (``dense``, ``conv``).  Its functions take
validated arrays and the buffers to write into; they do no validation.
"""
