"""Train the ticket classifier on a dataset version, log it to MLflow, register it behind a gate.

The one entry point of the three places training runs: a job on the mlenv host, the GitLab
pipeline and the Argo workflow all call it the same way.

    python train.py --dataset <dataset>@<version> --model-name tickets   # in MLENV_DATASET_BUCKET
    python train.py --dataset s3://datasets/<dataset>/versions/<version>/ --model-name tickets
    python train.py --dataset ./tickets@<version>/        # what `mlenv dataset pull` wrote
    python train.py --dataset data/sample.jsonl           # the labelled sample this project ships
    python train.py --compare sets.json                   # `mlenv report labelling`: fit, predict, no MLflow

Environment: MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_USERNAME/PASSWORD); for s3:// datasets
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_ENDPOINT_URL_S3 (or MLFLOW_S3_ENDPOINT_URL).
Lineage comes from MLENV_JOB_ID or CI_PIPELINE_ID or ARGO_WORKFLOW_NAME, MLENV_TRIGGER, and
CI_COMMIT_SHA or MLENV_CODE_VERSION (else a digest of this file and requirements.txt).

The gate: the new model and the one behind the `production` alias are scored on the same held-out
split of this dataset version; `production` moves only when the new one is better by more than
--margin (or there is none yet), otherwise the new version becomes `challenger`. The decision and
both scores are tags of the model version. Any failure exits non-zero before an alias moves.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TEXT_FIELD = "text"  # the task data field the labelling config shows ($text)
LABEL_FIELD = "label"  # the Choices control's name in label_config.xml
PRODUCTION, CHALLENGER = "production", "challenger"
HOLDOUT_PERCENT = 20  # of the sample (dataset versions carry their own split)
VERSION_REF = re.compile(r"^(?P<dataset>[a-z][a-z0-9-]{0,62})@(?P<version>[0-9a-f]{16})$")


class TrainingError(Exception):
    """Something about the inputs that stops training; the message says what."""


@dataclass
class Dataset:
    uri: str
    manifest: dict[str, Any]
    train: tuple[list[str], list[str]] = field(default_factory=lambda: ([], []))
    test: tuple[list[str], list[str]] = field(default_factory=lambda: ([], []))

    def add(self, split: str, text: str, label: str) -> None:
        texts, labels = self.test if split == "test" else self.train
        texts.append(text)
        labels.append(label)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def label_of(annotation: dict[str, Any]) -> str | None:
    for region in annotation.get("result") or []:
        choices = (region.get("value") or {}).get("choices")
        if region.get("from_name") == LABEL_FIELD and choices:
            return str(choices[0])
    return None


def from_version(uri: str, manifest: dict[str, Any], files: dict[str, bytes]) -> Dataset:
    """A dataset version: its files checked against the manifest, each task's latest label."""
    for entry in manifest["files"]:
        if sha256(files[entry["name"]]) != entry["sha256"]:
            raise TrainingError(f"{entry['name']} of {uri} does not match its manifest: not training on it")
    dataset = Dataset(uri, manifest)
    for line in files["tasks.jsonl"].decode().splitlines():
        record = json.loads(line)
        label = label_of(record["annotations"][-1])
        text = record["data"].get(TEXT_FIELD)
        if label is not None and isinstance(text, str):
            dataset.add(record["split"], text, label)
    return dataset


def from_sample(path: Path) -> Dataset:
    data = path.read_bytes()
    manifest = {"dataset": "sample", "version": sha256(data)[:16], "source": {"file": path.name}}
    dataset = Dataset(str(path), manifest)
    for line in data.decode().splitlines():
        row = json.loads(line)
        held_out = int(sha256(row["text"].encode())[:8], 16) % 100 < HOLDOUT_PERCENT
        dataset.add("test" if held_out else "train", row["text"], row["label"])
    return dataset


def location(ref: str) -> str:
    """<dataset>@<version> (as the trigger service and the pipeline variables give it) is a
    version in MLENV_DATASET_BUCKET; anything else is already a URI or a path."""
    named = VERSION_REF.match(ref)
    if named is None:
        return ref
    bucket = os.environ.get("MLENV_DATASET_BUCKET", "datasets")
    return f"s3://{bucket}/{named['dataset']}/versions/{named['version']}/"


