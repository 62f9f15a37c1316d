"""TCP's exception for the application, in a module mypyc does not compile.

mypyc cannot compile a subclass of a built-in exception; ``seashard.tcp.connection``
(compiled, see ``seashard/accel.py``) imports it from here and re-exports it.
"""


class TcpStateError(RuntimeError):
    """The application asked for something the connection's state forbids
    (``send`` after ``close``, or on a reset/closed connection)."""
