#!/usr/bin/env python3
"""A real browser enrols two-factor sign-in, signs out, and signs back in with a code computed
from the secret the page showed. Screenshots of each page land in target/browser/.

Usage: tests/browser/two_factor_journey.py path/to/medvault-binary
Needs Debian's chromium and chromium-driver, and Python's selenium (.ci/run installs them).
"""

import base64
import hashlib
import hmac
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import accessibility  # noqa: E402  (axe-core on every page visited)

PASSWORD = "a long and private passphrase"


def totp(secret_base32: str, step: int) -> str:
    """RFC 6238 with SHA-1, 6 digits: what an authenticator app computes."""
    padded = secret_base32 + "=" * (-len(secret_base32) % 8)
    key = base64.b32decode(padded)
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{number % 1_000_000:06d}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url_port: int, process: subprocess.Popen) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server stopped before it answered")
        try:
            with socket.create_connection(("127.0.0.1", url_port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not answer within 30 s")


def main() -> int:
    binary = os.path.abspath(sys.argv[1])
    shots = os.path.join(os.getcwd(), "target", "browser")
    os.makedirs(shots, exist_ok=True)
    home = tempfile.mkdtemp(prefix="medvault-browser-")
    port = free_port()
    env = dict(os.environ, MEDVAULT_HOME=home, ROCKET_PORT=str(port), ROCKET_ADDRESS="127.0.0.1")
    subprocess.run(
        [binary, "user", "create", "--level", "doctor", "--username", "dr.grey"],
        input=PASSWORD + "\n", text=True, env=env, check=True, capture_output=True,
    )
    server = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = None
    try:
        wait_for(port, server)
        options = webdriver.ChromeOptions()
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1200,900"):
            options.add_argument(flag)
        options.add_argument("--user-data-dir=" + tempfile.mkdtemp())
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                                  options=options)
        base = f"http://127.0.0.1:{port}"

        def arrive(fragment: str) -> None:
            """A click's navigation is asynchronous: wait for the page it leads to."""
            WebDriverWait(driver, 15).until(expected_conditions.url_contains(fragment))

        def shot(name: str) -> None:
            driver.save_screenshot(os.path.join(shots, f"{name}.png"))
            problems = accessibility.violations(driver, name)
            if problems:
                raise SystemExit("accessibility (axe-core):\n  " + "\n  ".join(problems))

        def sign_in() -> None:
            driver.get(base + "/login")
            driver.find_element(By.NAME, "username").send_keys("dr.grey")
            driver.find_element(By.NAME, "password").send_keys(PASSWORD)
            driver.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()

        sign_in()
        arrive("/dashboard")
        driver.get(base + "/account/2fa")
        shot("01-two-factor-off")
        driver.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()
        arrive("/account/2fa/start")
        qr = WebDriverWait(driver, 15).until(lambda d: d.find_element(By.CSS_SELECTOR, "img.qr"))
        shot("02-enrol")
        assert qr.get_attribute("src").startswith("data:image/png")
        secret = driver.find_element(By.CSS_SELECTOR, "code.secret-key").text.strip()
        step = int(time.time()) // 30
        driver.find_element(By.NAME, "code").send_keys(totp(secret, step))
        driver.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()
        arrive("/account/2fa/confirm")
        shot("03-recovery-codes")
        codes = WebDriverWait(driver, 15).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "ul.recovery-codes code")
        )
        assert len(codes) == 10, len(codes)

        driver.find_element(By.CSS_SELECTOR, "form.signout button").click()
        arrive("/login")
        sign_in()
        arrive("/login/2fa")
        WebDriverWait(driver, 15).until(lambda d: d.find_element(By.NAME, "code"))
        shot("04-code-asked")
        # The enrolment spent this step's code: wait for the next step, as a person would.
        while int(time.time()) // 30 <= step:
            time.sleep(0.5)
        driver.find_element(By.NAME, "code").send_keys(totp(secret, int(time.time()) // 30))
        driver.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()
        arrive("/dashboard")
        shot("05-signed-in-with-code")
        print("browser: two-factor journey passed")
        return 0
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
