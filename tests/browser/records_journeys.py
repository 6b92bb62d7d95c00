#!/usr/bin/env python3
"""Three real-browser journeys through the medical records, against one running server:

1. an admin, created through the one-time setup link the server logs at start, creates a doctor
   and a patient (each with a one-time password) and assigns the patient to the doctor;
2. the doctor signs in, chooses their own password, fills in the patient's profile, and records a
   consultation, a vaccination and a scan (a PNG upload);
3. the patient signs in, chooses their own password, reads their record (national ID masked),
   downloads the scan (its bytes must be the uploaded ones), and sees the doctor in the log of who
   opened their record.

Each journey runs in a fresh browser profile. Screenshots of every page land in
target/browser/records-NN-name.png, and axe-core checks every one of them (accessibility.py).

Usage: tests/browser/records_journeys.py path/to/medvault-binary
Needs Debian's chromium and chromium-driver, and Python's selenium (.ci/run installs them).
"""

import base64
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import accessibility  # noqa: E402  (axe-core on every page visited)

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

ADMIN = ("admin.ada", "a long and private passphrase")
DOCTOR = {"username": "dr.grey", "full_name": "Meredith Grey",
          "password": "the doctor chose this quiet sentence"}
PATIENT = {"username": "pat.lee", "full_name": "Lee Wan Ting",
           "password": "the patient picked a sentence of their own"}
NATIONAL_ID = "S1234567D"
NATIONAL_ID_MASKED = "S••••567D"
DIAGNOSIS = "Acute bronchitis, viral"
VACCINE = "Influenza (quadrivalent)"
SCAN_DESCRIPTION = "Chest X-ray, frontal view"
SCAN_NAME = "chest-xray.png"
WAIT = 15


