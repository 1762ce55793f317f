"""`codecook ui` in a real browser: headless Chromium (Debian's, installed by
scripts/install-browser.sh from `make test`) drives the Dagster UI and the MLflow UI as a new user
would, on a small recipe (the demo recipe with two standard-library packages and a fork as its
sources, and an MLflow store of its own outside the storage root): exact_dedup and what it reads
materialized by clicking, exact_dedup's row counts, funnel plot (every stage of the code funnel
carries the funnel so far) and passing checks, the declarative refresh (data_automation, the eager
condition), the runs in MLflow with params and metrics.

Screenshots of every step are kept under test-artifacts/ui_browser/ (gitignored; the path is
printed at the end). The UI's bad inputs (a second start, a busy port, a remote tracking URI,
Spark Connect failing) are checked here too, each against the real `codecook ui` command, with a
scan of /proc proving that nothing it started is left running, and so is the stop of the UI.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "ui_browser"
CODECOOK = str(Path(sys.executable).parent / "codecook")
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# The selection clicked in the UI: exact_dedup and what it reads (the code sources, raw_code). Every
# stage of the code funnel carries the funnel so far (orchestration.stage.add_funnel), so two stages
# show the funnel plot: 65-108 s for this test at load 4-10, where the branch up to code_mix took 172 s.
SELECTION = "+key:exact_dedup"
SELECTED = {"raw_code", "exact_dedup"}
ASSET, ASSET_PLOT = "exact_dedup", "funnel/funnel.png"
MARKER = "CODECOOK_UI_TEST_MARKER"

# Two small standard-library packages, the second also under a fork's name: each of its files is
# an exact duplicate across repositories, so exact dedup has clusters to remove and plot.
SMALL_RECIPE = """\
extends: {demo}
name: ui-browser
sources:
  - name: stdlib
    kind: folder
    path: ${{stdlib}}
    repo: cpython
    licence: PSF-2.0
    stars: 60000
    include: ["json/**", "tomllib/**"]
    exclude: ["**/__pycache__/**", "**/*.pyc"]
  - name: stdlib-fork
    kind: folder
    path: ${{stdlib}}
    repo: cpython-fork
    licence: PSF-2.0
    stars: 10
    include: ["json/**"]
    exclude: ["**/__pycache__/**", "**/*.pyc"]
