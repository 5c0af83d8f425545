"""The emulated Venice service: jobs, charges, limits, faults and private links, free of HTTP."""

from __future__ import annotations

import json
import math
import random
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .billing import CursorCodec, UsageHistory, balance_body, render_csv, render_json, wants_csv
from .catalog import CATALOG, VideoModel
from .config import BILLING_ENDPOINTS, EmulatorConfig, FaultConfig, markup_for
from .ledger import Ledger, RequestRecord
from .limits import FailureLockout, FixedWindow
from .mp4 import VideoFile, make_video
from .validation import (
    Generation,
    RequestInvalid,
    check_generation,
    check_job_ref,
    check_queue,
    has_consent,
)

#: The HTTP method of each endpoint, for the request log.
_METHODS = {
    "models": "GET",
    "quote": "POST",
    "queue": "POST",
    "retrieve": "POST",
    "complete": "POST",
    "link_get": "GET",
    "link_delete": "DELETE",
    "balance": "GET",
    "usage_history": "GET",
}
_RESOLUTION_SPEED = {"480p": 0.8, "720p": 1.0, "1080p": 1.3}
_HISTORY = 50
_CONSENT_VERSION = "2026-03-01"
_CONSENT_TEXT = (
    "By continuing you confirm the provider's terms and privacy policy, that you have the "
    "legal right to use any submitted media, and that submitted media may be screened."
)