class JourneyFailure(Exception):
    """A check of a journey did not hold; the message says which and what was seen."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise JourneyFailure(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_png() -> bytes:
    """A valid 4x4 RGB PNG (a red-to-blue gradient), built by hand."""
    width = height = 4

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(
        b"\x00" + b"".join(bytes((255 - 60 * x, 40 * y, 60 * x)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


class Server:
    """The medvault binary on a free port with a temporary home; its log goes to a file."""

    def __init__(self, binary: str, scratch: str):
        self.home = os.path.join(scratch, "home")
        os.makedirs(self.home)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(scratch, "server.log")
        env = dict(os.environ, MEDVAULT_HOME=self.home, ROCKET_PORT=str(self.port),
                   ROCKET_ADDRESS="127.0.0.1", NO_COLOR="1", ROCKET_CLI_COLORS="false")
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen([binary], env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def log_text(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_ready(self) -> None:
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise JourneyFailure(f"the server stopped (exit {self.process.returncode}) before "
                                     f"it answered; its log:\n{self.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise JourneyFailure("the server did not answer within 30 s")

    def setup_path(self) -> str:
        """The one-time setup link the server logs at start, as `/setup?token=...`."""
        deadline = time.time() + 15
        while time.time() < deadline:
            found = re.search(r"/setup\?token=([A-Za-z0-9_\-]+)", self.log_text())
            if found:
                return "/setup?token=" + found.group(1)
            time.sleep(0.2)
        raise JourneyFailure("the server log shows no /setup?token=... link; its log:\n"
                             + self.log_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


class Browser:
    """One headless Chromium with a fresh profile, and the steps every journey uses."""

    shot_number = 0

    def __init__(self, base: str, shots: str, scratch: str, downloads: str | None = None):
        self.base, self.shots = base, shots
        options = webdriver.ChromeOptions()
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1200,900"):
            options.add_argument(flag)
        options.add_argument("--user-data-dir=" + tempfile.mkdtemp(prefix="profile-", dir=scratch))
        if downloads:
            options.add_experimental_option("prefs", {
                "download.default_directory": downloads,
                "download.prompt_for_download": False,
                "download.directory_upgrade": True,
                "safebrowsing.enabled": False,
            })
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        self.driver = webdriver.Chrome(
            service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
        if downloads:
            # Headless Chromium ignores the download preferences unless told through DevTools.
            self.driver.execute_cdp_cmd("Page.setDownloadBehavior",
                                        {"behavior": "allow", "downloadPath": downloads})

    def quit(self) -> None:
        self.driver.quit()

    # Pages and waits

    def path(self) -> str:
        url = self.driver.current_url
        return url[len(self.base):] if url.startswith(self.base) else url

    def shot(self, name: str) -> str:
        Browser.shot_number += 1
        file = os.path.join(self.shots, f"records-{Browser.shot_number:02d}-{name}.png")
        try:
            # The whole page, not only the window: the record pages are long.
            size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
            data = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            })["data"]
            with open(file, "wb") as f:
                f.write(base64.b64decode(data))
        except WebDriverException:
            self.driver.save_screenshot(file)
        if name != "failure":
            problems = accessibility.violations(self.driver, f"{name} ({self.path()})")
            if problems:
                raise JourneyFailure("accessibility (axe-core):\n  " + "\n  ".join(problems))
        return file

    def open(self, path: str, name: str) -> None:
        self.driver.get(self.base + path)
        self.shot(name)

    def wait_path(self, pattern: str, what: str) -> None:
        """Waits until the path (without the fragment) matches `pattern` in full."""
        try:
            WebDriverWait(self.driver, WAIT).until(
                lambda d: re.fullmatch(pattern, self.path().split("#")[0]) is not None)
        except TimeoutException:
            raise JourneyFailure(f"{what}: expected a page at {pattern!r}, still at {self.path()!r}; "
                                 f"{self.problems()}") from None

    def click_through(self, element, pattern: str, what: str) -> None:
        """Clicks `element` and waits for the page it leads to (a click's navigation is
        asynchronous: the old page must go stale and the new one load at `pattern`)."""
        # A mark on the old page's window: a new page has a window of its own, without it.
        # (Polling the old <html> for staleness meets chromedriver's "node does not belong to
        # the document" errors while the navigation runs.)
        self.driver.execute_script("window.medvaultLeaving = true;")
        element.click()

        def arrived(d) -> bool:
            try:
                return d.execute_script(
                    "return !window.medvaultLeaving && document.readyState === 'complete';")
            except WebDriverException:
                return False  # the page is between documents: ask again

        try:
            WebDriverWait(self.driver, WAIT).until(arrived)
        except TimeoutException:
            raise JourneyFailure(f"{what}: the click led to no new page within {WAIT} s "
                                 f"(still at {self.path()!r})") from None
        self.wait_path(pattern, what)

    def problems(self) -> str:
        """What the page says went wrong: its flash message and field errors, or its heading."""
        d = self.driver
        parts = [e.text for e in d.find_elements(By.CSS_SELECTOR, "p.flash-error, p.flash-warning")]
        parts += [f"{e.get_attribute('id')}: {e.text}" for e in d.find_elements(By.CSS_SELECTOR, "p.error")]
        if not parts:
            parts = [h.text for h in d.find_elements(By.TAG_NAME, "h1")][:1]
        return "the page says: " + (" | ".join(parts) if parts else "(nothing)")

    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def flash(self) -> str:
        found = self.driver.find_elements(By.CSS_SELECTOR, "p.flash")
        return found[0].text if found else ""

    def expect_success(self, expected: str, what: str) -> None:
        message = self.flash()
        check(self.driver.find_elements(By.CSS_SELECTOR, "p.flash-success") and expected in message,
              f"{what}: expected the success message {expected!r}, saw {message!r}; {self.problems()}")

    # Forms

    def fill(self, scope, name: str, value: str) -> None:
        field = scope.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)

    def set_value(self, scope, name: str, value: str) -> None:
        """Date and datetime-local inputs: typing into them depends on the browser's locale, so
        the value is set as a script would, with the events a person's typing fires."""
        field = scope.find_element(By.NAME, name)
        self.driver.execute_script(
            "arguments[0].value = arguments[1];"
            "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));"
            "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));", field, value)
        check(field.get_property("value") == value,
              f"the {name} input holds {field.get_property('value')!r} after setting {value!r}")

    def choose(self, scope, name: str, value: str) -> None:
        Select(scope.find_element(By.NAME, name)).select_by_value(value)

    def open_details(self, summary_text: str):
        """Opens the <details> whose <summary> reads `summary_text`; returns its form."""
        details = self.driver.find_element(
            By.XPATH, f"//details[summary[normalize-space()={xpath_literal(summary_text)}]]")
        if details.get_attribute("open") is None:
            details.find_element(By.TAG_NAME, "summary").click()
            WebDriverWait(self.driver, WAIT).until(lambda d: details.get_attribute("open") is not None)
        form = details.find_element(By.TAG_NAME, "form")
        check(form.is_displayed(), f"the form under {summary_text!r} is not shown after opening it")
        return form

    def submit(self, form):
        return form.find_element(By.CSS_SELECTOR, "button[type=submit]")

    # Accounts

    def sign_in(self, username: str, password: str, pattern: str, name: str) -> None:
        self.open("/login", name + "-sign-in")
        form = self.driver.find_element(By.CSS_SELECTOR, "main form[action='/login']")
        self.fill(form, "username", username)
        self.fill(form, "password", password)
        self.click_through(self.submit(form), pattern, f"signing in as {username}")

    def first_sign_in(self, username: str, one_time: str, password: str, name: str) -> None:
        """Signs in with a one-time password, is sent to choose a new one, and signs in again."""
        self.sign_in(username, one_time, r"/account/password", name)
        self.shot(name + "-must-change-password")
        check("one-time password" in self.text(),
              f"{username}: the password page does not say a one-time password was used")
        # Every other page sends them back here until the password is changed.
        self.driver.get(self.base + "/dashboard")
        self.wait_path(r"/account/password", f"{username} opening the dashboard before changing "
                                             "the one-time password")
        form = self.driver.find_element(By.CSS_SELECTOR, "main form[action='/account/password']")
        self.fill(form, "current_password", one_time)
        self.fill(form, "new_password", password)
        self.click_through(self.submit(form), r"/login", f"{username} changing the password")
        self.shot(name + "-password-changed")
        self.expect_success("Your password is changed", f"{username} changing the password")
        self.sign_in(username, password, r"/dashboard", name + "-again")
        self.shot(name + "-dashboard")


