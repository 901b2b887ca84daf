"""The production requirements, each judged on the evidence of a run.

A requirement is stated in the learner's language. When it fails, the message says what
the run saw, what that costs in production, and which module teaches the practice; it
never says what to change. ``Outcome.figures`` is the evidence in numbers, for the report's
table; the check cells print only the fixed summary.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ._run import (
    ATTEMPTS,
    CLIENT_TIMEOUT_S,
    EXPORT_ROWS,
    HUNG_S,
    PRICE_CENTS,
    Attempt,
    Evidence,
    Kind,
)

HEALTH_P99_S = 2.5  # /health, while the provider is slow (the reference: well under 1.25 s)
ORDER_P99_S = CLIENT_TIMEOUT_S  # every order attempt answered, the slowest 1 % included
MEMORY_GROWTH_BYTES = 30_000_000  # peak memory added by the export of EXPORT_ROWS orders
LOCKOUT_ATTEMPTS = 5
ACCESS_LINES_SHARE = 0.9  # of the answered requests, at least this many have an access line
_UPSTREAM_5XX = {502, 503, 504}  # an honest "the provider is down", not the service's own failure
_TRACE = re.compile(r"trace=([0-9a-f]{32})")


@dataclass
class Outcome:
    ok: bool
    figures: str  # the evidence, in numbers (the report's table)
    problems: list[str] = field(default_factory=list)  # the teaching messages, when not ok


@dataclass(frozen=True)
class Requirement:
    exercise: str
    kind: Kind
    title: str  # the requirement, in the learner's language
    summary: str  # the check's fixed line when it passes
    judge: Callable[[Evidence], Outcome]


def p99(values: Iterable[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(len(ordered) * 0.99) - 1)]


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _statuses(attempts: Iterable[Attempt]) -> str:
    counts = Counter(a.status if a.status is not None else "no answer" for a in attempts)
    return ", ".join(f"{n} x {status}" for status, n in sorted(counts.items(), key=str))


def _not_judged(ev: Evidence, needs: str) -> Outcome | None:
    """The run stopped before what this requirement needs: say why, and fail."""
    if ev.ran(needs):
        return None
    why = ev.problem or "the run stopped early"
    return Outcome(False, "not judged", [f"Could not be judged: {why}."])


def _stored_rows(ev: Evidence, email: str) -> list[dict[str, str]]:
    return ev.stored.get(email, [])


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


# --- 1. orders: stored once, charged once ------------------------------------------------


def judge_orders(ev: Evidence) -> Outcome:
    if (missing := _not_judged(ev, "read-back")) is not None:
        return missing
    problems: list[str] = []
    acknowledged = [p for p in ev.orders if p.acknowledged]
    if len(acknowledged) < len(ev.orders) * 0.9:
        return Outcome(
            False,
            f"{len(acknowledged)}/{len(ev.orders)} acknowledged",
            [
                f"Only {len(acknowledged)} of {len(ev.orders)} orders were acknowledged with "
                f"201 (after up to {ATTEMPTS} attempts each), too few to judge what was stored. "
                "capstone.errors and capstone.latency say what went wrong first."
            ],
        )
    lost, doubled, wrong_total, twice_acked = [], [], [], []
    for plan in ev.orders:
        email = ev.accounts[plan.account].email
        rows = [
            r for r in _stored_rows(ev, email) if (r["sku"], _int(r["qty"])) == (plan.sku, plan.qty)
        ]
        expected = PRICE_CENTS[plan.sku] * plan.qty
        ids = {a.body.get("id") for a in plan.acknowledged if isinstance(a.body, dict)}
        if len(ids) > 1:
            twice_acked.append(plan)
        if len(rows) > 1:
            doubled.append(plan)
        if plan.acknowledged:
            body = (
                plan.acknowledged[-1].body if isinstance(plan.acknowledged[-1].body, dict) else {}
            )
            stored = [
                r for r in rows if _int(r["id"]) == _int(body.get("id")) and r["status"] == "paid"
            ]
            if not stored:
                lost.append(plan)
            if _int(body.get("total_cents")) != expected or any(
                _int(r["total_cents"]) != expected for r in rows
            ):
                wrong_total.append((plan, body.get("total_cents"), expected))
    if lost:
        problems.append(
            f"{len(lost)} orders acknowledged with 201 are not stored as paid (read back through "
            "GET /orders.csv): the customer was told the order went through, and the shop has "
            "no record of it. (Module 02, transactions; module 08, the lifespan of what a "
            "request uses.)"
        )
    if doubled or twice_acked:
        problems.append(
            f"{len(doubled) or len(twice_acked)} orders are stored more than once: a client "
            "that retried (a timeout, a 5xx, with the same Idempotency-Key) got a second order "
            "instead of the first one's answer. (Module 06, idempotent retries.)"
        )
    if wrong_total:
        plan, got, expected = wrong_total[0]
        problems.append(
            f"{len(wrong_total)} orders have the wrong total: {plan.qty} x {plan.sku} came out "
            f"as {got!r} cents instead of {expected}; at scale, a cent a line is real money, "
            "and a total that depends on rounding cannot be reconciled. (Module 07, money is "
            "not a float.)"
        )
    paid_rows = [
        r for rows in ev.stored.values() for r in rows if r.get("status") == "paid"
    ]  # every account of the run, the careless one included
    upstream = ev.upstream
    charges = upstream.charges if upstream else []
    extra = len(charges) - len(paid_rows)
    if extra > 0:
        problems.append(
            f"The provider made {len(charges)} charges for {len(paid_rows)} paid orders: "
            f"{extra} customers were charged twice, or charged for an order the shop does not "
            "know it was paid for. (Module 06, retries and idempotency keys.)"
        )
    elif extra < 0:
        problems.append(
            f"{-extra} orders are marked paid but the provider never charged them: the shop "
            "ships goods it was not paid for. (Module 06, errors by design.)"
        )
    charged = sorted(c.amount_cents for c in charges)
    totals = sorted(_int(r["total_cents"]) or 0 for r in paid_rows)
    if extra == 0 and charged != totals:
        problems.append(
            "The amounts charged do not match the totals of the paid orders: what the customer "
            "paid and what the shop recorded disagree. (Module 07, money as integer cents.)"
        )
    figures = (
        f"{len(acknowledged)}/{len(ev.orders)} acknowledged, {len(lost)} lost, "
        f"{len(doubled)} duplicated, {max(extra, 0)} double charges"
    )
    return Outcome(not problems, figures, problems)


# --- 2. errors: no 5xx of its own, bad requests refused ---------------------------------


def judge_errors(ev: Evidence) -> Outcome:
    if (missing := _not_judged(ev, "load")) is not None:
        return missing
    problems: list[str] = []
    own = [
        a
        for a in ev.attempts
        if a.status is not None and a.status >= 500 and a.status not in _UPSTREAM_5XX
    ]
    if own:
        where = Counter(f"{a.method} {a.path.split('?')[0]}" for a in own)
        shown = ", ".join(f"{n} x {w}" for w, n in where.most_common(3))
        problems.append(
            f"The service answered {len(own)} requests with its own 5xx ({shown}): each is "
            "a failure a client cannot act on, and an alert at night. A bad body deserves a 4xx, "
            "a provider that is down an honest 502/503 the client can retry. (Module 01, "
            "validation at the boundary; module 06, errors mapped in one place.)"
        )
    bad = ev.of("bad order")
    accepted = [a for a in bad if a.status is not None and not 400 <= a.status < 500]
    answered = [a for a in bad if a.status is not None]
    if accepted:
        problems.append(
            f'{len(accepted)} of {len(bad)} malformed orders (a quantity of "3", 0, -2, 2.5 '
            "or a trillion, an unknown SKU, a field the API does not have, broken JSON...) were "
            f"not refused with a 4xx: {_statuses(accepted)}. (Module 01, validation.)"
        )
    stored_bad = _stored_rows(ev, ev.bad_account.email) if ev.bad_account else []
    if stored_bad:
        problems.append(
            f"{len(stored_bad)} malformed orders were stored anyway: bad data now sits in the "
            "database, where every report and refund will meet it. (Module 01, validation.)"
        )
    lookers = [a for a in ev.of("look") if a.status != 404]
    if lookers:
        problems.append(
            f"Asking for an order that does not exist got {_statuses(lookers)} instead of 404."
        )
    strangers = [a for a in ev.of("stranger") if a.status not in (401, 403)]
    if strangers:
        problems.append(f"Orders without a valid login got {_statuses(strangers)} instead of 401.")
    given_up = [p for p in ev.orders if not p.acknowledged]
    if given_up and answered:
        seen = _statuses(a for p in given_up for a in p.attempts)
        problems.append(
            f"{len(given_up)} of {len(ev.orders)} orders were never acknowledged, although each "
            f"client tried {ATTEMPTS} times with the same key ({seen}): while the provider "
            "fails now and then, the shop turns customers away. (Module 06, retries with backoff.)"
        )
    own_count = len(own)
    figures = f"{own_count} own 5xx, {len(accepted)}/{len(bad)} bad orders let through"
    return Outcome(not problems, figures, problems)


# --- 3. latency --------------------------------------------------------------------------


LOAD_OPS = {"order", "bad order", "stranger", "login", "look", "guess", "locked login", "read"}


def judge_latency(ev: Evidence) -> Outcome:
    health = [a.seconds if a.status is not None else CLIENT_TIMEOUT_S for a in ev.of("health")]
    orders = [a.seconds if a.status is not None else CLIENT_TIMEOUT_S for a in ev.of("order")]
    health_p99, order_p99 = p99(health), p99(orders)
    figures = f"health p99 {_seconds(health_p99)}, orders p99 {_seconds(order_p99)}"
    # Throughput: what the load got answered while it ran (the set-up is not measured).
    answered = [a for a in ev.attempts if a.status is not None and a.op in LOAD_OPS]
    if ev.timings.get("load"):
        figures += f", {len(answered) / ev.timings['load']:.0f} answers/s"
    problems: list[str] = []
    if ev.hung:
        problems.append(
            f"The service stopped answering during the load: for {HUNG_S:g} s, not one request "
            "(not even GET /health) got an answer, so the report stopped there. A process "
            "whose event loop is stuck in a call to another service serves nobody. (Module 03, "
            "blocking calls in async code and timeouts.)"
        )
    elif (missing := _not_judged(ev, "load")) is not None:
        return missing
    if health_p99 is not None and health_p99 > HEALTH_P99_S:
        problems.append(
            f"GET /health took {health_p99:.1f} s at the 99th percentile while the provider was "
            f"slow (the bound is {HEALTH_P99_S:g} s): the load balancer's health check times out "
            "and takes the instance out, although nothing is wrong with it but a slow partner. "
            "(Module 03, what blocks the event loop.)"
        )
    unanswered = [a for a in ev.of("order") if a.status is None]
    if unanswered or (order_p99 is not None and order_p99 > ORDER_P99_S):
        problems.append(
            f"{len(unanswered)} of {len(orders)} order attempts got no answer within "
            f"{CLIENT_TIMEOUT_S:g} s: the client gives up, retries, and piles more work on a "
            "service that is already behind. A provider that hangs must cost a bounded wait, not "
            "the client's patience. (Module 03, timeouts and concurrency.)"
        )
    return Outcome(not problems, figures, problems)


# --- 4. logs -----------------------------------------------------------------------------


def _log_lines(ev: Evidence, sources: Iterable[str]) -> list[tuple[str, str]]:
    lines = []
    for source in sources:
        for line in ev.logs.get(source, "").splitlines():
            if line.strip():
                lines.append((source, line))
    return lines


def _masked(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 6:
            text = text.replace(secret, "•" * 8)
    return text if len(text) <= 160 else text[:157] + "..."


def _kind_of_secret(ev: Evidence, secret: str) -> str:
    upstream = ev.upstream
    if upstream and secret == upstream.payments_key:
        return "the payment provider's API key"
    if upstream and secret == upstream.mail_key:
        return "the mail service's API key"
    if secret.startswith("sk_"):
        return "the key that signs the login tokens"
    if secret.startswith(("pw-", "export-")):
        return "a customer's password"
    if secret.startswith("guess-"):
        return "a password someone typed (a wrong one, this time)"
    return "a login token"


def judge_logs(ev: Evidence) -> Outcome:
    if ev.problem and not ev.ran("set-up"):
        return Outcome(False, "not judged", [f"Could not be judged: {ev.problem}."])
    sources = ("service (stdout)", "service (stderr)")
    lines = _log_lines(ev, sources)
    problems: list[str] = []
    parsed: list[dict[str, Any]] = []
    not_json = []
    for source, line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if isinstance(value, dict):
            parsed.append(value)
        else:
            not_json.append((source, line))
    if not lines:
        problems.append(
            "The service logged nothing at all while it served the load: when something "
            "goes wrong in production there is nothing to read. (Module 05.)"
        )
    if not_json:
        source, line = not_json[0]
        problems.append(
            f"{len(not_json)} of {len(lines)} log lines are not a JSON object, for example, on "
            f"{source}: {_masked(line, ev.secrets)!r}. A log pipeline can neither parse nor "
            "search them. (Module 05, structured logs.)"
        )
    answered = {a.request_id for a in ev.attempts if a.status is not None}
    access: set[str] = set()
    wrong: list[tuple[dict[str, object], str]] = []
    for entry in parsed:
        found = _TRACE.search(str(entry.get("message", "")))
        if found is None:
            continue
        access.add(found.group(1))
        if entry.get("request_id") != found.group(1):
            wrong.append((entry, found.group(1)))
    if parsed and answered and len(access & answered) < ACCESS_LINES_SHARE * len(answered):
        problems.append(
            f"Only {len(access & answered)} of the {len(answered)} requests that were answered "
            "have uvicorn's access line in the logs, as JSON: the one line that says what was "
            "asked, and how it ended, is missing. (Module 05.)"
        )
    if wrong:
        sample, traced = wrong[0]
        problems.append(
            f"{len(wrong)} access lines carry the wrong request id (for example "
            f"request_id={sample.get('request_id')!r} on the line of request "
            f"{traced!r}): under concurrency the "
            "lines of one request are told under another's name, and the trail of an incident "
            "leads nowhere. (Module 05, request ids with ContextVar.)"
        )
    everything = "\n".join(ev.logs.get(s, "") for s in sources)
    leaked = sorted({_kind_of_secret(ev, s) for s in ev.secrets if len(s) >= 6 and s in everything})
    if leaked:
        problems.append(
            f"The logs contain {', '.join(leaked)}: whoever can read the logs (a log vendor, "
            "a support engineer, an attacker with a foothold) can now use them. (Module 05, "
            "secrets never reach a log line.)"
        )
    figures = (
        f"{len(lines)} lines, {len(not_json)} not JSON, {len(wrong)} wrong ids, "
        f"{len(leaked)} secrets"
    )
    return Outcome(not problems, figures, problems)


# --- 5. login ----------------------------------------------------------------------------


def judge_login(ev: Evidence) -> Outcome:
    if (missing := _not_judged(ev, "load")) is not None:
        return missing
    problems: list[str] = []
    checked = {
        v.email: sum(a.status == 401 for a in ev.of("guess") if a.target == v.email)
        for v in ev.victims
    }
    worst = max(checked.values(), default=0)
    if worst > LOCKOUT_ATTEMPTS:
        problems.append(
            f"Of the wrong passwords sent at once to one account, {worst} were checked "
            f"(answered 401): after {LOCKOUT_ATTEMPTS} failures an account must refuse further "
            "attempts, however many arrive together. At that rate an attacker runs a dictionary "
            "against any account. (Module 09, brute force and lockout.)"
        )
    locked = ev.of("locked login")
    if any(a.status == 200 for a in locked):
        problems.append(
            "After the guessing, the right password logged in at once (200): the attacker's next "
            "guess would have been the one. (Module 09.)"
        )
    odd = [a for a in locked if a.status not in (429, 200)]
    odd += [a for a in ev.of("guess") if a.status not in (401, 429)]
    if odd:
        problems.append(
            f"A login to a locked account was answered {_statuses(odd)} instead of 429 Too Many "
            "Requests: neither the client nor the customer can tell a lockout from a wrong "
            "password or a failure."
        )
    others = [a for a in ev.of("login") if a.status != 200]
    if others:
        problems.append(
            f"{len(others)} good logins of other accounts failed during the attack "
            f"({_statuses(others)}): the lockout must stop the attacker, not the customers. "
            "(Module 09.)"
        )
    figures = f"at most {worst} guesses checked per account; locked login: {_statuses(locked)}"
    return Outcome(not problems, figures, problems)


# --- 6. export ---------------------------------------------------------------------------


def judge_export(ev: Evidence) -> Outcome:
    if ev.problem and not ev.ran("set-up"):
        return Outcome(False, "not judged", [f"Could not be judged: {ev.problem}."])
    problems: list[str] = []
    growth = (
        ev.memory_after - ev.memory_before
        if ev.memory_after is not None and ev.memory_before is not None
        else None
    )
    health_p99 = p99(
        a.seconds if a.status is not None else CLIENT_TIMEOUT_S for a in ev.of("health")
    )
    if ev.export_problem:
        problems.append(f"The export of {EXPORT_ROWS:,} orders failed: {ev.export_problem}.")
    elif ev.export_rows != EXPORT_ROWS:
        problems.append(
            f"The export sent {ev.export_rows:,} orders instead of {EXPORT_ROWS:,}: a customer's "
            "export must be whole."
        )
    if growth is not None and growth > MEMORY_GROWTH_BYTES:
        problems.append(
            f"The service's peak memory grew by {growth / 1e6:.0f} MB while it sent one export "
            f"of {EXPORT_ROWS:,} orders (the bound is {MEMORY_GROWTH_BYTES / 1e6:.0f} MB): two "
            "customers exporting a bigger history at once and the process is killed for lack of "
            "memory. (Module 04, streaming.)"
        )
    if health_p99 is not None and health_p99 > HEALTH_P99_S:
        problems.append(
            f"GET /health took {health_p99:.1f} s at the 99th percentile during the export (the "
            f"bound is {HEALTH_P99_S:g} s): while one customer exports, the instance looks dead to "
            "its load balancer. (Module 03 and module 04.)"
        )
    figures = (
        f"{ev.export_rows if ev.export_rows is not None else 'n/a'} rows, peak memory "
        f"+{growth / 1e6:.0f} MB"
        if growth is not None
        else "peak memory n/a"
    )
    return Outcome(not problems, figures, problems)


# --- 7. receipts -------------------------------------------------------------------------


def judge_receipts(ev: Evidence) -> Outcome:
    if (missing := _not_judged(ev, "read-back")) is not None:
        return missing
    problems: list[str] = []
    upstream = ev.upstream
    assert upstream is not None
    paid = {
        _int(r["id"]): (email, _int(r["total_cents"]))
        for email, rows in ev.stored.items()
        for r in rows
        if r.get("status") == "paid"
    }
    crash = ev.workers[0] if ev.workers else None
    if crash is not None and crash.overran:
        problems.append(
            "The job runner was still busy after the course's time limit and had not reached "
            "a third of the receipts. (Module 06.)"
        )
    if len(ev.workers) > 1 and ev.workers[1].overran:
        problems.append(
            "After the crash, the job runner ran again and had not finished when the time "
            "limit came: `python -m shop.worker` must end once nothing is pending."
        )
    effective: dict[int, set[object]] = {}
    for n, d in enumerate(upstream.deliveries):
        effective.setdefault(d.order_id, set()).add(d.key if d.key is not None else ("no key", n))
    missing_receipts = [o for o in paid if o not in effective]
    twice = {o: len(keys) for o, keys in effective.items() if len(keys) > 1}
    strangers = [o for o in effective if o not in paid]
    wrong = [
        d for d in upstream.deliveries
        if d.order_id in paid and (d.email, d.total_cents) != paid[d.order_id]
    ]  # fmt: skip
    if missing_receipts and not any(w.overran for w in ev.workers):
        problems.append(
            f"{len(missing_receipts)} of {len(paid)} paid orders never got their receipt, "
            "although the job runner ran to its end: a delivery that failed was counted as "
            "done. The customer never hears from the shop. (Module 06, swallowed errors.)"
        )
    if twice:
        order_id, n = next(iter(twice.items()))
        problems.append(
            f"{len(twice)} receipts went out more than once (order {order_id}: {n} times), "
            "when the job runner was killed mid-send and ran again, or the mail service failed "
            "after accepting: every retry reached the customer. (Module 06, idempotency keys.)"
        )
    if strangers:
        problems.append(f"{len(strangers)} receipts were sent for orders that are not paid.")
    if wrong:
        problems.append(
            f"{len(wrong)} receipts name the wrong address or total: the customer gets "
            "someone else's numbers."
        )
    figures = (
        f"{len(paid) - len(missing_receipts)}/{len(paid)} receipts delivered, "
        f"{sum(n - 1 for n in twice.values())} duplicates"
    )
    return Outcome(not problems, figures, problems)
