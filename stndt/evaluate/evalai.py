"""Closing the loop through EvalAI: submit a dataset's `submission.h5` to the NLB'21 challenge, and read the
result EvalAI scored on the hidden test split back into the tables.

Only EvalAI can score the real datasets' test split (its targets are not public), so these are the only
local numbers that compare with the paper's published (hidden test) ones.

**Submitting** calls EvalAI's REST API with `requests` (not the `evalai` CLI, whose pins of click,
requests and lxml clash with Snakemake's). What the call looks like is taken from EvalAI's own CLI
(Cloud-CV/evalai-cli, `evalai/utils/submissions.py` `make_submission`, `utils/urls.py`, `utils/auth.py`):

- `POST {host}/api/jobs/challenge/{challenge_pk}/challenge_phase/{phase_pk}/submission/`
- header `Authorization: Bearer <token>` (the token of the user's EvalAI profile page)
- multipart field `input_file` (the file), form data `status=submitting` plus submission metadata such as
  `method_name`.

The server (Cloud-CV/EvalAI, `apps/jobs/views.py` `challenge_submission`) answers 201 with the new
submission serialized (`apps/jobs/serializers.py` `SubmissionSerializer`: `id`, `status`,
`challenge_phase`, `participant_team_name`, `submitted_at`, `method_name`, ...). Errors come as 4xx with
`{"error": ...}` or `{"detail": ...}` (an invalid or expired token). The NLB'21 challenge is challenge
1256 (nlb_tools' README: https://eval.ai/web/challenges/challenge-page/1256/overview); its phase ids are
not documented anywhere we could read, so `evalai.phase` must be set by the user (the id of the
challenge's Test phase, e.g. from `GET {host}/api/challenges/challenge/1256/challenge_phase`).

Only this direct upload is implemented. EvalAI's CLI also uploads large files in parts through pre-signed
storage URLs (`evalai/utils/common.py` `upload_file_using_presigned_url`); a phase that refuses a large
file sent directly would need that path, which we have not checked against the NLB phase.

The token comes only from the environment variable EVALAI_TOKEN. It never enters the config, a rule's
params (Snakemake records those), a log or `submitted.json`.

**Importing** a result: EvalAI's evaluation script returns `{"result": [{split: {metric: value}}, ...]}`
(EvalAI docs, `docs/source/evaluation_scripts.md`), optionally with a `submission_result` entry, which
the starter template sets to one `{split: {metric: value}}` item (Cloud-CV/EvalAI-Starters
`evaluation_script/main.py`) and which is what EvalAI stores as the submission's result file
(`scripts/workers/submission_worker.py`). NLB's script is nlb_tools' `evaluate()` ("nearly identical to
the evaluation script used for our challenge", nlb_tools' basic_example notebook), which returns exactly
that list. `load_result` accepts the list itself and these wrappings. The metric names are mapped by
`stndt.evaluate.metrics.flatten_result`, the one home of that mapping. A challenge evaluated on a remote
worker gets a different result file: EvalAI writes it as `str()` of the per-split metric dicts, without
split names (`apps/jobs/views.py` `update_submission`). That file is not JSON and is refused, with a message
saying so.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from stndt.datasets import SCALING_DATASETS, nlb_dataset
from stndt.evalai_settings import EvalAISettings
from stndt.io import file_sha256, write_json

log = logging.getLogger(__name__)

TOKEN_VAR = "EVALAI_TOKEN"
SUBMISSION_PATH = "/api/jobs/challenge/{challenge}/challenge_phase/{phase}/submission/"
# What submitted.json keeps of the server's answer: who, what and when. Not the file URLs (input_file,
# stdout_file, ...), which may be pre-signed storage links.
RESPONSE_KEYS = (
    "id",
    "status",
    "challenge_phase",
    "participant_team",
    "participant_team_name",
    "submitted_at",
    "method_name",
    "is_public",
)
TIMEOUT_S = (30, 600)  # (connect, read) seconds: an NLB submission file is hundreds of MB


class EvalAIError(RuntimeError):
    """A submission that cannot be made or that EvalAI refused, or a result file that cannot be read."""


def submission_url(settings: EvalAISettings, bin_width_ms: int) -> str:
    """EvalAI's submission endpoint for the phase of this bin width."""
    return settings.host.rstrip("/") + SUBMISSION_PATH.format(
        challenge=settings.challenge, phase=settings.phase_for(bin_width_ms)
    )