def xpath_literal(text: str) -> str:
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "concat(" + ", \"'\", ".join(f"'{p}'" for p in text.split("'")) + ")"


# The journeys


def admin_journey(b: Browser, setup_path: str) -> dict:
    """Returns the one-time passwords of the doctor and the patient."""
    d = b.driver
    b.open(setup_path, "admin-setup")
    form = d.find_element(By.CSS_SELECTOR, "main form[action='/setup']")
    b.fill(form, "username", ADMIN[0])
    b.fill(form, "password", ADMIN[1])
    b.click_through(b.submit(form), r"/login", "creating the first admin at the setup link")
    b.shot("admin-created")
    b.expect_success("The admin account is ready", "creating the first admin")
    b.sign_in(*ADMIN, r"/dashboard", "admin")
    b.shot("admin-dashboard")

    one_time = {}
    for person, level in ((DOCTOR, "doctor"), (PATIENT, "patient")):
        b.open("/admin/users/new", f"admin-new-{level}")
        form = d.find_element(By.CSS_SELECTOR, "main form[action='/admin/users']")
        b.fill(form, "username", person["username"])
        b.choose(form, "level", level)
        b.fill(form, "full_name", person["full_name"])
        b.click_through(b.submit(form), r"/admin/users", f"creating the {level} {person['username']}")
        b.shot(f"admin-{level}-created")
        codes = d.find_elements(By.CSS_SELECTOR, "main p.secret code")
        check(len(codes) == 1, f"creating the {level}: expected one one-time password in "
                               f"<code>, found {len(codes)}; {b.problems()}")
        one_time[level] = codes[0].text.strip()
        check(len(one_time[level]) >= 12,
              f"the {level}'s one-time password {one_time[level]!r} is shorter than 12 characters")
        check(f"{person['username']} is created" in b.text(),
              f"creating the {level}: the page does not say {person['username']} is created")

    b.open("/admin/care-teams", "admin-care-teams")
    form = d.find_element(By.CSS_SELECTOR, "main form[action='/admin/care-teams']")
    doctor_select = Select(form.find_element(By.NAME, "doctor_id"))
    patient_select = Select(form.find_element(By.NAME, "patient_id"))
    for select, person in ((doctor_select, DOCTOR), (patient_select, PATIENT)):
        labels = [o.text for o in select.options]
        matching = [o for o in select.options if o.text.startswith(person["username"])]
        check(len(matching) == 1, f"care teams: {person['username']} is not listed once among {labels}")
        select.select_by_value(matching[0].get_attribute("value"))
    b.click_through(b.submit(form), r"/admin/care-teams", "assigning the patient to the doctor")
    b.shot("admin-assigned")
    b.expect_success(f"{DOCTOR['username']} now treats {PATIENT['username']}",
                     "assigning the patient to the doctor")
    rows = [r.text for r in d.find_elements(By.CSS_SELECTOR, "main table tbody tr")]
    check(any(DOCTOR["username"] in r and PATIENT["username"] in r for r in rows),
          f"care teams: no row pairs {DOCTOR['username']} with {PATIENT['username']}: {rows}")
    return one_time


