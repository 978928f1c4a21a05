"""The one error type of the loop's code: something a user must fix, said in its message."""


class LoopError(Exception):
    pass
