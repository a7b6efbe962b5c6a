"""The deposit loop on a real Airflow stack: scheduler, dag-processor, triggerer,
api-server, Celery worker, PostgreSQL metadata, Redis broker (see conftest).

Everything goes through the REST API, the way an operator's tools would, or through
the UI in Chromium: no ``dag.test()``, no task marked successful by hand. A deposit
run ends once its files are staged; the staging opens a deposit form (a run of
``cpf_deposit_form``), answered as the *Required actions* page does, or on that page.
The CDC is the simulator, its receipts dropped in the inbox as a person would after
downloading them.

Unpausing the annual DAG starts its catch-up: one run per academic year since
2020-2021, one at a time, each staging that year's files and opening its own form.
The forms of the catch-up are answered only by the browser test (2022-2023); the
others stay open, as they may in production, and hold nothing back.

The tests share one stack and its state (:class:`Scenario`), in file order; a test
that needs the deposit of the first one runs it when this process has not (with
``pytest -n`` and the default ``--dist load``, xdist may split the file: each worker
then starts its own stack; ``--dist loadfile`` keeps them on one). The deposit is
always what unpauses the deposit DAGs in a process, so its run for 2023-2024 is
queued before the catch-up reaches that year (max_active_runs=1: the catch-up makes
its next run only once no other run is queued or running).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from cpf_deposit.demo.stack import RestClient

pytestmark = pytest.mark.slow

ANNUAL = "cpf_deposit_apogee_annual"
FORM = "cpf_deposit_form"
RECEIPTS = "cpf_receipts"
RUN_TIMEOUT_S = 600
ACADEMIC_YEAR = 2023  # the deposit run of test 1
BROWSER_YEAR = 2022  # the catch-up run whose form is answered in Chromium
BACKFILL_YEARS = (2020, 2021)  # run again from the command line
# Airflow 3.3 fails a form answered within seconds of its task parking (the executor's
# late "finished" event of the parked task meets the task queued again): answer, as a
# person would, only once this long has passed since the task started.
SETTLE_S = 12


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _when(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _ledger_files(scenario, *statuses: str):
    """The ledger's files with one of ``statuses`` (every file when none is given)."""
    from cpf_deposit.ledger.schema import FileStatus
    from cpf_deposit.ledger.status import files_with_status

    statuses = statuses or tuple(FileStatus)
    ledger = scenario.ledger()
    try:
        with ledger.engine.connect() as conn:
            return files_with_status(conn, *statuses)
    finally:
        ledger.dispose()


def _start_deposits(scenario) -> None:
    """Unpause the form DAG, then the annual DAG (its catch-up starts)."""
    if "unpaused" in scenario.done:
        return
    api = scenario.admin
    for dag_id in (FORM, ANNUAL):
        api.wait_dag_parsed(dag_id)
    api.unpause(FORM)
    api.unpause(ANNUAL)
    scenario.done.add("unpaused")


def _form_run_of(api: RestClient, run_id: str) -> tuple[dict, str]:
    """The staging event of the deposit run ``run_id`` and the form run it created."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        events = api.get(
            "/api/v2/assets/events",
            {"source_dag_id": ANNUAL, "source_run_id": run_id, "limit": 100},
        )["asset_events"]
        for event in events:
            if event["name"] != "cpf_flux_staged":
                continue
            for created in event.get("created_dagruns") or []:
                if created["dag_id"] == FORM:
                    return event, created["run_id"]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {FORM} run for the staging of {run_id}: {events}")
        time.sleep(2)


def _annual_run_of(api: RestClient, year: int) -> str:
    """The run id of the catch-up run covering academic year ``year`` (logical date
    1 October of ``year + 1``), once the scheduler has made it."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        for run in api.dag_runs(ANNUAL):
            if (run.get("logical_date") or "").startswith(f"{year + 1}-10-01"):
                return run["dag_run_id"]
        if time.monotonic() > deadline:
            raise AssertionError(f"no annual run for {year}-{year + 1}")
        time.sleep(2)


def _settle(api: RestClient, form_run: str) -> None:
    """Wait until SETTLE_S seconds have passed since ``await_deposit`` started."""
    ti = api.get(f"/api/v2/dags/{FORM}/dagRuns/{_q(form_run)}/taskInstances/await_deposit")
    waited = (dt.datetime.now(dt.UTC) - _when(ti["start_date"])).total_seconds()
    if waited < SETTLE_S:
        time.sleep(SETTLE_S - waited)


