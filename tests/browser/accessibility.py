"""axe-core on the pages the browser journeys visit.

axe-core (npm, pinned in tests/browser/package.json; `npm ci --prefix tests/browser` installs
it, .ci/run does) is put into each page through WebDriver, not fetched from a CDN, and run
with the WCAG 2.1 A/AA rules and axe's best practices, at the journeys' desktop width and at a
phone's (375 px). A violation of impact moderate, serious or critical fails the journey with
the rule, what it asks for and where on the page.
"""

import os

AXE_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "node_modules", "axe-core", "axe.min.js")
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
FAILING_IMPACTS = {"moderate", "serious", "critical"}
PHONE_WIDTH = 375

_RUN = """
const done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']})
  .then(r => done(r.violations.map(v => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))))
  .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));
"""

_source = None


def axe_source() -> str:
    global _source
    if _source is None:
        if not os.path.exists(AXE_SOURCE):
            raise SystemExit(f"{AXE_SOURCE} is missing: run npm ci --prefix tests/browser")
        with open(AXE_SOURCE, encoding="utf-8") as f:
            _source = f.read()
    return _source


def violations(driver, where: str) -> list:
    """The moderate-or-worse violations on the page `driver` shows, at its own width and at a
    phone's; the window is put back as it was."""
    found = []
    size = driver.get_window_size()
    driver.set_script_timeout(60)
    try:
        for width in (size["width"], PHONE_WIDTH):
            if width != driver.get_window_size()["width"]:
                driver.set_window_size(width, size["height"])
            if not driver.execute_script("return typeof window.axe === 'object';"):
                driver.execute_script(axe_source())
            for v in driver.execute_async_script(_RUN, RULES):
                if v["impact"] in FAILING_IMPACTS:
                    found.append(f"{where} at {width} px: {v['id']} ({v['impact']}): {v['help']}"
                                 f" [{'; '.join(v['nodes'])}]")
    finally:
        driver.set_window_size(size["width"], size["height"])
    return found