# A tracking store of the recipe's own, outside the storage root: the UI's MLflow server must
# serve this one (where the steps log), not the storage root's default.
mlflow:
  tracking_uri: sqlite:///{store}/mlflow.db
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes_with(marker: str) -> list[str]:
    """Command lines of live processes whose environment carries `marker` (children inherit it)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def wait_until_gone(marker: str, timeout_s: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def ui_command(home: Path, ports: dict[str, int], recipe: Path | None = None) -> list[str]:
    argv = [CODECOOK, "ui", "--home", str(home)]
    if recipe is not None:
        argv += ["--recipe", str(recipe)]
    for flag, port in ports.items():
        argv += [flag, str(port)]
    return argv


def ui_env(marker: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, MARKER: marker, **extra}
    env.pop("CODECOOK_SPARK_REMOTE", None)
    return env


def fresh_ports() -> dict[str, int]:
    return {"--dagster-port": free_port(), "--mlflow-port": free_port(), "--spark-connect-port": free_port()}


# --------------------------------------------------------------------------------------------------
# Bad input: each a clear message, exit code 2, nothing left running.


def test_busy_port_is_named_and_nothing_starts(tmp_path):
    marker = uuid.uuid4().hex
    ports = fresh_ports()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["--mlflow-port"]))
        squatter.listen()
        done = subprocess.run(
            ui_command(tmp_path / "home", ports),
            env=ui_env(marker),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        f"port already in use on 127.0.0.1: {ports['--mlflow-port']} (MLflow UI; choose another with --mlflow-port PORT)"
        in done.stderr
    )
    assert not (tmp_path / "home" / "logs").exists()  # no service was started
    assert processes_with(marker) == []


def test_a_tracking_server_in_the_recipe_is_refused_before_anything_starts(tmp_path):
    marker = uuid.uuid4().hex
    recipe = tmp_path / "remote-mlflow.yaml"
    recipe.write_text(
        f"extends: {PROJECT_ROOT / 'recipes' / 'demo.yaml'}\nmlflow:\n  tracking_uri: http://127.0.0.1:5999\n"
    )
    done = subprocess.run(
        ui_command(tmp_path / "home", fresh_ports(), recipe),
        env=ui_env(marker),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        "codecook ui: mlflow.tracking_uri 'http://127.0.0.1:5999' is not a store a local MLflow server can serve"
        in done.stderr
    )
    assert not (tmp_path / "home" / "logs").exists()  # no service was started
    assert processes_with(marker) == []


def test_spark_connect_failing_to_start_stops_everything(tmp_path):
    marker = uuid.uuid4().hex
    # A Java that does not exist: spark-submit fails at once, while Dagster and MLflow are starting.
    env = ui_env(marker, JAVA_HOME=str(tmp_path / "no-java"))
    done = subprocess.run(
        ui_command(tmp_path / "home", fresh_ports()), env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "codecook ui: Spark Connect exited with code" in done.stderr
    assert "while starting (log: " in done.stderr and "spark-connect.log" in done.stderr
    assert str(tmp_path / "no-java") in done.stderr  # the log's tail says what went wrong
    assert wait_until_gone(marker) == []
    # The lock went with it: the storage root is free for the next start.
    assert (tmp_path / "home" / "ui.lock").read_text() == ""


# --------------------------------------------------------------------------------------------------
# The browser test.


@pytest.fixture(scope="module")
def running_ui(tmp_path_factory):
    """`codecook ui` on free ports over a fresh storage root and the small recipe; stopped after."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Chromium and chromedriver are missing: run scripts/install-browser.sh (make test does)")
    base = tmp_path_factory.mktemp("ui")
    recipe = base / "ui-browser.yaml"
    store = base / "team-store"
    recipe.write_text(SMALL_RECIPE.format(demo=PROJECT_ROOT / "recipes" / "demo.yaml", store=store))
    home, ports, marker = base / "home", fresh_ports(), uuid.uuid4().hex
    output = base / "ui.out"
    with open(output, "w") as log:
        ui = subprocess.Popen(
            ui_command(home, ports, recipe), env=ui_env(marker), stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 240
    while "(Ctrl-C stops all)" not in output.read_text():
        assert ui.poll() is None, output.read_text()
        assert time.monotonic() < deadline, output.read_text()
        time.sleep(0.5)
    yield {
        "dagster": f"http://127.0.0.1:{ports['--dagster-port']}",
        "mlflow": f"http://127.0.0.1:{ports['--mlflow-port']}",
        "home": home,
        "ports": ports,
        "recipe": recipe,
        "marker": marker,
        "store": store,
        "output": output,
    }
    ui.send_signal(signal.SIGINT)  # Ctrl-C
    assert ui.wait(timeout=120) == 0, output.read_text()
    said = output.read_text()
    # Every service stopped on SIGTERM within the grace period (none needed SIGKILL), and nothing
    # any of them started is left: Spark's JVM and Python workers, dagster dev's webserver, daemon,
    # code servers and run workers, MLflow's server and its workers.
    assert "killed" not in said and "stopped in " in said, said
    print("\n" + said.splitlines()[-1])
    assert processes_with(marker) == [], "processes of the UI left running"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    yield driver
    driver.quit()
    print(f"\nUI screenshots: {ARTIFACTS}")


class Page:
    """Waits for what a user would look for: visible text, a clickable element."""

    def __init__(self, driver, timeout_s: float = 60):
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.wait = WebDriverWait(driver, timeout_s, poll_frequency=0.5)
        self.shots = 0

    def open(self, url: str) -> None:
        self.driver.get(url)

    def text_appears(self, text: str, timeout_s: float | None = None):
        """The first visible element in the page body with a text node containing `text`."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        xpath = f"//body//*[text()[contains(normalize-space(.), {xpath_literal(text)})]]"

        def shown(driver):
            for element in driver.find_elements(By.XPATH, xpath):
                try:
                    if element.is_displayed():
                        return element
                except StaleElementReferenceException:  # re-rendered meanwhile: look again
                    continue
            return None

        wait = self.wait if timeout_s is None else WebDriverWait(self.driver, timeout_s, poll_frequency=1)
        return wait.until(shown, message=f"text {text!r} not shown on {self.driver.current_url}")

    def click(self, xpath: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        self.wait.until(
            ec.element_to_be_clickable((By.XPATH, xpath)), message=f"{xpath} not clickable"
        ).click()

    def body(self) -> str:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    def shot(self, name: str) -> None:
        self.shots += 1
        self.driver.save_screenshot(str(ARTIFACTS / f"{self.shots:02d}-{name}.png"))

    def dismiss_popovers(self) -> None:
        """MLflow's feature tips ("Detect Issues ... Got it") cover what is under them."""
        from selenium.webdriver.common.by import By

        for button in self.driver.find_elements(By.XPATH, "//button[normalize-space(.)='Got it']"):
            if button.is_displayed():
                button.click()

    def dismiss_dialogs(self) -> int:
        """Close any first-run dialog (none expected: the instance turns Dagster's nux off)."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        dialogs = [d for d in self.driver.find_elements(By.CSS_SELECTOR, "[role=dialog]") if d.is_displayed()]
        for _ in dialogs:
            self.driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        return len(dialogs)


def latest_run(dagster: str) -> dict | None:
    from benchmarks.ui import graphql

    runs = graphql(
        dagster, "{ runsOrError(limit: 1) { ... on Runs { results { runId assetSelection { path } } } } }"
    )
    results = runs["runsOrError"]["results"]
    return results[0] if results else None


def xpath_literal(text: str) -> str:
    return f"'{text}'" if "'" not in text else f'"{text}"'


@pytest.mark.slow
def test_ui_in_a_browser(running_ui, browser):
    page = Page(browser)
    try:
        walk_through_the_ui(page, running_ui)
    except BaseException:
        page.shot("failure")  # what the browser showed when it went wrong
        raise


def walk_through_the_ui(page: Page, running_ui: dict) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser = page.driver
    dagster, mlflow = running_ui["dagster"], running_ui["mlflow"]

    # A second `codecook ui` on the same storage root, started now and judged after the run: it is
    # refused, names the running one, and leaves nothing running.
    second_marker = uuid.uuid4().hex
    second = subprocess.Popen(
        ui_command(running_ui["home"], fresh_ports(), running_ui["recipe"]),
        env=ui_env(second_marker),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    # The lineage, with no first-run dialog over it.
    page.open(f"{dagster}/asset-groups")
    page.text_appears("Global asset lineage")
    page.text_appears("Materialize all", timeout_s=120)  # once the code location has loaded
    assert page.dismiss_dialogs() == 0, "a first-run dialog covered the UI"
    page.shot("lineage")

    # Select exact_dedup and everything upstream of it in the asset search (a CodeMirror editor:
    # click it, then type into the textarea it focuses), and click Materialize.
    page.click(
        "//pre[contains(text(), 'Search and filter assets')]/ancestor::div[contains(@class, 'CodeMirror ')][1]"
    )
    editor = browser.switch_to.active_element
    editor.send_keys(SELECTION)
    editor.send_keys(Keys.ENTER)
    page.wait.until(lambda d: ASSET in d.current_url, message="the selection did not apply")
    page.shot("selection")
    before = latest_run(dagster)
    page.click("//button[starts-with(normalize-space(.), 'Materialize all (')]")
    run = page.wait.until(
        lambda d: (r := latest_run(dagster)) and r != before and r, message="no run launched"
    )
    page.shot("launched")
    selected = {key["path"][0] for key in run["assetSelection"]}
    assert SELECTED <= selected <= SELECTED | {"code_sources"}, f"the click launched {sorted(selected)}"

    # While it runs: declarative refresh is shown. The data_automation sensor on the Automation
    # page, and on a data asset's page the condition it evaluates (eager).
    page.open(f"{dagster}/automation")
    page.text_appears("data_automation")
    page.shot("automation")
    page.open(f"{dagster}/assets/{ASSET}")
    page.text_appears("eager")
    page.shot(f"asset-{ASSET}-automation")

    out, err = second.communicate(timeout=120)
    assert second.returncode == 2, out + err
    assert "already running for this storage root" in err and dagster in err, err
    assert wait_until_gone(second_marker, timeout_s=10) == []

    # The run's end is awaited through the UI's GraphQL with the browser on a blank page: a live
    # run page (log, Gantt chart) costs Chromium a core the run needs on a 2-core machine. Then the
    # run page shows it succeeded.
    from benchmarks.ui import wait_for_run

    page.open("about:blank")
    assert wait_for_run(dagster, run["runId"], timeout_s=900)["status"] == "SUCCESS"
    page.open(f"{dagster}/runs/{run['runId']}")
    page.text_appears("Success")
    page.shot("run-succeeded")

    # The asset page: row counts, its own dedup figures and the funnel so far (raw_code, exact_dedup)
    # with its plot in the latest materialization's metadata.
    page.open(f"{dagster}/assets/{ASSET}")
    page.text_appears("rows_out")
    for name in ("rows_in", "rows_rejected", "duplicate_rate", "funnel", "funnel_plot"):
        page.text_appears(name)
    # The plot is an image served by the MLflow UI (Dagster's Markdown drops data: URLs), loaded.
    plot = page.wait.until(
        lambda d: d.find_elements(By.XPATH, f"//img[@alt='{ASSET_PLOT}']"),
        message=f"no {ASSET_PLOT} image on the asset page",
    )[0]
    assert plot.get_attribute("src").startswith(f"{mlflow}/get-artifact?"), plot.get_attribute("src")
    page.wait.until(
        lambda d: int(plot.get_attribute("naturalWidth") or 0) > 0, message="the plot did not load"
    )
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", plot)
    page.shot(f"asset-{ASSET}")

    # Its checks, all passed.
    page.open(f"{dagster}/assets/{ASSET}?view=checks")
    for check in ("conservation", "schema", "unique_sha256", "kept_twin_present"):
        page.text_appears(check)
    page.text_appears("Passed")
    assert "Failed" not in page.body()
    page.shot("asset-checks")

    # MLflow: the recipe's own tracking store (not the storage root's default) is what the UI's
    # server shows; its experiment lists a run per asset, with params and metrics.
    assert (running_ui["store"] / "mlflow.db").exists()
    assert not (running_ui["home"] / "mlflow.db").exists()
    assert f"MLflow store:  sqlite:///{running_ui['store']}/mlflow.db" in running_ui["output"].read_text()
    page.open(f"{mlflow}/#/experiments")
    page.click("//a[normalize-space(.)='codecook-ui-browser']")
    page.wait.until(
        lambda d: "/experiments/" in d.current_url and d.current_url.split("/experiments/")[1][:1].isdigit()
    )
    experiment = browser.current_url.split("/experiments/")[1].split("/")[0].split("?")[0]
    page.dismiss_popovers()
    page.shot("mlflow-experiment")
    # MLflow 3 opens an experiment on its GenAI (traces) view; runs are under "Model training".
    page.open(f"{mlflow}/#/experiments/{experiment}/runs?workflowType=machine_learning")
    link = page.wait.until(
        lambda d: d.find_elements(By.XPATH, f"//a[normalize-space(.)='{ASSET}']"),
        message=f"no MLflow run named {ASSET}",
    )[0]
    page.shot("mlflow-runs")
    page.open(link.get_attribute("href"))
    for text in ("num_bands", "recipe_hash", "rows_out", "rows_in"):
        page.text_appears(text)
    assert "Finished" in page.body()
    page.shot("mlflow-run")
