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


# The controls the Tab key should stop at, in document order: focusable, enabled, rendered, not
# taken out of the order, outside closed <details> but for their summaries, and one stop per
# radio group (the checked button, else the first).
_TABBABLE = """
const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]';
const seen = new Set();
return Array.from(document.querySelectorAll(selector)).filter(e => {
  if (e.disabled || e.tabIndex < 0 || e.getClientRects().length === 0) return false;
  if (getComputedStyle(e).visibility === 'hidden') return false;
  // The content of a closed <details> is out of the order (only its summary is a stop).
  for (let d = e.closest('details:not([open])'); d; d = d.parentElement.closest('details:not([open])')) {
    if (!(e.tagName === 'SUMMARY' && e.parentElement === d)) return false;
  }
  if (e.type === 'radio' && e.name) {
    if (seen.has(e.name)) return false;
    const group = Array.from(document.querySelectorAll('input[type=radio]'))
      .filter(r => r.name === e.name && r.form === e.form);
    const checked = group.find(r => r.checked);
    if ((checked || group[0]) !== e) return false;
    seen.add(e.name);
  }
  return true;
});
"""

# The focused element, whether its focus can be seen (an outline or a shadow), and where it is.
_FOCUSED = """
const e = document.activeElement;
if (!e || e === document.body || e === document.documentElement) return null;
const s = getComputedStyle(e);
const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
const shadow = s.boxShadow && s.boxShadow !== 'none';
const r = e.getBoundingClientRect();
return {element: e, visible: outline || shadow, on_screen: r.bottom > 0 && r.right > 0,
        what: e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
              (e.name ? '[name=' + e.name + ']' : '') + ' "' + (e.innerText || e.value || '').trim().slice(0, 40) + '"'};
"""


def keyboard_walk(driver, where: str) -> list:
    """Tabs through the whole page from the top: every control is reached once, in document
    order, the first is the skip link, its target takes the focus, and the focus is always seen
    and on screen. Returns what does not hold (empty: all well)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    # From the top of the page: without the fragment, which would start the walk at its target.
    page = driver.current_url.split("#")[0]
    driver.get(page)
    expected = driver.execute_script(_TABBABLE)
    problems, visited = [], []
    for _ in range(len(expected) + 3):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        focused = driver.execute_script(_FOCUSED)
        if focused is None or (visited and focused["element"] == visited[0]):
            break  # past the last control (the focus left the page, or wrapped round)
        visited.append(focused["element"])
        if not focused["visible"]:
            problems.append(f"{where}: the focus on {focused['what']} cannot be seen")
        if not focused["on_screen"]:
            problems.append(f"{where}: the focus on {focused['what']} is off screen")
    if visited != expected:
        names = lambda els: [driver.execute_script(  # noqa: E731
            "const e = arguments[0]; return e.tagName.toLowerCase() + (e.name ? '[' + e.name + ']' : '')"
            " + ' ' + (e.innerText || e.value || '').trim().slice(0, 30);", e) for e in els]
        missed = [e for e in expected if e not in visited]
        extra = [e for e in visited if e not in expected]
        stopped = (names(expected[len(visited) - 1:len(visited) + 2])
                   if 0 < len(visited) < len(expected) else [])
        problems.append(f"{where}: Tab reached {len(visited)} of {len(expected)} controls"
                        f" (stopped after {stopped[:1]}, next {stopped[1:]})"
                        f" (missed {names(missed)[:5]}, unexpected {names(extra)[:5]})"
                        if missed or extra else
                        f"{where}: Tab visits the controls out of document order")
    if not visited or "skip-link" not in (visited[0].get_attribute("class") or ""):
        problems.append(f"{where}: the first Tab stop is not the skip link")
    else:
        driver.get(page)
        ActionChains(driver).send_keys(Keys.TAB).send_keys(Keys.ENTER).perform()
        if driver.execute_script("return document.activeElement.id") != "main":
            problems.append(f"{where}: the skip link does not move the focus to the main content")
    return problems