@dataclass
class Reply:
    """What to answer: a JSON body, other bytes (`raw`, typed by headers), or a video."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: A body that is not JSON (a CSV export); its Content-Type is in `headers`.
    raw: bytes | None = None
    video: VideoFile | None = None
    #: Send only bytes `first` to `last` (inclusive) of `video`: a 206 partial answer.
    part: tuple[int, int] | None = None
    #: Close the connection after this many body bytes (a dropped download).
    drop_at: int | None = None
    #: Close the connection without answering at all.
    drop_without_answer: bool = False
    #: Called once the whole video has been written to the socket.
    on_delivered: Callable[[], None] | None = None

    def json_bytes(self) -> bytes:
        """Encode the JSON body."""
        return json.dumps(self.body if self.body is not None else {}).encode()


class RangeNotSatisfiable(Exception):
    """A `Range` header that asks only for bytes past the end of the file (416)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return the (first, last) byte, inclusive, that a `Range` header asks of `size` bytes.

    Understands one range in the forms `bytes=START-`, `bytes=START-END` and
    `bytes=-SUFFIX`. None means "send the whole file": no header, another unit, several
    ranges or bad syntax, all of which a server may ignore (RFC 9110, 14.2). Raises
    `RangeNotSatisfiable` when the range starts at or past the end.
    """
    if header is None:
        return None
    unit, sep, spec = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    first_text, last_text = first_text.strip(), last_text.strip()
    digits = first_text + last_text
    if not dash or not (digits.isascii() and digits.isdigit()):
        return None
    if not first_text:
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None
    if first >= size:
        raise RangeNotSatisfiable
    last = size - 1 if not last_text else min(int(last_text), size - 1)
    return first, last


def error(status: int, message: str, **extra: Any) -> Reply:
    """Build a `StandardError`-shaped answer."""
    return Reply(status, {"error": message, **extra})


@dataclass
class Job:
    """One queued generation."""

    queue_id: str
    generation: Generation
    created: float
    run_seconds: float
    emulated_seconds: float
    charged_usd: float
    media_deleted: bool = False
    seen_complete: bool = False
    link_token: str | None = None
    link_gets: int = 0
    link_deleted: bool = False

    @property
    def model(self) -> VideoModel:
        """The model that runs this job."""
        return self.generation.model

    def done(self, now: float) -> bool:
        """Tell whether the emulated run time has passed."""
        return now - self.created >= self.run_seconds


def _p80(values: deque[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.8 * len(ordered)) - 1)]


def _seconds_text(seconds: float, time_scale: float) -> str:
    """Format Retry-After: whole seconds at real speed, fractional under a time scale."""
    if time_scale >= 1:
        return str(max(math.ceil(seconds), 1))
    return f"{max(seconds, 0.001):.3f}"


class VeniceService:
    """Everything the emulated API knows; every public method is thread-safe."""

    def __init__(self, config: EmulatorConfig, link_origin: str) -> None:
        self.config = config
        self.link_origin = link_origin
        self.faults = config.faults
        self.balance_usd = config.balance_usd
        self.ledger = Ledger()
        self.charge_markup = config.charge_markup
        self._usage = UsageHistory(
            CursorCodec(
                secrets.token_bytes(32), config.scaled(config.usage_cursor_lifetime_seconds)
            )
        )
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._links: dict[str, Job] = {}
        self._rngs: dict[str, random.Random] = {}
        #: Jobs created since the faults were last set (for `queue_drop_after_create_first`).
        self._created_under_faults = 0
        #: The queue id the request being answered concerns, for the request log.
        self._subject: str | None = None
        #: Scale of the rate-limit windows and the lockout (1 under `real_time_limits`).
        self._limits_scale = 1.0 if config.real_time_limits else config.time_scale
        scale = self._limits_scale
        self._windows = {
            "queue": FixedWindow(
                config.queue_requests_per_window, config.rate_limit_window_seconds * scale
            ),
            "retrieve": FixedWindow(
                config.retrieve_requests_per_window, config.rate_limit_window_seconds * scale
            ),
        }
        self._lockout = FailureLockout(
            config.lockout_failures,
            config.lockout_window_seconds * scale,
            config.lockout_seconds * scale,
        )
        prior = self._rng("prior")
        self._history: dict[str, deque[float]] = {
            model.id: deque(
                (self._draw_seconds(model, "720p", 5, prior) for _ in range(5)), maxlen=_HISTORY
            )
            for model in CATALOG
        }

    # -- helpers -------------------------------------------------------------------------

    def _rng(self, purpose: str) -> random.Random:
        # One generator per purpose, so faults on one endpoint do not shift another's sequence.
        if purpose not in self._rngs:
            self._rngs[purpose] = random.Random(f"{self.config.seed}:{purpose}")  # noqa: S311 - reproducible, not secret
        return self._rngs[purpose]

    def _draw_seconds(
        self, model: VideoModel, resolution: str | None, seconds: int, rng: random.Random
    ) -> float:
        base = model.base_seconds * self.config.job_duration_factor
        shape = math.sqrt(seconds / 5) * _RESOLUTION_SPEED.get(resolution or "720p", 1.0)
        return base * shape * rng.uniform(0.75, 1.35)

    def _chance(self, purpose: str, rate: float) -> bool:
        if rate <= 0:
            return False
        return self._rng(purpose).random() < rate

    def _average_ms(self, model_id: str) -> int:
        return round(_p80(self._history[model_id]) * self.config.time_scale * 1000)

    def _video(self, job: Job) -> VideoFile:
        generation = job.generation
        return make_video(
            generation.seconds,
            generation.resolution or "720p",
            generation.aspect_ratio or "16:9",
            self.config.video_bytes,
        )

    def _link_url(self, token: str) -> str:
        return f"{self.link_origin}/v1/share/read/{token}"

    def _observe(self, job: Job, now: float) -> bool:
        """Tell whether the job is done; feed its duration to the model's P80 the first time."""
        if not job.done(now):
            return False
        if not job.seen_complete:
            job.seen_complete = True
            self._history[job.model.id].append(job.emulated_seconds)
            self.ledger.job(job.queue_id, job.model.id)["status"] = "COMPLETED"
        return True

    # -- administration ------------------------------------------------------------------

    def set_balance(self, usd: float) -> None:
        """Set the account balance in USD."""
        with self._lock:
            self.balance_usd = usd

    def set_charge_markup(self, markup: float | Mapping[str, float]) -> None:
        """Charge later jobs `markup` above their quote (see `EmulatorConfig.charge_markup`)."""
        with self._lock:
            self.charge_markup = markup

    def configure_faults(self, faults: FaultConfig) -> None:
        """Replace the fault settings; their generators start again from the seed.

        The count behind `queue_drop_after_create_first` starts again too, so the next
        N job-creating queue calls lose their answers.
        """
        with self._lock:
            self.faults = faults
            self._rngs = {k: v for k, v in self._rngs.items() if not k.startswith("fault:")}
            self._created_under_faults = 0

    def reset_ledger(self) -> None:
        """Forget all counts, charges, the usage history and the request log.

        Jobs, links and the balance stay; usage-history cursors issued before are refused.
        """
        with self._lock:
            self.ledger = Ledger()

    def requests_snapshot(self) -> list[dict[str, Any]]:
        """Return the request log, oldest first (see `ledger.RequestRecord`)."""
        with self._lock:
            return self.ledger.requests_snapshot()

    def _log(self, endpoint: str, status: int | str) -> None:
        """Count the answer of `endpoint` in the ledger and append it to the request log."""
        self.ledger.status(endpoint, status)
        record = RequestRecord(endpoint, _METHODS[endpoint], status, time.time(), self._subject)
        self.ledger.request(record)

    def ledger_snapshot(self) -> dict[str, Any]:
        """Return the ledger, with job statuses brought up to date."""
        with self._lock:
            now = time.monotonic()
            for job in self._jobs.values():
                if job.queue_id in self.ledger.jobs:
                    self._observe(job, now)
            return self.ledger.snapshot(self.balance_usd)

    # -- the API origin ------------------------------------------------------------------

    def latency(self, endpoint: str) -> float:
        """Real seconds to wait before answering `endpoint`."""
        return FaultConfig.lookup(self.faults.latency, endpoint)

    def api(
        self,
        endpoint: str,
        authorization: str | None,
        body: bytes | None,
        too_large: bool,
        model_type: str | None = None,
        query: str = "",
        accept: str | None = None,
    ) -> Reply:
        """Answer one call of an `/api/v1` endpoint and record it in the ledger.

        `model_type` is the `type` query parameter of `GET /models`; `query` is the raw
        query string and `accept` the Accept header (both read by the billing endpoints).
        """
        with self._lock:
            self.ledger.call(endpoint)
            self._subject = None
            keyed = self._key_kind(authorization) is not None
            reply = self._api(
                endpoint, authorization, keyed, body, too_large, model_type, query, accept
            )
            self._log(endpoint, "dropped" if reply.drop_without_answer else reply.status)
            if keyed and self.config.lockout_enabled and not 200 <= reply.status < 300:
                self._lockout.record_failure(time.monotonic())
            return reply

    def _api(
        self,
        endpoint: str,
        authorization: str | None,
        keyed: bool,
        body: bytes | None,
        too_large: bool,
        model_type: str | None,
        query: str,
        accept: str | None,
    ) -> Reply:
        now = time.monotonic()
        if not keyed and not (endpoint == "models" and authorization is None):
            return error(401, "Authentication failed: send 'Authorization: Bearer <api key>'")
        if endpoint in BILLING_ENDPOINTS and self._key_kind(authorization) == "inference":
            return error(
                401,
                "Authentication failed: this is an INFERENCE API key, which may call only "
                "inference endpoints; billing needs an ADMIN key",
            )
        if keyed and self.config.lockout_enabled:
            blocked = self._lockout.blocked_for(now)
            if blocked > 0:
                reply = error(429, "Too many failed requests; this key is blocked for a while")
                reply.headers["Retry-After"] = _seconds_text(blocked, self._limits_scale)
                return reply
        limit_headers: dict[str, str] = {}
        window = self._windows.get(endpoint)
        if window is not None and self.config.rate_limits_enabled:
            state = window.hit(now)
            limit_headers = state.headers()
            if not state.allowed:
                reply = error(429, f"Rate limit exceeded: {state.limit} requests per window")
                reply.headers.update(limit_headers)
                reply.headers["Retry-After"] = _seconds_text(state.reset_in, self._limits_scale)
                return reply
        answer = self._faulted(endpoint)
        if answer is None and endpoint in BILLING_ENDPOINTS:
            answer = self._billing(endpoint, authorization or "", query, accept)
        if answer is None:
            answer = self._endpoint(endpoint, body, too_large, model_type)
        answer.headers.update(limit_headers)
        return answer

    def _key_kind(self, authorization: str | None) -> str | None:
        """Return "admin" for the main key, "inference" for `inference_api_key`, else None."""
        if authorization == f"Bearer {self.config.api_key}":
            return "admin"
        extra = self.config.inference_api_key
        if extra and authorization == f"Bearer {extra}":
            return "inference"
        return None

    def _billing(self, endpoint: str, authorization: str, query: str, accept: str | None) -> Reply:
        if endpoint == "balance":
            return Reply(200, balance_body(self.balance_usd))
        epoch, records = self.ledger.epoch, self.ledger.usage
        try:
            page = self._usage.page(records, epoch, query, authorization)
        except RequestInvalid as invalid:
            return Reply(400, invalid.body())
        cursor = self._usage.next_cursor(page, epoch, authorization)
        if not wants_csv(accept):
            return Reply(200, render_json(page, cursor))
        headers = {
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f"attachment; filename={self._usage.csv_filename()}",
        }
        if cursor is not None:
            headers["x-next-cursor"] = cursor
        return Reply(200, headers=headers, raw=render_csv(page))

    def _faulted(self, endpoint: str) -> Reply | None:
        faults = self.faults
        if self._chance(f"fault:500:{endpoint}", FaultConfig.lookup(faults.rate_500, endpoint)):
            return error(500, "Inference processing failed (injected fault); retry with backoff")
        if self._chance(f"fault:503:{endpoint}", FaultConfig.lookup(faults.rate_503, endpoint)):
            return error(503, "The model is at capacity (injected fault); retry later")
        return None

    def _endpoint(
        self, endpoint: str, raw: bytes | None, too_large: bool, model_type: str | None
    ) -> Reply:
        if endpoint == "models":
            # The emulator knows only video models; other types list nothing.
            wanted = model_type or "text"
            shown = CATALOG if wanted in ("video", "all") else ()
            return Reply(
                200, {"object": "list", "type": wanted, "data": [m.to_json() for m in shown]}
            )
        if too_large:
            limit_mb = self.config.max_body_bytes / (1024 * 1024)
            return Reply(
                413,
                {
                    "code": "PAYLOAD_TOO_LARGE",
                    "error": f"Request exceeds the maximum allowed size of {limit_mb:g} MB.",
                },
            )
        try:
            body = json.loads(raw or b"")
        except ValueError:
            return Reply(400, RequestInvalid("The request body must be JSON").body())
        if not isinstance(body, dict):
            return Reply(400, RequestInvalid("The request body must be a JSON object").body())
        try:
            if endpoint == "quote":
                return self._quote(body)
            if endpoint == "queue":
                return self._queue(body)
            if endpoint == "retrieve":
                return self._retrieve(body)
            return self._complete(body)
        except RequestInvalid as invalid:
            return Reply(400, invalid.body())

    def _quote(self, body: dict[str, Any]) -> Reply:
        generation = check_generation(body, for_queue=False)
        usd = generation.model.price(generation.duration, generation.resolution, generation.audio)
        return Reply(200, {"quote": usd})

    def _queue(self, body: dict[str, Any]) -> Reply:
        generation = check_queue(body)
        model = generation.model
        if model.needs_consent and not has_consent(body, model.needs_consent):
            return Reply(409, self._needs_consent(model.needs_consent))
        prompt = str(body["prompt"]).lower()
        for word in self.config.content_violation_words:
            if word.lower() in prompt:
                return error(422, "Your prompt violates the content policy of Venice.ai")
        quoted = model.price(generation.duration, generation.resolution, generation.audio)
        # The price of this moment: a quote taken earlier may differ (`charge_markup`).
        price = max(0.0, round(quoted * (1 + markup_for(self.charge_markup, model.id)), 4))
        if price > self.balance_usd + 1e-9:
            return error(
                402,
                f"Insufficient balance: this video costs {price} USD, "
                f"the balance is {round(self.balance_usd, 4)} USD",
                code="INSUFFICIENT_BALANCE",
            )
        seconds = self._draw_seconds(
            model, generation.resolution, generation.seconds, self._rng("jobs")
        )
        job = Job(
            queue_id=str(uuid.uuid4()),
            generation=generation,
            created=time.monotonic(),
            run_seconds=self.config.scaled(seconds),
            emulated_seconds=seconds,
            charged_usd=price,
        )
        self._jobs[job.queue_id] = job
        self._subject = job.queue_id
        self.balance_usd -= price
        record = self.ledger.job(job.queue_id, model.id)
        record["queue_calls"] += 1
        record["private"] = model.is_private
        # How long the job runs (real seconds): what a rate-limit bound adds for the last job.
        record["run_seconds"] = round(job.run_seconds, 3)
        self.ledger.charge(job.queue_id, model.id, price)
        answer: dict[str, Any] = {"model": model.id, "queue_id": job.queue_id}
        if model.is_private:
            job.link_token = secrets.token_urlsafe(32)
            self._links[job.link_token] = job
            answer["download_url"] = self._link_url(job.link_token)
        self._created_under_faults += 1
        among_first = self._created_under_faults <= self.faults.queue_drop_after_create_first
        if among_first or self._chance(
            "fault:queue-drop", self.faults.queue_drop_after_create_rate
        ):
            return Reply(200, answer, drop_without_answer=True)
        return Reply(200, answer)

    @staticmethod
    def _needs_consent(flow: str) -> dict[str, Any]:
        return {
            "error": {
                "code": "needs_consent",
                "message": (
                    f"This model needs consent: resend with consents.{flow} confirming "
                    "confirmed_terms_and_privacy, confirmed_legal_right and "
                    "confirmed_screening_acknowledged"
                ),
            },
            "consent_flow": flow,
            "face_media_roles": [
                "image",
                "end_image",
                "reference_image",
                "video",
                "reference_video",
            ],
            "consent": {"consent_version": _CONSENT_VERSION, "policy_text": _CONSENT_TEXT},
            "docs_url": "https://docs.venice.ai/api-reference/endpoint/video/queue",
        }

    def _find(self, model: str, queue_id: str, endpoint: str) -> Job | Reply:
        job = self._jobs.get(queue_id)
        if job is not None:
            self._subject = queue_id
            record = self.ledger.job(queue_id, job.model.id)
            record[f"{endpoint}_calls"] += 1
        if job is None or job.media_deleted:
            if endpoint == "complete":
                return Reply(
                    400,
                    RequestInvalid(
                        f"Media for queue_id {queue_id} is already gone or never existed",
                        "queue_id",
                    ).body(),
                )
            return error(
                404, "Media could not be found. Request may be invalid, expired, or deleted."
            )
        if job.model.id != model:
            return Reply(
                400,
                RequestInvalid(
                    f"queue_id {queue_id} belongs to model {job.model.id}, not {model}", "model"
                ).body(),
            )
        return job

    def _retrieve(self, body: dict[str, Any]) -> Reply:
        ref = check_job_ref(body, allow_delete_flag=True)
        found = self._find(ref.model, ref.queue_id, "retrieve")
        if isinstance(found, Reply):
            return found
        job = found
        now = time.monotonic()
        average = self._average_ms(job.model.id)
        if not self._observe(job, now):
            elapsed_ms = round((now - job.created) * 1000)
            return Reply(
                200,
                {
                    "status": "PROCESSING",
                    "average_execution_time": average,
                    "execution_duration": elapsed_ms,
                },
            )
        if job.model.is_private:
            if ref.delete_media_on_completion:
                self._delete_media(job)
            return Reply(
                200,
                {
                    "status": "COMPLETED",
                    "average_execution_time": average,
                    "execution_duration": round(job.run_seconds * 1000),
                },
            )
        video = self._video(job)
        reply = Reply(200, video=video, headers={"Content-Type": "video/mp4"})
        if self._chance(
            "fault:drop:retrieve", FaultConfig.lookup(self.faults.drop_rate, "retrieve")
        ):
            reply.drop_at = video.size // 2
        elif ref.delete_media_on_completion:
            reply.on_delivered = lambda: self._locked(self._delete_media, job)
        return reply

    def _locked(self, action: Callable[[Job], None], job: Job) -> None:
        with self._lock:
            action(job)

    def _delete_media(self, job: Job) -> None:
        job.media_deleted = True
        self.ledger.job(job.queue_id, job.model.id)["media_deleted"] = True

    def _complete(self, body: dict[str, Any]) -> Reply:
        ref = check_job_ref(body, allow_delete_flag=False)
        found = self._find(ref.model, ref.queue_id, "complete")
        if isinstance(found, Reply):
            return found
        self._delete_media(found)
        return Reply(200, {"success": True})

    # -- the private-link origin ---------------------------------------------------------

    def link(
        self, method: str, token: str, authorization: str | None, range_header: str | None = None
    ) -> Reply:
        """Answer a GET or DELETE on a private download link.

        `range_header` is the GET's `Range` header: a satisfiable one is answered 206 with
        that part only, one past the end 416. Every GET counts against `link_max_gets`.
        """
        endpoint = "link_get" if method == "GET" else "link_delete"
        with self._lock:
            self.ledger.call(endpoint)
            job = self._links.get(token)
            # The job's id, never the token: link URLs are secrets.
            self._subject = job.queue_id if job is not None else None
            reply = self._link(endpoint, token, authorization, range_header)
            self._log(endpoint, reply.status)
            return reply

    def _link(
        self, endpoint: str, token: str, authorization: str | None, range_header: str | None
    ) -> Reply:
        job = self._links.get(token)
        record = self.ledger.job(job.queue_id, job.model.id) if job else None
        if record is not None and endpoint == "link_get":
            record["link_gets"] += 1
        if authorization is not None:
            self.ledger.link_auth_seen = True
            if record is not None:
                record["link_auth_seen"] = True
            return error(
                403,
                "Pre-signed links take no Authorization header; never send an API key here",
            )
        if job is None:
            return error(404, "No such link")
        now = time.monotonic()
        lifetime = self.config.scaled(self.config.link_lifetime_seconds)
        if job.link_deleted:
            return error(410, "This link was revoked")
        if now - job.created >= lifetime:
            return error(410, "This link has expired")
        if endpoint == "link_delete":
            job.link_deleted = True
            assert record is not None
            record["link_deleted"] = True
            return Reply(204)
        job.link_gets += 1
        if job.link_gets > self.config.link_max_gets:
            reply = error(429, "This link was fetched too often; save the file and DELETE the link")
            reply.headers["Retry-After"] = _seconds_text(
                self.config.scaled(60), self.config.time_scale
            )
            return reply
        faulted = self._faulted("link_get")
        if faulted is not None:
            return faulted
        if not self._observe(job, now):
            return error(404, "The video is not ready yet")
        video = self._video(job)
        try:
            part = byte_range(range_header, video.size)
        except RangeNotSatisfiable:
            reply = error(416, f"The range is past the end of the {video.size}-byte file")
            reply.headers["Content-Range"] = f"bytes */{video.size}"
            return reply
        headers = {"Content-Type": "video/mp4", "Accept-Ranges": "bytes"}
        if part is None:
            reply = Reply(200, video=video, headers=headers)
            length = video.size
        else:
            first, last = part
            headers["Content-Range"] = f"bytes {first}-{last}/{video.size}"
            reply = Reply(206, video=video, headers=headers, part=part)
            length = last - first + 1
        if self._chance(
            "fault:drop:link_get", FaultConfig.lookup(self.faults.drop_rate, "link_get")
        ):
            # Cut in the middle of what this answer sends, whole file or part.
            reply.drop_at = length // 2
        return reply