def load(ref: str) -> Dataset:
    ref = location(ref)
    if ref.startswith("s3://"):
        import boto3

        bucket, _, prefix = ref.removeprefix("s3://").partition("/")
        prefix = prefix.rstrip("/") + "/"
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
        s3 = boto3.client("s3", endpoint_url=endpoint)

        def read(name: str) -> bytes:
            try:
                return s3.get_object(Bucket=bucket, Key=prefix + name)["Body"].read()
            except s3.exceptions.NoSuchKey:
                raise TrainingError(f"{ref} has no {name}: is the dataset version complete?") from None

        manifest = json.loads(read("manifest.json"))
        return from_version(ref, manifest, {entry["name"]: read(entry["name"]) for entry in manifest["files"]})
    path = Path(ref)
    if path.is_dir():
        if not (path / "manifest.json").is_file():
            raise TrainingError(f"{path} has no manifest.json: give a folder that `mlenv dataset pull` wrote")
        manifest = json.loads((path / "manifest.json").read_text())
        return from_version(str(path), manifest, {entry["name"]: (path / entry["name"]).read_bytes()
                                                  for entry in manifest["files"]})  # fmt: skip
    if path.is_file():
        return from_sample(path)
    raise TrainingError(f"no dataset at {ref}: give s3://<bucket>/<dataset>/versions/<version>/, a folder or a file")


def build_model() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    # The model takes a table with a `text` column: what MLflow's signature and the V2 protocol carry.
    features = ColumnTransformer([(TEXT_FIELD, TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), TEXT_FIELD)])
    return Pipeline([("features", features), ("classify", LogisticRegression(max_iter=1000, C=10.0))])


def score(model: Any, texts: list[str], labels: list[str], metric: str) -> float:
    import pandas as pd
    from sklearn.metrics import accuracy_score, f1_score

    predicted = model.predict(pd.DataFrame({TEXT_FIELD: texts}))
    if metric == "accuracy":
        return float(accuracy_score(labels, predicted))
    return float(f1_score(labels, predicted, average="macro"))


def code_version() -> str:
    if os.environ.get("CI_COMMIT_SHA") or os.environ.get("MLENV_CODE_VERSION"):
        return os.environ.get("CI_COMMIT_SHA") or os.environ["MLENV_CODE_VERSION"]
    digest = hashlib.sha256()
    for name in ("train.py", "requirements.txt"):
        digest.update((HERE / name).read_bytes())
    return f"template-sha256:{digest.hexdigest()[:16]}"


def lineage(dataset: Dataset, trigger: str) -> dict[str, str]:
    manifest, source = dataset.manifest, dataset.manifest.get("source", {})
    job = os.environ.get("MLENV_JOB_ID") or os.environ.get("CI_PIPELINE_ID") or os.environ.get("ARGO_WORKFLOW_NAME")
    tags = {
        "mlenv.dataset": manifest["dataset"],
        "mlenv.dataset_version": manifest["version"],
        "mlenv.dataset_uri": dataset.uri,
        "mlenv.label_studio_project": str(source.get("project_id", "")),
        "mlenv.annotation_count": str(manifest.get("counts", {}).get("annotations", len(dataset.train[0]) +
                                                                      len(dataset.test[0]))),
        "mlenv.code_version": code_version(),
        "mlenv.job": job or "manual",
        "mlenv.trigger": trigger,
    }  # fmt: skip
    return {key: value for key, value in tags.items() if value}


