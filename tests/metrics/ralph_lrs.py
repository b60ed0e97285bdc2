"""Starts ralph's LRS (run by ralph's own Python, .tools/ralph) for the xAPI tests.

ralph 5.1.0's filesystem backend writes each POST of statements with its default
operation, "create", which refuses a file that exists: every POST after the first
answers 500. Its own "append" operation is what an LRS on files needs, so it is
made the default here; everything else (the xAPI API, its checks, duplicate ids)
is ralph's own.
"""

import sys

import uvicorn
from ralph.backends.data.base import BaseOperationType
from ralph.backends.data.fs import FSDataBackend

FSDataBackend.default_operation_type = BaseOperationType.APPEND

if __name__ == "__main__":
    uvicorn.run("ralph.api:app", host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
