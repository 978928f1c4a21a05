"""MLServer's MLflow runtime, with the model loaded beside the event loop rather than on it.

`mlserver_mlflow.MLflowRuntime.load` is a coroutine that reads the model synchronously: while a
version loads (the artifacts fetched from MLflow, the first time MLflow and scikit-learn imported),
the server's one event loop answers nothing, health and predictions of the version still served
included. Run on a thread of its own, the load leaves the loop free; MLServer keeps serving the
old version until the new one is ready and then swaps them.

MLServer lists a model it loads for the first time before the load ends; its metadata, which
names the registry version served (what the follower, the trigger service and the gateway read),
is answered only once the model is ready, as when the loop was blocked.
"""

import asyncio

from mlserver.errors import ModelNotReady
from mlserver_mlflow import MLflowRuntime as UpstreamRuntime


class MLflowRuntime(UpstreamRuntime):
    async def load(self) -> bool:
        # The upstream coroutine, on a loop of its own in a worker thread: it touches only this model.
        return await asyncio.to_thread(asyncio.run, super().load())

    async def metadata(self):
        if not self.ready:
            raise ModelNotReady(self.name)
        return await super().metadata()
