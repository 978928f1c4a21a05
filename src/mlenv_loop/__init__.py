"""The ML loop's own code: dataset versions from Label Studio's annotations, the trigger service
and the training jobs it starts.

It runs in two places: on the operator's machine behind `mlenv dataset …` (through the proxy),
and on the service host inside the trigger service's virtualenv, where nothing else of mlenv is
installed. So it imports nothing from `mlenv`, and its third-party needs stay small: the standard
library here, boto3 (passed in as a client) for the object store.
"""