def _form_row(body: str, file_name: str, passages: int) -> bool:
    """The form's table lists ``file_name`` with its passage count."""
    row = rf"\|\s*`{re.escape(file_name)}`\s*\|\s*{passages}\s*\|"
    return re.search(row, body) is not None


# --------------------------------------------------------------------------------------
# 1. A deposit run stages its files and ends; the form it opened records the deposit
# --------------------------------------------------------------------------------------


def test_staging_opens_a_form_whose_answer_records_the_deposit(scenario):
    _deposit(scenario)


def _ensure_deposit(scenario) -> None:
    """The deposit of test 1, when this process has not run it (xdist put it elsewhere)."""
    if "deposit" not in scenario.done:
        _deposit(scenario)


def _deposit(scenario) -> None:
    api = scenario.admin
    _start_deposits(scenario)
    run_id = api.trigger(ANNUAL, conf={"academic_year": ACADEMIC_YEAR})
    scenario.remember(ANNUAL, run_id)
    run = api.wait_run(ANNUAL, run_id, ("success",), timeout=RUN_TIMEOUT_S)
    states = api.task_states(ANNUAL, run_id)
    assert states["stage"] == "success" and states["finish"] == "success", states
    assert "await_deposit" not in states, "the deposit run has no form of its own"

    staged = [f for f in _ledger_files(scenario, "STAGED") if f.run_id == run_id]
    every = [(f.run_id, f.status) for f in _ledger_files(scenario, "BUILT", "STAGED")]
    assert staged, f"the run staged no file; ledger files: {every}"
    names = sorted(f.file_name for f in staged)
    event, form_run = _form_run_of(api, run_id)
    scenario.remember(FORM, form_run)
    assert sorted(event["extra"]["files"]) == names, event["extra"]

    form = api.wait_action(FORM, form_run, "await_deposit", timeout=RUN_TIMEOUT_S)
    # the deposit run is over, its form still open: the run did not wait for it
    assert api.dag_run(ANNUAL, run_id)["state"] == "success"
    assert not form["response_received"]
    xcom = api.get(
        f"/api/v2/dags/{FORM}/dagRuns/{_q(form_run)}/taskInstances/staged_files"
        "/xcomEntries/return_value",
        {"deserialize": "true", "stringify": "false"},
    )["value"]
    listed = json.loads(xcom) if isinstance(xcom, str) else xcom
    # every file of this staging (a form run started by several stagings lists them all)
    assert set(names) <= {f["file_name"] for f in listed["staged"]}, listed["staged"]
    assert form["options"] == ["OK"], form["options"]
    assert form["defaults"] is None, "an unanswered form must never record a deposit"
    for f in staged:  # the form lists every staged file with its passage count
        assert _form_row(form["body"], f.file_name, f.passages), f"{f.file_name} not in the form"
    by = form["params"]["deposited_by"]  # optional: empty means whoever answers
    assert by["value"] is None and "null" in by["schema"]["type"], by
    assert any(a["task_instance"]["dag_run_id"] == form_run for a in api.pending_actions()), (
        "the form is listed among the required actions"
    )

    _settle(api, form_run)
    answer = api.answer_action(
        FORM, form_run, "await_deposit", -1, ["OK"], {"deposited_by": "Test"}
    )
    assert answer["chosen_options"] == ["OK"]
    assert _when(answer["responded_at"]) > _when(run["end_date"])
    api.wait_run(FORM, form_run, ("success",), timeout=RUN_TIMEOUT_S)

    states = api.task_states(FORM, form_run)
    assert states["await_deposit"] == "success" and states["record_deposit"] == "success"
    by_name = {f.file_name: f for f in _ledger_files(scenario, "DEPOSITED")}
    for f in staged:
        assert f.file_name in by_name, f"{f.file_name} is not DEPOSITED in the ledger"
        assert by_name[f.file_name].deposited_by == "Test"
    assert not api.pending_actions(FORM, form_run)
    deposited = api.get(
        "/api/v2/assets/events", {"source_dag_id": FORM, "source_run_id": form_run}
    )["asset_events"]
    assert [e["name"] for e in deposited] == ["cpf_flux_deposited"], deposited
    scenario.deposited = names
    scenario.done.add("deposit")


# --------------------------------------------------------------------------------------
# 2. Receipts: the ledger learns what the CDC said; the dashboard shows the same figures
# --------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _http(url: str, data: bytes | None = None, headers: dict | None = None):
    """(status, body, headers) without following redirects."""
    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(req, timeout=60) as r:
            return r.status, r.read().decode("utf-8", "replace"), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace"), dict(exc.headers)