def production_score(client: Any, name: str, dataset: Dataset, metric: str) -> tuple[str | None, float | None]:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        current = client.get_model_version_by_alias(name, PRODUCTION)
    except MlflowException:
        return None, None  # no production version yet (or no registered model)
    model = mlflow.sklearn.load_model(f"models:/{name}/{current.version}")
    return str(current.version), score(model, *dataset.test, metric)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", help="s3:// URI of a dataset version, a pulled folder, or a file")
    parser.add_argument(
        "--compare",
        type=Path,
        help='fit one model per training set of this JSON file ({"train": {name: [[text, label], ...]}, "test": '
        "[text, ...]}) and print each one's predictions for the test texts as JSON; nothing is logged",
    )
    parser.add_argument("--model-name", default="tickets", help="registered model name [tickets]")
    parser.add_argument("--metric", choices=["f1_macro", "accuracy"], default="f1_macro")
    parser.add_argument("--margin", type=float, default=0.0, help="how much better than production [0.0]")
    parser.add_argument("--trigger", default=os.environ.get("MLENV_TRIGGER", "manual"), help="why this run")
    parser.add_argument(
        "--decision-file", type=Path, help="also write the gate's decision (production|challenger) here"
    )
    parser.add_argument("--result-file", type=Path, help="also write the summary printed on stdout here (JSON)")
    args = parser.parse_args(argv)
    if args.compare is not None:
        return compare(args.compare)
    if not args.dataset:
        parser.error("give --dataset (or --compare)")

    try:
        dataset = load(args.dataset)
        if not dataset.test[0] or len(set(dataset.train[1])) < 2:
            raise TrainingError(
                f"{dataset.uri}: {len(dataset.train[0])} training and {len(dataset.test[0])} held-out examples, "
                f"{len(set(dataset.train[1]))} label(s): need held-out examples and at least two labels to train"
            )
    except TrainingError as err:
        print(f"train.py: {err}", file=sys.stderr)
        return 1
    return train_and_register(dataset, args)


def compare(path: Path) -> int:
    """The same model fitted on each training set; each one's predictions for the same test texts."""
    import pandas as pd

    sets = json.loads(path.read_text())
    test = pd.DataFrame({TEXT_FIELD: list(sets["test"])})
    predictions = {}
    for name, pairs in sorted(sets["train"].items()):
        if len({label for _, label in pairs}) < 2:
            print(f"train.py: training set {name!r} has fewer than two labels", file=sys.stderr)
            return 1
        model = build_model().fit(pd.DataFrame({TEXT_FIELD: [text for text, _ in pairs]}), [lab for _, lab in pairs])
        predictions[name] = [str(label) for label in model.predict(test)]
    print(json.dumps({"predictions": predictions}))
    return 0


def train_and_register(dataset: Dataset, args: argparse.Namespace) -> int:
    import mlflow
    import pandas as pd
    import sklearn
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    client = MlflowClient()
    tags = lineage(dataset, args.trigger)
    mlflow.set_experiment(args.model_name)
    with mlflow.start_run(tags=tags) as run:
        model = build_model()
        texts, labels = dataset.train
        model.fit(pd.DataFrame({TEXT_FIELD: texts}), labels)
        new_score = score(model, *dataset.test, args.metric)
        mlflow.log_params({"model": "tfidf+logistic-regression", "metric": args.metric, "margin": args.margin,
                           "train_examples": len(texts), "test_examples": len(dataset.test[0])})  # fmt: skip
        mlflow.log_metrics({args.metric: new_score, "train_accuracy": score(model, texts, labels, "accuracy")})
        example = pd.DataFrame({TEXT_FIELD: texts[:3]})
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict(example)),
            pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}"],
        )
    version = mlflow.register_model(info.model_uri, args.model_name, tags=tags)
    production_version, production = production_score(client, args.model_name, dataset, args.metric)
    promote = production is None or new_score - production > args.margin
    decision = {
        "mlenv.gate.metric": args.metric,
        "mlenv.gate.score": f"{new_score:.6f}",
        "mlenv.gate.production_version": production_version or "none",
        "mlenv.gate.production_score": "none" if production is None else f"{production:.6f}",
        "mlenv.gate.margin": str(args.margin),
        "mlenv.gate.decision": PRODUCTION if promote else CHALLENGER,
    }
    if promote and production_version:
        decision["mlenv.previous_production"] = production_version
    for key, value in decision.items():
        client.set_model_version_tag(args.model_name, version.version, key, value)
    client.set_registered_model_alias(args.model_name, PRODUCTION if promote else CHALLENGER, version.version)
    if args.decision_file:
        args.decision_file.write_text(decision["mlenv.gate.decision"])
    shown = "none" if production is None else f"{production:.3f} (version {production_version})"
    summary = json.dumps({"model": args.model_name, "version": version.version, "run_id": run.info.run_id,
                          "decision": decision["mlenv.gate.decision"], "score": new_score,
                          "production_score": production, "dataset_version": dataset.manifest["version"]})  # fmt: skip
    if args.result_file:
        args.result_file.write_text(summary + "\n")
    print(summary)
    print(f"{args.model_name} version {version.version}: {args.metric} {new_score:.3f} against production {shown}"
          f" → {decision['mlenv.gate.decision']}", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