def doctor_journey(b: Browser, one_time: str, scan_file: str) -> None:
    d = b.driver
    b.first_sign_in(DOCTOR["username"], one_time, DOCTOR["password"], "doctor")
    b.open("/patients", "doctor-patients")
    rows = d.find_elements(By.XPATH, f"//main//tr[td[normalize-space()='{PATIENT['username']}']]")
    check(len(rows) == 1, f"/patients: expected one row for {PATIENT['username']}, found {len(rows)}; "
                          f"the table reads: {b.text()!r}")
    check("not in your care" not in rows[0].text,
          f"/patients: {PATIENT['username']} is marked not in the doctor's care after the assignment")
    b.click_through(rows[0].find_element(By.TAG_NAME, "a"), r"/patients/[A-Za-z0-9]+",
                    "opening the patient from /patients")
    record_path = b.path().split("#")[0]
    b.shot("doctor-record-empty")
    check("No profile yet" in b.text(), "the new patient's record does not say it has no profile yet")

    # The profile: its form is open while there is none.
    form = b.open_details("Fill in the profile")
    b.fill(form, "national_id", NATIONAL_ID)
    b.fill(form, "first_name", "Wan Ting")
    b.fill(form, "last_name", "Lee")
    b.set_value(form, "date_of_birth", "1988-04-12")
    b.choose(form, "gender", "female")
    b.choose(form, "blood_type", "O+")
    b.fill(form, "phone", "+65 6123 4567")
    b.fill(form, "email", "wanting.lee@example.org")
    b.fill(form, "address", "10 Orchard Road, #05-01")
    b.fill(form, "postal_code", "238826")
    b.fill(form, "height_cm", "162")
    b.fill(form, "weight_kg", "55.5")
    b.fill(form, "allergies", "Penicillin")
    b.shot("doctor-profile-filled")
    b.click_through(b.submit(form), re.escape(record_path), "saving the profile")
    b.shot("doctor-profile-saved")
    b.expect_success("Profile saved.", "saving the profile")
    profile = d.find_element(By.CSS_SELECTOR, "#profile dl.profile").text
    for expected in ("Wan Ting", "Lee", "1988-04-12", "female", "O+", "Penicillin"):
        check(expected in profile, f"the saved profile does not show {expected!r}: {profile!r}")

    # A consultation.
    form = b.open_details("Record a consultation")
    b.set_value(form, "occurred_at", "2026-11-20T10:30")
    b.fill(form, "department", "General medicine")
    b.fill(form, "block", "B")
    b.fill(form, "unit", "12")
    b.fill(form, "diagnosis", DIAGNOSIS)
    b.fill(form, "notes", "Cough for five days, no fever.\nChest clear on listening.")
    b.fill(form, "prescription", "Rest and fluids; paracetamol 500 mg as needed")
    b.shot("doctor-consultation-filled")
    b.click_through(b.submit(form), re.escape(record_path), "recording the consultation")
    b.shot("doctor-consultation-saved")
    b.expect_success("Consultation recorded.", "recording the consultation")
    entries = d.find_element(By.ID, "consultations").text
    check(DIAGNOSIS in entries, f"the consultation's diagnosis is not listed: {entries!r}")
    check("2026-11-20" in entries, f"the consultation's date is not listed: {entries!r}")

    # A vaccination, dose 1.
    form = b.open_details("Record a vaccination")
    b.fill(form, "vaccine", VACCINE)
    b.fill(form, "dose_number", "1")
    b.set_value(form, "given_on", "2026-10-01")
    b.fill(form, "lot", "FLU-2026-118")
    b.fill(form, "given_by", "Nurse Tan")
    b.shot("doctor-vaccination-filled")
    b.click_through(b.submit(form), re.escape(record_path), "recording the vaccination")
    b.shot("doctor-vaccination-saved")
    b.expect_success(f"Dose 1 of {VACCINE} recorded.", "recording the vaccination")
    table = d.find_element(By.ID, "vaccinations").text
    check(VACCINE in table and "FLU-2026-118" in table, f"the vaccination is not listed: {table!r}")

    # A scan, uploaded through the file input.
    form = b.open_details("Upload a scan or file")
    b.choose(form, "category", "X-ray")
    b.fill(form, "description", SCAN_DESCRIPTION)
    b.set_value(form, "taken_on", "2026-11-20")
    form.find_element(By.NAME, "file").send_keys(scan_file)
    b.shot("doctor-scan-filled")
    b.click_through(b.submit(form), re.escape(record_path), "uploading the scan")
    b.shot("doctor-scan-uploaded")
    b.expect_success("File uploaded and encrypted.", "uploading the scan")
    files = d.find_element(By.ID, "files").text
    check(SCAN_DESCRIPTION in files and "image/png" in files, f"the scan is not listed: {files!r}")

    # The full record from the keyboard alone: every control in order, the focus always seen.
    problems = accessibility.keyboard_walk(d, "the doctor's record page")
    check(not problems, "keyboard:\n  " + "\n  ".join(problems))