def _card(page: str, label: str) -> str:
    card = rf"<div class='v[^']*'>([^<]*)</div><div class='l'>{re.escape(label)}</div>"
    m = re.search(card, page)
    assert m, f"no card {label!r} on the dashboard"
    return m.group(1)


def test_receipts_reach_the_ledger_and_the_dashboard_shows_its_figures(scenario, tmp_path):
    from cpf_deposit import dashboard
    from cpf_deposit.receipts.reconcile import reconcile, sendings
    from cpf_deposit.simulator.cdc import CdcState, CivilRegister, simulate

    _ensure_deposit(scenario)
    api = scenario.admin
    config = scenario.config()
    inbox = Path(config.paths.inbox)
    flux = [Path(config.paths.archive) / name for name in scenario.deposited]
    missing = [p.name for p in flux if not p.is_file()]
    assert not missing, f"deposited files not in the archive {config.paths.archive}: {missing}"
    register = CivilRegister.from_sqlite(scenario.demo.register)
    state = CdcState(tmp_path / "cdc-state.sqlite")
    try:
        outcomes = [simulate(p, register, inbox, state, xsd_path=config.xsd_path) for p in flux]
    finally:
        state.close()
    answered = sum(o.accepted + o.rejected for o in outcomes)
    assert answered > 0

    api.wait_dag_parsed(RECEIPTS)
    run_id = api.trigger(RECEIPTS)
    scenario.remember(RECEIPTS, run_id)
    api.unpause(RECEIPTS)
    api.wait_run(RECEIPTS, run_id, ("success",), timeout=RUN_TIMEOUT_S)
    assert not list(inbox.glob("*.xml")), "receipts left in the inbox"

    ledger = scenario.ledger()
    try:
        rec = reconcile(sendings(ledger, config))
    finally:
        ledger.dispose()
    assert rec.processed == answered, (rec.processed, answered)
    assert rec.accepted == sum(o.accepted for o in outcomes)

    base = scenario.stack.base_url
    page_url = f"{base}{dashboard.URL_PREFIX}/"
    status, _, headers = _http(page_url, headers={"Accept": "text/html"})
    assert status in (302, 303, 307) and "login" in headers.get("location", ""), status
    status, _, _ = _http(page_url, headers={"Accept": "application/json"})
    assert status == 401

    # the login form of the UI: a token for the viewer, kept as the UI's cookie
    form = urllib.parse.urlencode(
        {"username": "viewer", "password": scenario.stack.passwords["viewer"]}
    ).encode()
    status, body, _ = _http(
        f"{base}/auth/token",
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 201, body
    token = json.loads(body)["access_token"]
    cookie = {"Accept": "text/html", "Cookie": f"_token={token}"}
    status, page, headers = _http(page_url, headers=cookie)
    assert status == 200, page[:500]
    assert "default-src 'none'" in headers.get("content-security-policy", "")

    assert _card(page, "taux de rapprochement") == dashboard.pct(rec.rate)
    assert _card(page, "passages traités") == dashboard._n(rec.processed)
    assert _card(page, "acceptés") == dashboard._n(rec.accepted)
    assert _card(page, "rejetés") == dashboard._n(rec.rejected)
    for name in scenario.deposited:  # each deposited file, now processed by the CDC
        row = re.search(rf"<tr><td>{re.escape(name)}</td><td><span class='badge s-(\w+)'", page)
        assert row and row.group(1) == "PROCESSED", name
    scenario.done.add("receipts")


# --------------------------------------------------------------------------------------
# 3. Backfill from the command line: one run per academic year, run by the scheduler
# --------------------------------------------------------------------------------------


def _wait_catchup(api: RestClient, years) -> dict[str, dict]:
    """The catch-up runs of the 1 Octobers of ``years`` (logical-date years), once
    ended: a backfill leaves a run still in flight alone."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        runs = {
            r["logical_date"][:4]: r
            for r in api.dag_runs(ANNUAL, run_type="scheduled")
            if r["logical_date"][5:10] == "10-01"
        }
        wanted = {str(y): runs.get(str(y)) for y in years}
        if all(r and r["state"] in ("success", "failed") for r in wanted.values()):
            assert all(r["state"] == "success" for r in wanted.values()), wanted
            return wanted
        if time.monotonic() > deadline:
            raise AssertionError(f"the catch-up runs of {years} did not end: {wanted}")
        time.sleep(2)


def test_backfill_creates_one_run_per_academic_year(scenario):
    _ensure_deposit(scenario)  # unpaused, and the deposit run queued before the catch-up
    api = scenario.admin
    # the years the catch-up runs first (2020-2021 and 2021-2022): done by now
    years = tuple(y + 1 for y in BACKFILL_YEARS)  # their 1 October: the logical dates
    caught_up = _wait_catchup(api, years)
    rerun = {r["dag_run_id"] for r in caught_up.values()}
    files_before = {f.file_name for f in _ledger_files(scenario) if f.run_id in rerun}
    out = scenario.stack.airflow(
        "backfill", "create", "--dag-id", ANNUAL,
        "--from-date", f"{years[0]}-10-01", "--to-date", f"{years[1]}-10-02",
        "--reprocess-behavior", "completed", timeout=300,
    )  # fmt: skip
    expected = {dt.datetime(y, 10, 1, 1, 0, tzinfo=dt.UTC) for y in years}

    backfill = [r for r in api.dag_runs(ANNUAL) if r["run_type"] == "backfill"]
    got = {_when(r["logical_date"]) for r in backfill}
    assert got == expected, f"backfill runs {sorted(got)}; CLI said:\n{out.stdout[-2000:]}"
    backfills = api.get("/api/v2/backfills", {"dag_id": ANNUAL})["backfills"]
    assert len(backfills) == 1 and backfills[0]["reprocess_behavior"] == "completed"
    # the completed catch-up runs are run again, as backfill runs, without waiting for
    # any form
    assert {r["dag_run_id"] for r in backfill} == rerun
    for run in backfill:
        scenario.remember(ANNUAL, run["dag_run_id"])
        done = api.wait_run(ANNUAL, run["dag_run_id"], ("success",), timeout=RUN_TIMEOUT_S)
        assert done["run_type"] == "backfill"
    # the catch-up staged these years already: run again, they stage nothing new
    files_after = {f.file_name for f in _ledger_files(scenario) if f.run_id in rerun}
    assert files_after == files_before, sorted(files_after ^ files_before)
    scenario.done.add("backfill")


# --------------------------------------------------------------------------------------
# 4. The form answered in Chromium, on the Required actions page
# --------------------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DEPOSITOR = "Guichetier Navigateur"  # what the person types in « Déposé par »
UI_WAIT_S = 60


@pytest.fixture
def browser():
    """Headless Debian Chromium through its own chromedriver (no selenium-manager)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.fail(f"not installed: {missing} (make services: apt-get install chromium)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--window-size=1400,1000",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def _click_link(driver, url: str) -> bool:
    """Click a shown link of the page to ``url`` (as is or URL-encoded); False if none."""
    from selenium.webdriver.common.by import By

    parts = urllib.parse.urlsplit(url)
    wanted = {url, f"{parts.scheme}://{parts.netloc}{urllib.parse.quote(parts.path)}"}
    for a in driver.find_elements(By.TAG_NAME, "a"):
        if a.get_attribute("href") in wanted and a.is_displayed():
            a.click()
            return True
    return False


def test_the_form_answered_in_chromium_records_the_deposit(scenario, browser, tmp_path):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    _ensure_deposit(scenario)
    api = scenario.admin
    assert DEPOSITOR.split()[0] not in _demo_names(scenario.demo.apogee)
    run_id = _annual_run_of(api, BROWSER_YEAR)
    scenario.remember(ANNUAL, run_id)
    api.wait_run(ANNUAL, run_id, ("success",), timeout=RUN_TIMEOUT_S)
    staged = [f for f in _ledger_files(scenario, "STAGED") if f.run_id == run_id]
    assert staged, f"the catch-up run of {BROWSER_YEAR}-{BROWSER_YEAR + 1} staged no file"
    _, form_run = _form_run_of(api, run_id)
    scenario.remember(FORM, form_run)
    api.wait_action(FORM, form_run, "await_deposit", timeout=RUN_TIMEOUT_S)

    # a viewer sees the form but cannot answer it
    status, body, _ = scenario.viewer.raw(
        "PATCH",
        f"/api/v2/dags/{FORM}/dagRuns/{_q(form_run)}/taskInstances/await_deposit/-1/hitlDetails",
        {"chosen_options": ["OK"], "params_input": {"deposited_by": "viewer"}},
    )
    assert status == 403, (status, body)
    assert not api.hitl_detail(FORM, form_run, "await_deposit")["response_received"]

    driver = browser
    # the React pages re-render while loading: an element found may be replaced
    wait = WebDriverWait(driver, UI_WAIT_S, ignored_exceptions=(StaleElementReferenceException,))
    base = scenario.stack.base_url
    driver.get(f"{base}/")  # not logged in: the UI sends us to its login page
    wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(scenario.stack.passwords["admin"])
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[type=submit]"))).click()
    wait.until(lambda d: "/auth/login" not in d.current_url)

    # Browse → Required Actions → the form of this staging
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label=Browse]"))).click()
    wait.until(lambda d: _click_link(d, f"{base}/required_actions"))
    task_page = f"{base}/dags/{FORM}/runs/{form_run}/tasks/await_deposit/required_actions"
    wait.until(lambda d: _click_link(d, task_page))
    wait.until(
        lambda d: all(f.file_name in d.find_element(By.TAG_NAME, "body").text for f in staged)
    )
    _settle(api, form_run)
    # the field « Déposé par » (its label's for= does not name the input: Airflow's UI)
    by_label = "//*[@data-part='root'][.//label[normalize-space()='Déposé par']]//input"
    wait.until(ec.element_to_be_clickable((By.XPATH, by_label))).send_keys(DEPOSITOR)
    driver.save_screenshot(str(tmp_path / "required-action.png"))  # to look at if it fails
    wait.until(ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='OK']"))).click()

    api.wait_run(FORM, form_run, ("success",), timeout=RUN_TIMEOUT_S)
    detail = api.hitl_detail(FORM, form_run, "await_deposit")
    assert detail["chosen_options"] == ["OK"]
    assert detail["params_input"] == {"deposited_by": DEPOSITOR}
    assert detail["responded_by_user"]["name"] == "admin"
    by_name = {f.file_name: f for f in _ledger_files(scenario, "DEPOSITED")}
    for f in staged:
        assert f.file_name in by_name, f"{f.file_name} is not DEPOSITED in the ledger"
        assert by_name[f.file_name].deposited_by == DEPOSITOR
    scenario.done.add("browser")


# --------------------------------------------------------------------------------------
# 5. No holder's name in any task log
# --------------------------------------------------------------------------------------


def _demo_names(apogee: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{apogee}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT lib_nom_pat_ind, lib_nom_usu_ind, lib_pr1_ind, lib_pr2_ind FROM individu"
        ).fetchall()
    finally:
        conn.close()
    return sorted({v.strip() for row in rows for v in row if v and len(v.strip()) >= 4})


def _wait_quiet(scenario) -> None:
    """Until the catch-up has made its last run (the newest academic year a run has
    come for), every deposit run has ended and every open form awaits its answer:
    then every task that will log has logged."""
    from cpf_deposit.orchestration import last_backfillable_year

    api = scenario.admin
    last = last_backfillable_year(dt.datetime.now(scenario.config().tz).date())
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        runs = api.dag_runs(ANNUAL)
        busy = [r["dag_run_id"] for r in runs if r["state"] in ("queued", "running")]
        if not any((r["logical_date"] or "").startswith(f"{last + 1}-10-01") for r in runs):
            busy.append(f"the catch-up run of {last}-{last + 1}, not made yet")
        for run in api.dag_runs(FORM, state=["queued", "running"]):
            if api.task_states(FORM, run["dag_run_id"]).get("await_deposit") != "awaiting_input":
                busy.append(run["dag_run_id"])
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"runs still busy: {busy}")
        time.sleep(2)