# ---------------------------------------------------------------------------------------------- submitting
def check_submittable(dataset: str, source: str, layout: str) -> None:
    """Refuse what EvalAI cannot score as one per-dataset submission, before anything is sent."""
    if source == "synthetic":
        raise EvalAIError(
            f"datasets.{dataset} is synthetic: its test targets are known locally (the `test` rows "
            "of its tables are already scored on them) and EvalAI holds none of its trials: there is "
            "nothing to submit"
        )
    if layout in SCALING_DATASETS:
        raise EvalAIError(
            f"datasets.{dataset} follows {layout}, an MC_Maze scaling size: NLB's EvalAI scores the "
            "three sizes only from ONE file holding all three (nlb_tools' basic_example notebook: they "
            "'must be saved in the same file for proper evaluation'); combine the three "
            "submission.h5 with nlb_tools.make_tensors.combine_h5 and submit that on eval.ai"
        )
    nlb_dataset(layout)


def token_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The user's EvalAI token, from EVALAI_TOKEN only (never the config: configs are shared and committed)."""
    token = (os.environ if environ is None else environ).get(TOKEN_VAR, "").strip()
    if not token:
        raise EvalAIError(
            f"{TOKEN_VAR} is not set: export your EvalAI auth token (eval.ai -> Profile -> "
            f"'Get your Auth Token') as {TOKEN_VAR} in the shell that runs Snakemake"
        )
    return token


def post_submission(
    post: Callable[..., Any],
    url: str,
    token: str,
    path: str | os.PathLike,
    method_name: str,
    timeout: tuple[float, float] = TIMEOUT_S,
) -> dict:
    """The one network call: POST the file to EvalAI's submission endpoint, return the server's JSON.

    `post` is `requests.post` or a `requests.Session().post` (a test passes a fake that records the call).
    Raises EvalAIError with the server's own message on a refusal; the token is never part of a message.
    """
    path = Path(path)
    with open(path, "rb") as f:
        try:
            response = post(
                url,
                headers={"Authorization": f"Bearer {token}"},
                files={"input_file": (path.name, f, "application/x-hdf5")},
                data={"status": "submitting", "method_name": method_name},
                timeout=timeout,
            )
        except OSError as e:  # requests' RequestException (no connection, timeout, ...) is an OSError
            raise EvalAIError(f"could not submit {path} to {url}: {type(e).__name__}: {e}") from e
    try:
        body = response.json()
    except ValueError:
        body = None
    if not 200 <= response.status_code < 300:
        reason = body.get("error") or body.get("detail") or body if isinstance(body, dict) else response.text[:500]
        hint = (
            f" (check {TOKEN_VAR}: EvalAI tokens expire)"
            if response.status_code in (401, 403) or "token" in str(reason).lower()
            else ""
        )
        reason = str(reason).replace(token, "<redacted>")  # a server echoing the token must not print it
        raise EvalAIError(
            f"EvalAI refused the submission of {path} to {url}: HTTP {response.status_code}: {reason}{hint}"
        )
    if not isinstance(body, dict) or "id" not in body:
        raise EvalAIError(
            f"EvalAI answered HTTP {response.status_code} for {path} but no submission id: "
            f"{str(body if body is not None else response.text)[:500]}"
        )
    return body


