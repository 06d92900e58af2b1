"""Emits OpenLineage events to govledger with the real openlineage-python
client, exactly as a pipeline would: HttpTransport on /api/v1/lineage with
an api_key (sent as `Authorization: Bearer`). Prints the run id as JSON.

Usage: GOVLEDGER_URL=... GOVLEDGER_TOKEN=... python3 openlineage_client.py
"""
import json
import os
import uuid
from datetime import datetime, timezone

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import schema_dataset
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/main/client/python"


def main() -> None:
    transport = HttpTransport(
        HttpConfig(
            url=os.environ["GOVLEDGER_URL"],
            endpoint="api/v1/lineage",
            auth=ApiKeyTokenProvider({"apiKey": os.environ["GOVLEDGER_TOKEN"]}),
        )
    )
    client = OpenLineageClient(transport=transport)
    run_id = str(uuid.uuid4())
    job = Job(namespace="airflow", name="fraud_training.train_model")
    schema = schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name="amount", type="DECIMAL")]
    )
    inputs = [InputDataset(namespace="postgres://warehouse:5432", name="public.transactions", facets={"schema": schema})]
    outputs = [OutputDataset(namespace="s3://models", name="fraud/model.pkl")]
    start = RunEvent(
        eventType=RunState.START,
        eventTime=datetime.now(timezone.utc).isoformat(),
        run=Run(runId=run_id),
        job=job,
        inputs=inputs,
        producer=PRODUCER,
    )
    complete = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime=datetime.now(timezone.utc).isoformat(),
        run=Run(runId=run_id),
        job=job,
        inputs=inputs,
        outputs=outputs,
        producer=PRODUCER,
    )
    client.emit(start)
    client.emit(complete)
    # A pipeline retrying after a lost response sends the same event again.
    client.emit(complete)
    print(json.dumps({"run_id": run_id}))


if __name__ == "__main__":
    main()