def test_task_logs_name_no_holder(scenario):
    _ensure_deposit(scenario)
    api = scenario.admin
    _wait_quiet(scenario)
    names = _demo_names(scenario.demo.apogee)
    assert len(names) > 100
    pattern = re.compile(
        r"(?<!\w)(" + "|".join(re.escape(n) for n in names) + r")(?!\w)", re.IGNORECASE
    )
    scanned, lines, hits = 0, 0, []
    for dag_id in (ANNUAL, FORM, RECEIPTS):
        for run in api.dag_runs(dag_id):
            for ti in api.task_instances(dag_id, run["dag_run_id"]):
                if ti["state"] in (None, "scheduled", "queued"):
                    continue  # not started: no log
                for attempt in range(1, (ti.get("try_number") or 0) + 1):
                    text = api.task_log(
                        dag_id, run["dag_run_id"], ti["task_id"], attempt, ti["map_index"]
                    )
                    scanned += 1
                    lines += text.count("\n") + 1
                    found = pattern.findall(text)
                    if found:  # where, never which name
                        hits.append((dag_id, run["dag_run_id"], ti["task_id"], attempt, len(found)))
    assert scanned >= 10, f"only {scanned} logs read"
    assert lines > scanned * 3, "the logs look empty"
    assert not hits, f"holder names in task logs (dag, run, task, try, occurrences): {hits}"