def submit(
    submission: str | os.PathLike,
    tensors_test: str | os.PathLike,
    out: str | os.PathLike,
    *,
    dataset: str,
    source: str,
    layout: str,
    bin_width_ms: int,
    settings: EvalAISettings,
    post: Callable[..., Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict:
    """Submit a dataset's submission.h5 to its EvalAI phase and write `out` (submitted.json) atomically.

    Everything that can fail without the network fails first: a synthetic or scaling dataset, no token,
    a submission file that does not match the test tensors (EvalAI limits submissions per phase: a bad file
    would waste one). `out` holds where it went, the file's sha256 and the server's answer (RESPONSE_KEYS),
    never the token.
    """
    from stndt.evaluate.submission import check_submission

    check_submittable(dataset, source, layout)
    token = token_from_env(environ)
    check_submission(submission, tensors_test, layout, bin_width_ms)
    url = submission_url(settings, bin_width_ms)
    if post is None:
        import requests

        post = requests.post
    answer = post_submission(post, url, token, submission, settings.method_name)
    log.info("EvalAI accepted %s as submission %s (status %s)", submission, answer.get("id"), answer.get("status"))
    record = {
        "dataset": dataset,
        "layout": layout,
        "bin_width_ms": bin_width_ms,
        "host": settings.host,
        "challenge": settings.challenge,
        "phase": settings.phase_for(bin_width_ms),
        "url": url,
        "submission": str(submission),
        "sha256": file_sha256(submission),
        "method_name": settings.method_name,
        "response": {k: answer[k] for k in RESPONSE_KEYS if k in answer},
    }
    text = json.dumps(record, default=str)
    if token in text:  # a server echoing it back must not leak it into the results folder
        record = json.loads(text.replace(token, "<redacted>"))
    write_json(out, record)
    return record


# ---------------------------------------------------------------------------------------------- importing
def _result_list(data: Any, where: str) -> list:
    """The `[{split: {metric: value}}]` list inside what was downloaded (see the module docstring)."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        if "result" in data:
            return data["result"] if isinstance(data["result"], list) else [data["result"]]
        if "submission_result" in data:
            inner = data["submission_result"]
            return inner if isinstance(inner, list) else [inner]
        if data and all(isinstance(v, dict) for v in data.values()):
            return [data]  # a single {split: {metric: value}} item, as EvalAI's result file holds it
    raise EvalAIError(
        f"{where}: not an EvalAI / nlb_tools result: expected the list nlb_tools' evaluate() returns, "
        '[{"<dataset>_split": {"co-bps": ...}}], or that list under "result" or '
        f'"submission_result"; got {str(data)[:200]}'
    )


def load_result(
    path: str | os.PathLike, layout: str, bin_width_ms: int, dataset: str | None = None
) -> dict[str, float]:
    """The metrics of one dataset from a downloaded EvalAI result (or nlb_tools evaluate() output) file.

    Strict: the file must be JSON of an accepted shape, hold this layout's split at this bin width (a
    result of another dataset or bin width is refused, saying which it is), and every metric the layout
    defines as a finite number. Errors name the file (and the config key, given `dataset`).
    """
    from stndt.evaluate.metrics import EvaluationError, flatten_result  # (nlb_tools: not at config time)

    where = f"{path}" + (f" (datasets.{dataset}.evalai_result)" if dataset else "")
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise EvalAIError(f"{where}: cannot read the EvalAI result ({e})") from e
    try:
        data = json.loads(text)
    except ValueError as e:
        raise EvalAIError(
            f"{where}: not valid JSON ({e}); save the result EvalAI shows for the submission as a .json file"
        ) from None
    try:
        metrics = flatten_result(_result_list(data, where), layout, bin_width_ms, where=where)
    except EvaluationError as e:
        raise EvalAIError(str(e)) from None
    missing = [m for m in nlb_dataset(layout).metrics if m not in metrics]
    if missing:
        raise EvalAIError(
            f"{where}: metric(s) {missing} missing for {layout} (found {sorted(metrics)}); "
            "nlb_tools scores them all for this layout"
        )
    bad = [m for m, v in metrics.items() if not math.isfinite(v)]
    if bad:
        raise EvalAIError(f"{where}: metric(s) {bad} are not finite numbers ({[metrics[m] for m in bad]})")
    return metrics