def patient_journey(b: Browser, one_time: str, downloads: str, scan_bytes: bytes) -> None:
    d = b.driver
    b.first_sign_in(PATIENT["username"], one_time, PATIENT["password"], "patient")
    b.open("/records", "patient-records")
    b.wait_path(r"/records", "opening /records")
    source = d.page_source
    page = b.text()
    profile = d.find_element(By.ID, "profile").text
    check(NATIONAL_ID_MASKED in profile,
          f"/records: the national ID is not shown masked as {NATIONAL_ID_MASKED!r}: {profile!r}")
    check(NATIONAL_ID not in source,
          f"/records: the full national ID {NATIONAL_ID} is in the page the patient gets")
    check("Wan Ting" in profile, f"/records: the profile does not show the first name: {profile!r}")
    consultations = d.find_element(By.ID, "consultations").text
    check(DIAGNOSIS in consultations,
          f"/records: the consultation's diagnosis {DIAGNOSIS!r} is not shown: {consultations!r}")
    vaccinations = d.find_element(By.ID, "vaccinations").text
    check(VACCINE in vaccinations, f"/records: the vaccination is not shown: {vaccinations!r}")
    files = d.find_element(By.ID, "files").text
    check(SCAN_DESCRIPTION in files, f"/records: the scan is not listed: {files!r}")
    check(DOCTOR["full_name"] in page or DOCTOR["username"] in page,
          "/records: the doctor who recorded the entries is not named")

    # The download: /records/files/<id> redirects to a signed /files/<token> link.
    links = d.find_elements(By.CSS_SELECTOR, "#files a[download]")
    check(len(links) == 1, f"/records: expected one Download link for the scan, found {len(links)}")
    href = links[0].get_attribute("href")
    check(re.search(r"/records/files/[A-Za-z0-9]+$", href) is not None,
          f"/records: the Download link points at {href!r}, not /records/files/<id>")
    before = set(os.listdir(downloads))
    links[0].click()
    # Chromium writes into a .crdownload file and renames it when the download is complete.
    deadline, saved = time.time() + WAIT, None
    while time.time() < deadline and saved is None:
        names = set(os.listdir(downloads)) - before
        done = [n for n in names if not n.endswith(".crdownload")]
        if done and len(done) == len(names):
            saved = os.path.join(downloads, done[0])
        else:
            time.sleep(0.2)
    check(saved is not None, f"the scan was not downloaded into {downloads} within {WAIT} s "
                             f"(there: {os.listdir(downloads)})")
    check(len(set(os.listdir(downloads)) - before) == 1,
          f"one click downloaded several files: {sorted(set(os.listdir(downloads)) - before)}")
    with open(saved, "rb") as f:
        got = f.read()
    check(got == scan_bytes, f"the downloaded {os.path.basename(saved)} ({len(got)} bytes) is not the "
                             f"uploaded PNG ({len(scan_bytes)} bytes)")
    check(os.path.basename(saved) == SCAN_NAME,
          f"the download is named {os.path.basename(saved)!r}, expected {SCAN_NAME!r}")
    check(b.path().split("#")[0] == "/records",
          f"clicking Download left /records for {b.path()!r}")
    b.shot("patient-downloaded")

    b.open("/account/access-log", "patient-access-log")
    b.wait_path(r"/account/access-log", "opening /account/access-log")
    rows = [r.text for r in d.find_elements(By.CSS_SELECTOR, "main table tbody tr")]
    by_doctor = [r for r in rows if DOCTOR["username"] in r or DOCTOR["full_name"] in r]
    check(by_doctor, f"/account/access-log: the doctor is not named in any line: {rows}")
    for what in ("opened your record", "changed your record", "added a file"):
        check(any(what in r for r in by_doctor),
              f"/account/access-log: no line says the doctor {what}: {by_doctor}")
    check(not any(PATIENT["username"] in r for r in rows),
          f"/account/access-log: the patient's own actions are listed: {rows}")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    shots = os.path.join(os.getcwd(), "target", "browser")
    os.makedirs(shots, exist_ok=True)
    for old in os.listdir(shots):
        if old.startswith("records-") and old.endswith(".png"):
            os.remove(os.path.join(shots, old))
    scratch = tempfile.mkdtemp(prefix="medvault-records-")
    scan_bytes = small_png()
    scan_file = os.path.join(scratch, SCAN_NAME)
    with open(scan_file, "wb") as f:
        f.write(scan_bytes)
    downloads = os.path.join(scratch, "downloads")
    os.makedirs(downloads)

    server = Server(binary, scratch)
    journey, browser, started = "starting the server", None, time.time()
    try:
        server.wait_ready()
        setup_path = server.setup_path()
        timings = []

        def run(name, fn, *args, downloads_dir=None):
            nonlocal journey, browser
            journey, t0 = name, time.time()
            browser = Browser(server.base, shots, scratch, downloads_dir)
            try:
                result = fn(browser, *args)
            except Exception as failure:
                try:
                    failure.where = f" at {browser.path()!r} (screenshot {browser.shot('failure')})"
                except WebDriverException:
                    pass
                raise
            finally:
                browser.quit()
                browser = None
            timings.append(f"{name} {time.time() - t0:.1f} s")
            print(f"browser: {name} journey passed")
            return result

        one_time = run("admin", admin_journey, setup_path)
        run("doctor", doctor_journey, one_time["doctor"], scan_file)
        run("patient", patient_journey, one_time["patient"], downloads, scan_bytes,
            downloads_dir=downloads)
        print(f"browser: records journeys passed ({', '.join(timings)}; "
              f"{time.time() - started:.1f} s in all)")
        return 0
    except (JourneyFailure, WebDriverException, AssertionError) as failure:
        where = getattr(failure, "where", "")
        message = str(failure).split("\nStacktrace:")[0].strip()
        print(f"browser: the {journey} journey FAILED{where}:\n  {message}", file=sys.stderr)
        errors = [l for l in server.log_text().splitlines() if "ERROR" in l or "WARN" in l]
        if errors:
            print("server log (warnings and errors):\n  " + "\n  ".join(errors[-20:]), file=sys.stderr)
        return 1
    finally:
        if browser is not None:
            try:
                browser.quit()
            except WebDriverException:
                pass
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
